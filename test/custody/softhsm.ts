// A private SoftHSM2 token for the tests of this process: a temp token directory, SOFTHSM2_CONF
// pointing at it (set before the module is loaded), one initialised token.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Availability, SOFTHSM_LIB } from '../helpers/system.js';

export interface SoftHsmToken {
  library: string;
  tokenLabel: string;
  pin: string;
  dir: string;
}

let token: SoftHsmToken | undefined;

function which(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function softHsmAvailable(): Promise<Availability> {
  if (!existsSync(SOFTHSM_LIB)) return { ok: false, reason: `SoftHSM2 module not found at ${SOFTHSM_LIB}` };
  if (!which('softhsm2-util')) return { ok: false, reason: 'softhsm2-util not on PATH' };
  try {
    await import('pkcs11js');
  } catch (e) {
    return { ok: false, reason: `pkcs11js not installed: ${(e as Error).message}` };
  }
  return { ok: true, reason: '' };
}

export function softHsmToken(): SoftHsmToken {
  if (token) return token;
  const dir = mkdtempSync(join(tmpdir(), 'dcms-softhsm-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = conf;
  const pin = randomBytes(6).toString('hex');
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'dcms-test', '--so-pin', randomBytes(6).toString('hex'), '--pin', pin], { stdio: 'ignore', env: process.env });
  token = { library: SOFTHSM_LIB, tokenLabel: 'dcms-test', pin, dir };
  return token;
}

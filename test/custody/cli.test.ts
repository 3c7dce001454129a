// `desfire-cms vault ...` and `desfire-cms keys ...` in-process.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { requireComponent } from '../helpers/system.js';
import { softHsmAvailable, softHsmToken } from './softhsm.js';

const hsm = requireComponent('SoftHSM2', await softHsmAvailable());

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'dcms-cli-'));
  dirs.push(d);
  return d;
}

function io(env: Record<string, string> = {}, stdin?: string): CliIO & { lines: string[]; errs: string[]; stdin?: () => Promise<string> } {
  const lines: string[] = [];
  const errs: string[] = [];
  return { out: (l) => lines.push(l), err: (l) => errs.push(l), env: { ...env }, cwd: process.cwd(), lines, errs, ...(stdin !== undefined ? { stdin: async () => stdin } : {}) };
}

describe('desfire-cms vault / keys', () => {
  it('passphrase vault: init, status, keys create/rotate/list/versions/disable, all audited; secrets never from argv', async () => {
    const dir = tmp();
    const pf = join(dir, 'pass.txt');
    writeFileSync(pf, 'a long enough passphrase\n');
    const i1 = io();
    expect(await main(['vault', 'init', '--data-dir', dir, '--passphrase-file', pf, '--scrypt-n', '1024'], i1)).toBe(0);
    expect(i1.lines.join('\n')).toMatch(/initialised/);
    const st = io();
    expect(await main(['vault', 'status', '--data-dir', dir, '--json'], st)).toBe(0);
    expect(JSON.parse(st.lines[0]!)).toMatchObject({ initialized: true, sealType: 'passphrase' });
    const env = { DESFIRE_VAULT_PASSPHRASE: 'a long enough passphrase' };
    expect(await main(['keys', 'create', 'kek-campus', '--purpose', 'wrap', '--data-dir', dir], io(env))).toBe(0);
    expect(await main(['keys', 'create', 'm-door', '--purpose', 'diversify', '--alg', 'aes128', '--data-dir', dir, '--passphrase-file', pf], io())).toBe(0);
    expect(await main(['keys', 'rotate', 'm-door', '--data-dir', dir], io(env))).toBe(0);
    const l = io(env);
    expect(await main(['keys', 'list', '--data-dir', dir, '--json'], l)).toBe(0);
    expect((JSON.parse(l.lines[0]!) as { name: string }[]).map((k) => k.name)).toEqual(['kek-campus', 'm-door']);
    expect(await main(['keys', 'disable', 'm-door', '--version', '1', '--data-dir', dir], io(env))).toBe(0);
    const v = io(env);
    expect(await main(['keys', 'versions', 'm-door', '--data-dir', dir], v)).toBe(0);
    expect(v.lines).toEqual([expect.stringMatching(/^v1\s+disabled/), expect.stringMatching(/^v2\s+active/)]);
    // wrong passphrase: exit 1 with a typed code; unknown key: typed code
    const bad = io({ DESFIRE_VAULT_PASSPHRASE: 'the wrong passphrase' });
    expect(await main(['keys', 'list', '--data-dir', dir], bad)).toBe(1);
    expect(bad.errs[0]).toMatch(/ERR_CUSTODY_UNSEAL_FAILED/);
    const unk = io(env);
    expect(await main(['keys', 'rotate', 'nope', '--data-dir', dir], unk)).toBe(1);
    expect(unk.errs[0]).toMatch(/ERR_CUSTODY_UNKNOWN_KEY/);
    // there is no way to pass a secret as an argument
    expect(await main(['keys', 'list', '--data-dir', dir, '--passphrase', 'x'], io())).toBe(2);
    const audit = readFileSync(join(dir, 'custody-audit.jsonl'), 'utf8').trim().split('\n').map((x) => JSON.parse(x) as { op: string; outcome: string; actor: string });
    expect(audit.some((e) => e.op === 'create_key' && e.outcome === 'ok' && e.actor.startsWith('cli:'))).toBe(true);
    expect(audit.some((e) => e.op === 'vault_unseal' && e.outcome === 'error')).toBe(true);
    expect(audit.some((e) => e.op === 'rotate_key' && e.outcome === 'error')).toBe(true);
  });

  it('Shamir vault: init --shares 5 --threshold 3, unseal from share files or stdin, keys with share files', async () => {
    const dir = tmp();
    const sd = join(dir, 'shares');
    expect(await main(['vault', 'init', '--data-dir', dir, '--shares', '5', '--threshold', '3', '--shares-dir', sd], io())).toBe(0);
    const files = readdirSync(sd).sort();
    expect(files).toEqual(['share-1.txt', 'share-2.txt', 'share-3.txt', 'share-4.txt', 'share-5.txt']);
    const u = io();
    expect(await main(['vault', 'unseal', '--data-dir', dir, '--share-file', join(sd, files[4]!), '--share-file', join(sd, files[0]!), '--share-file', join(sd, files[2]!)], u)).toBe(0);
    expect(u.lines[0]).toMatch(/unseal verified/);
    const stdin = [files[1], files[3], files[4]].map((f) => readFileSync(join(sd, f!), 'utf8')).join('');
    expect(await main(['vault', 'unseal', '--data-dir', dir], io({}, stdin))).toBe(0);
    const two = io({}, [files[1], files[3]].map((f) => readFileSync(join(sd, f!), 'utf8')).join(''));
    expect(await main(['vault', 'unseal', '--data-dir', dir], two)).toBe(2);
    expect(two.errs[0]).toMatch(/not enough shares: 2 of 3/);
    const shareArgs = files.slice(0, 3).flatMap((f) => ['--share-file', join(sd, f)]);
    expect(await main(['keys', 'create', 'kek', '--purpose', 'wrap', '--data-dir', dir, ...shareArgs], io())).toBe(0);
    const st = io();
    expect(await main(['vault', 'status', '--data-dir', dir], st)).toBe(0);
    expect(st.lines.join('\n')).toMatch(/Shamir shares, 3 of 5/);
    expect(await main(['vault', 'seal', '--data-dir', dir], io())).toBe(0);
    // init twice is refused
    expect(await main(['vault', 'init', '--data-dir', dir, '--shares', '3', '--threshold', '2'], io())).toBe(1);
  });

  it('bad arguments exit 2 naming the argument', async () => {
    const dir = tmp();
    const cases: [string[], RegExp][] = [
      [['vault', 'init', '--data-dir', dir, '--shares', '5'], /--shares and --threshold/],
      [['vault', 'init', '--data-dir', dir, '--shares', '2', '--threshold', '3'], /--threshold/],
      [['vault', 'init', '--data-dir', dir, '--shares', 'x', '--threshold', '3'], /--shares/],
      [['vault', 'init', '--data-dir', dir], /--shares N --threshold M/],
      [['vault', 'bogus'], /unknown subcommand/],
      [['vault', 'status'], /--data-dir/],
      [['keys', 'create', '--purpose', 'wrap', '--data-dir', dir], /NAME/],
      [['keys', 'create', 'k', '--purpose', 'sign', '--data-dir', dir], /--purpose/],
      [['keys', 'create', 'k', '--purpose', 'diversify', '--alg', 'des', '--data-dir', dir], /--alg/],
      [['keys', 'disable', 'k', '--data-dir', dir], /--version/],
      [['keys', 'list', '--backend', 'cloud', '--data-dir', dir], /--backend/],
    ];
    for (const [argv, re] of cases) {
      const o = io();
      expect(await main(argv, o), argv.join(' ')).toBe(2);
      expect(o.errs.join('\n'), argv.join(' ')).toMatch(re);
    }
  });

  it.skipIf(!hsm)('keys on the pkcs11 backend (SoftHSM2), PIN from the environment', async () => {
    const t = softHsmToken();
    const dir = tmp();
    const env = { DESFIRE_CMS_PKCS11_PIN: t.pin };
    const base = ['--backend', 'pkcs11', '--module', t.library, '--token-label', t.tokenLabel, '--data-dir', dir];
    const name = `cli-kek-${process.pid}`;
    expect(await main(['keys', 'create', name, '--purpose', 'wrap', ...base], io(env))).toBe(0);
    expect(await main(['keys', 'rotate', name, ...base], io(env))).toBe(0);
    const v = io(env);
    expect(await main(['keys', 'versions', name, ...base, '--json'], v)).toBe(0);
    expect((JSON.parse(v.lines[0]!) as { version: number }[]).map((x) => x.version)).toEqual([1, 2]);
    expect(await main(['keys', 'destroy', name, '--version', '1', ...base], io(env))).toBe(0);
    const noPin = io();
    expect(await main(['keys', 'list', ...base], noPin)).toBe(2);
    expect(noPin.errs[0]).toMatch(/PIN/);
    const { Pkcs11Engine } = await import('../../src/custody/pkcs11.js');
    const e = await Pkcs11Engine.open(t);
    await e.destroyNamespace();
    await e.close();
  });
});

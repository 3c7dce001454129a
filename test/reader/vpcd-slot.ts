// vpcd slot 0 ("Virtual PCD 00 00") is one physical slot shared by the reader tests that run in
// parallel vitest workers (pcsc.test.ts, cli-pcsc-e2e.test.ts): an exclusive lock between
// processes (mkdir is atomic), released on close; a lock whose owner process is gone is taken over.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Availability, tcpReachable } from '../helpers/system.js';

const LOCK = join(tmpdir(), 'desfire-cms-test-vpcd-slot0.lock');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Wait (up to `timeoutMs`) for slot 0; returns the release function. */
export async function lockSlot0(timeoutMs = 240_000): Promise<() => void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
      } catch {
        /* being created or released */
      }
      if (Number.isInteger(owner) && owner > 0 && !alive(owner)) rmSync(LOCK, { recursive: true, force: true });
      else if (Date.now() > end) throw new Error(`vpcd slot 0 still locked by pid ${owner} after ${timeoutMs} ms (${LOCK})`);
      else await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Is vpcd listening on `port` (read from /proc/net/tcp: a probe connection would count as a card)? */
export async function vpcdListening(host: string, port: number): Promise<Availability> {
  if (!existsSync('/proc/net/tcp')) return tcpReachable(host, port);
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const re = new RegExp(`^\\s*\\d+: [0-9A-F]{8}:${hexPort} [0-9A-F]{8}:0000 0A `, 'im');
  return re.test(readFileSync('/proc/net/tcp', 'utf8')) ? { ok: true, reason: '' } : { ok: false, reason: `nothing listens on TCP port ${port} (pcscd without the vpcd driver?)` };
}

export async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
}

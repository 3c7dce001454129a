// Tests that need a system component a newcomer may lack (PostgreSQL, Redis, pcscd, SoftHSM2)
// skip with a visible reason when it is absent, except under CI (CI=true), where its absence
// is a failure.
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

export interface Availability {
  ok: boolean;
  reason: string;
}

/** Resolve whether a component is present; under CI an absent component throws. */
export function requireComponent(name: string, a: Availability): boolean {
  if (a.ok) return true;
  const msg = `${name} unavailable: ${a.reason}`;
  if (IN_CI) throw new Error(`${msg} (required under CI=true)`);
  process.stderr.write(`[skip] ${msg}\n`);
  return false;
}

export function tcpReachable(host: string, port: number, timeoutMs = 1000): Promise<Availability> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    const done = (a: Availability) => {
      s.destroy();
      resolve(a);
    };
    s.setTimeout(timeoutMs, () => done({ ok: false, reason: `${host}:${port} timed out` }));
    s.once('connect', () => done({ ok: true, reason: '' }));
    s.once('error', (e) => done({ ok: false, reason: `${host}:${port}: ${e.message}` }));
  });
}

export function fileExists(path: string, what: string): Availability {
  return existsSync(path) ? { ok: true, reason: '' } : { ok: false, reason: `${what} not found at ${path}` };
}

export const PG_URL = process.env.DESFIRE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.DESFIRE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
export const SOFTHSM_LIB = process.env.DESFIRE_TEST_SOFTHSM_LIB ?? '/usr/lib/softhsm/libsofthsm2.so';
export const VPCD = process.env.DESFIRE_TEST_VPCD ?? '127.0.0.1:35963';

// A server started with the embedded vault sealed (custody.unseal: api — no passphrase or shares in
// its environment): it serves approvals and the unseal route, answers 503 ERR_VAULT_SEALED on key
// operations, refuses an unseal without an approval, and once two other issuer admins approved and
// the passphrase opened the vault it starts the whole CMS over that vault — in-process runServer.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { runServer } from '../../src/cli/commands/server.js';
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { SqliteVaultStore } from '../../src/custody/store-sqlite.js';

const PASS = 'sealed start passphrase 0123';

function io(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const x: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env, cwd: process.cwd() };
  return { io: x, out, err };
}

async function waitFor<T>(fn: () => T | undefined, what: string, ms = 60_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('sealed start (custody.unseal: api)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cms-sealed-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('503 ERR_VAULT_SEALED on key operations until an approved unseal; then the whole CMS starts over the vault', async () => {
    const store = await SqliteVaultStore.open(join(dir, 'vault.sqlite'));
    const v = await EmbeddedVault.open(store);
    await v.init({ passphrase: PASS, scrypt: { N: 2 ** 12, r: 8, p: 1 } });
    await v.seal();
    await (store as unknown as { close?: () => unknown }).close?.();
    const cfg = join(dir, 'cms.yaml');
    writeFileSync(cfg, `dataDir: ${dir}\nhttp:\n  port: 0\n  tls:\n    mode: 'off'\ncustody:\n  kind: embedded\n  unseal: api\n`);
    const tok: Record<string, string> = {};
    for (const n of ['alice', 'bob', 'carol']) {
      const t = io();
      expect(await main(['server', 'token', '--config', cfg, '--role', 'issuer_admin', '--label', n], t.io), t.err.join('\n')).toBe(0);
      tok[n] = /token \(shown once\): (\S+)/.exec(t.out.join('\n'))![1]!;
    }
    const s = io(); // no DESFIRE_VAULT_PASSPHRASE in this environment
    const ac = new AbortController();
    let full: string | undefined;
    const done = runServer(['--config', cfg], s.io, ac.signal, (url) => void (full = url));
    try {
      const base = await waitFor(() => s.out.map((l) => /SEALED; .* on (http:\/\/\S+) until/.exec(l)?.[1]).find(Boolean), 'the sealed listener');
      const call = async (who: string, method: string, path: string, body?: unknown) => {
        const r = await fetch(base + path, { method, headers: { authorization: `Bearer ${tok[who]}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
        return { status: r.status, body: (await r.json()) as Record<string, unknown> & { error?: { code: string } } };
      };
      const st = await call('alice', 'GET', '/v1/custody/status');
      expect(st.body).toMatchObject({ backend: 'embedded', initialized: true, sealed: true, sealType: 'passphrase' });
      let r = await call('alice', 'GET', '/v1/custody/keys');
      expect([r.status, r.body.error?.code]).toEqual([503, 'ERR_VAULT_SEALED']);
      r = await call('alice', 'POST', '/v1/custody/unseal', { passphrase: PASS });
      expect([r.status, r.body.error?.code]).toEqual([428, 'ERR_APPROVAL_REQUIRED']);
      r = await call('alice', 'POST', '/v1/approvals', { kind: 'vault_unseal', payload: { vaultId: st.body.vaultId as string }, summary: 'morning start' });
      const id = r.body.id as string;
      expect((await call('alice', 'POST', `/v1/approvals/${id}/approve`)).body.error?.code).toBe('ERR_APPROVAL_SELF');
      await call('bob', 'POST', `/v1/approvals/${id}/approve`);
      expect((await call('carol', 'POST', `/v1/approvals/${id}/approve`)).body.state).toBe('approved');
      r = await call('alice', 'POST', '/v1/custody/unseal', { passphrase: PASS, approvalId: id });
      expect([r.status, r.body.sealed]).toEqual([200, false]);
      const url = await waitFor(() => full, 'the full CMS');
      const keys = await fetch(`${url}/v1/custody/keys`, { headers: { authorization: `Bearer ${tok.bob}` } });
      expect(keys.status).toBe(200);
      const names = ((await keys.json()) as { keys: { name: string }[] }).keys.map((k) => k.name);
      expect(names).toContain('cms-pki-protector'); // the CA's protector was derived through the unsealed vault
      const entries = await fetch(`${url}/v1/audit/entries?limit=1000`, { headers: { authorization: `Bearer ${tok.bob}` } });
      const ops = ((await entries.json()) as { entries: { operation: string; result: string }[] }).entries.map((e) => `${e.operation}:${e.result}`);
      expect(ops).toEqual(expect.arrayContaining(['approval.consume:ok', 'vault.unseal:ok', 'custody.vault_unseal:ok']));
      expect(s.out.join('\n')).not.toContain(PASS);
    } finally {
      ac.abort();
      expect(await done).toBe(0);
    }
  }, 120_000);
});

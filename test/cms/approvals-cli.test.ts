// The 'critical' and 'approvals' CLI against the whole CMS (buildCmsApp: SQLite, embedded vault,
// audit log, HTTPS): export a key sealed to a recipient key made by the CLI, seal the vault (key
// operations answer 503 ERR_VAULT_SEALED through the full wiring) and unseal it with the
// passphrase and an approval, delete a tenant — each under an approval requested, approved by two
// other issuer admins and consumed, all through the CLI.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { type CmsHarness, TEST_PASSPHRASE, startCms } from './api-harness.js';

describe('desfire-cms critical | approvals (CLI over HTTPS)', () => {
  let h: CmsHarness;
  let common: string[];
  const files: Record<string, string> = {};
  const cli = async (argv: string[], token = 'alice') => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env: {}, cwd: h.dataDir };
    const code = await main([...argv, ...common, '--token-file', files[token]!], io);
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
  /** alice requests (JSON out), bob and carol approve through the CLI. */
  const approvedVia = async (args: string[]): Promise<string> => {
    const r = await cli(['approvals', 'request', ...args, '--summary', 'cli test', '--json']);
    expect(r.code, r.err).toBe(0);
    const id = (JSON.parse(r.out) as { id: string }).id;
    expect((await cli(['approvals', 'approve', id], 'alice')).err).toMatch(/ERR_APPROVAL_SELF/);
    expect((await cli(['approvals', 'approve', id], 'bob')).code).toBe(0);
    expect((await cli(['approvals', 'approve', id], 'carol')).out).toMatch(/approved +2\/2/);
    return id;
  };

  beforeAll(async () => {
    h = await startCms();
    writeFileSync(join(h.dataDir, 'ca.pem'), h.cms.ca!.certificatePem);
    common = ['--cms', `https://127.0.0.1:${h.server.port}`, '--ca', 'ca.pem', '--servername', 'localhost'];
    for (const n of ['alice', 'bob', 'carol']) {
      const t = await h.call('POST', '/v1/tokens', { token: h.admin, body: { label: n, roles: ['issuer_admin'], tenants: ['*'] } });
      expect(t.status).toBe(201);
      files[n] = join(h.dataDir, `${n}.token`);
      writeFileSync(files[n], (t.body as { token: string }).token, { mode: 0o600 });
    }
    writeFileSync(join(h.dataDir, 'pass.txt'), TEST_PASSPHRASE, { mode: 0o600 });
  }, 60_000);
  afterAll(async () => h?.close());

  it('export-key: recipient key, approval naming key and recipient, sealed export the recipient opens', async () => {
    expect((await h.call('POST', '/v1/custody/keys', { token: h.admin, body: { name: 'escrow-master', purpose: 'diversify', alg: 'aes128' } })).status).toBe(201);
    let r = await cli(['critical', 'recipient-key', '--out-private', 'r.pem', '--out-public', 'r.jwk']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/thumbprint: [A-Za-z0-9_-]{43}/);
    r = await cli(['critical', 'export-key', 'escrow-master', '--recipient-jwk', 'r.jwk', '--approval', 'none']);
    expect([r.code, r.err]).toEqual([1, expect.stringMatching(/428 ERR_APPROVAL_REQUIRED/)]);
    const id = await approvedVia(['--kind', 'key_export', '--key', 'escrow-master', '--recipient-jwk', 'r.jwk']);
    r = await cli(['critical', 'export-key', 'escrow-master', '--recipient-jwk', 'r.jwk', '--approval', id, '--out', 'escrow.jwe']);
    expect(r.code, r.err).toBe(0);
    r = await cli(['critical', 'open-export', 'escrow.jwe', '--private-key', 'r.pem']);
    expect(JSON.parse(r.out)).toMatchObject({ key: 'escrow-master', kv: 1, alg: 'aes128', purpose: 'diversify', bytes: 16 });
    r = await cli(['critical', 'export-key', 'escrow-master', '--recipient-jwk', 'r.jwk', '--approval', id]);
    expect(r.err).toMatch(/409 ERR_APPROVAL_STATE/);
  });

  it('seal → 503 ERR_VAULT_SEALED on key operations; unseal with the passphrase file and an approval', async () => {
    let r = await cli(['critical', 'seal', '--reason', 'incident drill']);
    expect(r.out).toMatch(/SEALED \(passphrase\)/);
    const keys = await h.call('GET', '/v1/custody/keys', { token: h.admin });
    expect([keys.status, (keys.body as { error: { code: string } }).error.code]).toEqual([503, 'ERR_VAULT_SEALED']);
    expect((await h.call('GET', '/readyz')).status).toBe(503);
    r = await cli(['critical', 'unseal', '--passphrase-file', 'pass.txt', '--approval', 'none']);
    expect(r.err).toMatch(/428 ERR_APPROVAL_REQUIRED/);
    const id = await approvedVia(['--kind', 'vault_unseal']);
    r = await cli(['critical', 'unseal', '--passphrase-file', 'pass.txt', '--approval', id]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/unsealed/);
    expect((await h.call('GET', '/v1/custody/keys', { token: h.admin })).status).toBe(200);
    expect((await cli(['critical', 'vault-status'])).out).toMatch(/embedded vault \S+ unsealed/);
  });

  it('delete-tenant under a tenant_deletion approval', async () => {
    expect((await h.call('POST', '/v1/tenants', { token: h.admin, body: { id: 'globex', name: 'Globex' } })).status).toBe(201);
    let r = await cli(['critical', 'delete-tenant', 'globex', '--approval', 'none']);
    expect(r.err).toMatch(/428 ERR_APPROVAL_REQUIRED/);
    const id = await approvedVia(['--kind', 'tenant_deletion', '--tenant', 'globex']);
    r = await cli(['critical', 'delete-tenant', 'globex', '--approval', id]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/tenant globex deleted/);
    expect((await h.call('GET', '/v1/tenants/globex', { token: h.admin })).status).toBe(404);
    expect((await h.call('POST', '/v1/tenants', { token: h.admin, body: { id: 'globex', name: 'Globex again' } })).status).toBe(409);
  });
});

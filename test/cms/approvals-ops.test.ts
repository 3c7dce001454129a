// Critical operations under M-of-N approval over the real API (Fastify inject), real SQLite, the
// real audit log and an embedded vault: key export, tenant deletion, vault unseal/seal. For each:
// refused without an approval (typed code), refused with an approval for another target (and that
// approval stays usable), the requester cannot approve, expired approvals are refused, an approval
// is consumed exactly once, and the operation works with one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import type { JWK } from 'jose';
import { buildApi } from '../../src/cms/api/build.js';
import { createLogger } from '../../src/cms/api/logging.js';
import type { ApiModule } from '../../src/cms/api/ports.js';
import { LocalRateLimiter } from '../../src/cms/api/ratelimit.js';
import { criticalModule } from '../../src/cms/api/routes/critical.js';
import { rotationModule } from '../../src/cms/api/routes/rotation.js';
import { OperatorTokens } from '../../src/cms/api/tokens/service.js';
import { CriticalOperations } from '../../src/cms/approvals/operations.js';
import { DEFAULT_APPROVAL_POLICY } from '../../src/cms/approvals/policy.js';
import { ApprovalService } from '../../src/cms/approvals/service.js';
import { vaultGate } from '../../src/cms/approvals/unseal.js';
import type { AuditLog } from '../../src/cms/audit/log.js';
import { TenantRepository } from '../../src/cms/domain/tenants.js';
import { Diversifier } from '../../src/core/crypto/an10922.js';
import { toHex } from '../../src/core/crypto/bytes.js';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { openExport, recipientThumbprint } from '../../src/custody/export.js';
import { MemoryVaultStore } from '../../src/custody/store.js';
import type { KeyCustody } from '../../src/custody/types.js';
import { requireComponent } from '../helpers/system.js';
import { softHsmAvailable, softHsmToken } from '../custody/softhsm.js';
import { openLog } from './audit-fixture.js';
import { AID, CTX, MASTER, TENANT, divInput, makeFixture, type Fixture } from './rotation-fixture.js';

type Body = Record<string, unknown> & { error?: { code: string; details?: Record<string, unknown> } };
const keyPair = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const j = publicKey.export({ format: 'jwk' }) as JWK;
  return { privateKey, publicKey: { kty: 'EC', crv: 'P-256', x: j.x!, y: j.y! } as JWK };
};

const api = (tokens: OperatorTokens, custody: KeyCustody, modules: ApiModule[]) =>
  buildApi({
    logger: createLogger({ level: 'error' }),
    tokens,
    rateLimiter: new LocalRateLimiter(),
    limits: { operatorRequests: 10_000, readerRequests: 10_000, anonymousRequests: 10_000, windowMs: 60_000 },
    health: [],
    custody,
    modules,
  });

describe('operations under approval (API)', () => {
  let f: Fixture;
  let log: AuditLog;
  let custody: KeyCustody;
  let vault: EmbeddedVault;
  let call: (token: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) => Promise<{ status: number; body: Body }>;
  const tok: Record<string, string> = {};
  let closeApp: () => Promise<unknown>;

  beforeAll(async () => {
    f = await makeFixture(12);
    log = (await openLog(f.handle)).log;
    vault = await EmbeddedVault.open(new MemoryVaultStore());
    await vault.init({ passphrase: 'correct horse battery staple', scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    custody = vaultGate(vault.custody(log));
    await custody.createKey(CTX, MASTER, { purpose: 'diversify', alg: 'aes128' });
    await custody.createKey(CTX, `kek.${TENANT}`, { purpose: 'wrap' });
    await custody.createKey(CTX, 'kek.issuer', { purpose: 'wrap' });
    const tokens = new OperatorTokens(f.handle.db);
    for (const [n, roles] of [['alice', ['issuer_admin']], ['bob', ['issuer_admin']], ['carol', ['issuer_admin']], ['audi', ['auditor']]] as const) {
      tok[n] = (await tokens.create({ label: n, roles: [...roles], tenants: ['*'], createdBy: null })).token;
    }
    const tenants = new TenantRepository(f.handle.db);
    const app = await api(tokens, custody, [rotationModule({ db: f.handle.db, custody, audit: log }), criticalModule({ db: f.handle.db, custody, audit: log, tenants, vault })]);
    closeApp = () => app.close();
    call = async (token, method, url, payload) => {
      const r = await app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
      return { status: r.statusCode, body: r.json() as Body };
    };
  });
  afterAll(async () => {
    await closeApp?.();
    await log?.close();
    await f?.close();
  });

  /** alice requests; bob and carol approve. */
  const approved = async (kind: string, payload: Record<string, unknown>): Promise<string> => {
    const r = await call(tok.alice!, 'POST', '/v1/approvals', { kind, payload, summary: `test ${kind}` });
    expect(r.status).toBe(201);
    const id = r.body.id as string;
    expect((await call(tok.bob!, 'POST', `/v1/approvals/${id}/approve`)).body.state).toBe('pending');
    expect((await call(tok.carol!, 'POST', `/v1/approvals/${id}/approve`)).body.state).toBe('approved');
    return id;
  };
  const stateOf = async (id: string) => (await call(tok.audi!, 'GET', `/v1/approvals/${id}`)).body.state;

  it('key export: only with a consumed key_export approval naming the key and the recipient', async () => {
    const rcpt = keyPair();
    const other = keyPair();
    const thumb = await recipientThumbprint(rcpt.publicKey);
    const url = `/v1/custody/keys/${MASTER}/export`;
    // no approval / unknown approval
    let r = await call(tok.alice!, 'POST', url, { recipient: rcpt.publicKey });
    expect([r.status, r.body.error?.code]).toEqual([428, 'ERR_APPROVAL_REQUIRED']);
    r = await call(tok.alice!, 'POST', url, { recipient: rcpt.publicKey, approvalId: 'nope' });
    expect([r.status, r.body.error?.code]).toEqual([428, 'ERR_APPROVAL_REQUIRED']);
    // a request must name its target, as approvers see it
    r = await call(tok.alice!, 'POST', '/v1/approvals', { kind: 'key_export', payload: { key: MASTER }, summary: 'no recipient' });
    expect([r.status, r.body.error?.code]).toEqual([400, 'ERR_ROTATION_BAD_INPUT']);
    r = await call(tok.alice!, 'POST', '/v1/approvals', { kind: 'key_export', payload: { key: MASTER, recipient: thumb }, summary: 'escrow of the door master' });
    const id = r.body.id as string;
    expect((await call(tok.bob!, 'GET', `/v1/approvals/${id}`)).body).toMatchObject({ kind: 'key_export', payload: { key: MASTER, recipient: thumb }, requestedBy: expect.any(String), required: 2 });
    // the requester cannot approve; an auditor lacks the role
    expect((await call(tok.alice!, 'POST', `/v1/approvals/${id}/approve`)).body.error?.code).toBe('ERR_APPROVAL_SELF');
    expect((await call(tok.audi!, 'POST', `/v1/approvals/${id}/approve`)).status).toBe(403);
    await call(tok.bob!, 'POST', `/v1/approvals/${id}/approve`);
    r = await call(tok.alice!, 'POST', url, { recipient: rcpt.publicKey, approvalId: id });
    expect([r.status, r.body.error?.code]).toEqual([428, 'ERR_APPROVAL_REQUIRED']); // 1 of 2
    await call(tok.carol!, 'POST', `/v1/approvals/${id}/approve`);
    // another recipient, another key: refused, and the approval is not used up
    r = await call(tok.alice!, 'POST', url, { recipient: other.publicKey, approvalId: id });
    expect([r.status, r.body.error?.code]).toEqual([409, 'ERR_APPROVAL_MISMATCH']);
    r = await call(tok.alice!, 'POST', `/v1/custody/keys/kek.${TENANT}/export`, { recipient: rcpt.publicKey, approvalId: id });
    expect([r.status, r.body.error?.code]).toEqual([409, 'ERR_APPROVAL_MISMATCH']);
    // bad recipient key: refused before the approval is touched
    r = await call(tok.alice!, 'POST', url, { recipient: { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' }, approvalId: id });
    expect([r.status, r.body.error?.code]).toEqual([400, 'ERR_CUSTODY_INPUT']);
    expect(await stateOf(id)).toBe('approved');
    // works: the export opens with the recipient's private key and is the master itself
    r = await call(bob(), 'POST', url, { recipient: rcpt.publicKey, approvalId: id });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ format: 'jwe-compact', key: MASTER, version: 1, alg: 'aes128', purpose: 'diversify', recipient: thumb });
    const header = JSON.parse(Buffer.from(String(r.body.jwe).split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;
    expect(header).toMatchObject({ alg: 'ECDH-ES', enc: 'A256GCM', typ: 'dcms-key-export+jwe', kid: thumb });
    const jwe = String(r.body.jwe);
    const opened = await openExport(jwe, rcpt.privateKey);
    expect(opened.claim).toMatchObject({ key: MASTER, kv: 1, alg: 'aes128' });
    await expect(openExport(String(r.body.jwe), other.privateKey)).rejects.toThrow();
    const uid = [...f.cards.keys()][0]!;
    const cardKey = await custody.exportForCard(CTX, { kind: 'diversified', master: MASTER, masterVersion: 1, input: divInput(uid), binding: { tenant: TENANT, aid: AID, uid, keyNo: 0, version: 1 } });
    expect(toHex(new Diversifier('aes128', opened.material).derive(divInput(uid)))).toBe(toHex(cardKey));
    // consumed exactly once
    expect(await stateOf(id)).toBe('consumed');
    r = await call(tok.alice!, 'POST', url, { recipient: rcpt.publicKey, approvalId: id });
    expect([r.status, r.body.error?.code]).toEqual([409, 'ERR_APPROVAL_STATE']);
    // audited: the custody event names key, version and recipient; no entry carries the JWE
    const entries = await log.entries({ from: 0, limit: 100_000 });
    const exp = entries.filter((e) => e.operation === 'custody.export_key' || e.operation === 'custody.key.export');
    expect(exp.map((e) => e.result)).toEqual(expect.arrayContaining(['requested', 'ok']));
    expect(JSON.stringify(entries)).not.toContain(jwe.split('.')[4]);
    expect(JSON.stringify(entries)).not.toContain(toHex(opened.material));
    expect(entries.some((e) => e.operation === 'approval.consume' && e.correlationId === id)).toBe(true);
  });

  it('tenant deletion: refused while cards hold its applications, scheduled removal, keys destroyed, roles removed', async () => {
    const db = f.handle.db;
    const now = Date.now();
    await db.insertInto('readers').values({ id: 'door-1', name: 'door', state: 'active', cert_serial: null, cert_pem: null, cert_not_after: null, created_at: now, updated_at: now }).execute();
    await db.insertInto('reader_roles').values({ reader_id: 'door-1', tenant_id: TENANT, aid: AID, key_no: 0, operations: '["authenticate"]', created_at: now }).execute();
    await db.insertInto('tenants').values({ id: 'globex', name: 'Globex', created_at: now }).execute();
    let r = await call(tok.alice!, 'DELETE', `/v1/tenants/${TENANT}`);
    expect([r.status, r.body.error?.code]).toEqual([428, 'ERR_APPROVAL_REQUIRED']);
    const forGlobex = await approved('tenant_deletion', { tenantId: 'globex' });
    const id = await approved('tenant_deletion', { tenantId: TENANT });
    // cards still hold the application: typed refusal with the count, the approval stays usable
    r = await call(tok.alice!, 'DELETE', `/v1/tenants/${TENANT}?approvalId=${id}`);
    expect([r.status, r.body.error?.code, r.body.error?.details?.cards]).toEqual([409, 'ERR_TENANT_HAS_CARDS', 12]);
    expect(await stateOf(id)).toBe('approved');
    // another tenant's approval
    r = await call(tok.alice!, 'DELETE', `/v1/tenants/${TENANT}?approvalId=${forGlobex}&scheduleRemoval=true`);
    expect([r.status, r.body.error?.code]).toEqual([409, 'ERR_APPROVAL_MISMATCH']);
    expect(await stateOf(forGlobex)).toBe('approved');
    // with scheduled removal
    r = await call(tok.alice!, 'DELETE', `/v1/tenants/${TENANT}?approvalId=${id}&scheduleRemoval=true`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ tenantId: TENANT, readerRolesRemoved: 1, cardsPending: 12, applications: [AID], keysFailed: [] });
    expect((r.body.keysRetired as { key: string }[]).map((k) => k.key).sort()).toEqual([MASTER, `kek.${TENANT}`].sort());
    expect(await stateOf(id)).toBe('consumed');
    const repo = new TenantRepository(db);
    expect(await repo.tenant(TENANT)).toBeUndefined();
    expect((await repo.tenants()).map((t) => t.id)).toEqual(['globex']);
    expect(await db.selectFrom('reader_roles').selectAll().where('tenant_id', '=', TENANT).execute()).toEqual([]);
    const pending = await db.selectFrom('pending_deletions').selectAll().where('tenant_id', '=', TENANT).execute();
    expect(pending.map((p) => [p.reason, p.state])).toEqual(Array(12).fill(['tenant_deleted', 'pending']));
    const auth = await db.selectFrom('consent_authorisations').selectAll().where('id', '=', pending[0]!.authorisation_id).executeTakeFirstOrThrow();
    expect(auth).toMatchObject({ tenant_id: TENANT, aid: AID, operation: 'delete', granted_by: `approval:${id}` });
    // every key version that protected anything is destroyed
    const master = await custody.getKey(CTX, MASTER);
    expect(master.versions.find((v) => v.version === 1)!.state).toBe('destroyed');
    await expect(custody.exportForCard(CTX, { kind: 'diversified', master: MASTER, masterVersion: 1, input: divInput([...f.cards.keys()][0]!), binding: { tenant: TENANT, aid: AID, uid: [...f.cards.keys()][0]!, keyNo: 0, version: 1 } })).rejects.toMatchObject({
      code: 'ERR_CUSTODY_VERSION',
    });
    expect((await custody.getKey(CTX, 'kek.issuer')).versions.every((v) => v.state === 'active')).toBe(true);
    // the rows stay for the removal jobs until the last card is cleaned; then a DELETE drops them
    r = await call(tok.alice!, 'DELETE', `/v1/tenants/${TENANT}`);
    expect([r.status, r.body.error?.code, r.body.error?.details]).toEqual([409, 'ERR_TENANT_HAS_CARDS', { cards: 12, deleted: true }]);
    expect((await db.selectFrom('applications').select('aid').where('tenant_id', '=', TENANT).execute()).length).toBe(1);
    await db.deleteFrom('card_applications').where('aid', '=', AID).execute(); // what the scheduled removal jobs do, card by card
    r = await call(tok.alice!, 'DELETE', `/v1/tenants/${TENANT}`);
    expect([r.status, r.body]).toEqual([200, { tenantId: TENANT, purged: true, applications: [AID] }]);
    expect(await db.selectFrom('applications').selectAll().where('tenant_id', '=', TENANT).execute()).toEqual([]);
    expect(await db.selectFrom('card_keys').selectAll().where('aid', '=', AID).execute()).toEqual([]);
    // used once: the same approval again finds no tenant; the audit log keeps the deletion
    r = await call(tok.alice!, 'DELETE', `/v1/tenants/${TENANT}?approvalId=${id}&scheduleRemoval=true`);
    expect(r.status).toBe(404);
    const entries = await log.entries({ from: 0, limit: 100_000 });
    expect(entries.find((e) => e.operation === 'tenant.delete' && e.result === 'ok')).toMatchObject({ tenant: TENANT, correlationId: id });
    expect(entries.some((e) => e.operation === 'tenant.delete' && e.result === 'denied')).toBe(true);
    // a tenant without cards is deleted outright; its id is never reused
    r = await call(tok.alice!, 'DELETE', `/v1/tenants/globex?approvalId=${forGlobex}`);
    expect([r.status, r.body.cardsPending]).toEqual([200, 0]);
    expect(await db.selectFrom('tenants').selectAll().where('id', '=', 'globex').execute()).toEqual([]);
    await expect(new TenantRepository(db).createTenant('globex', 'Globex again')).rejects.toMatchObject({ code: 'ERR_DOMAIN_CONFLICT' });
  });

  it('vault: sealed → 503 ERR_VAULT_SEALED on key operations; unseal needs the passphrase and a consumed vault_unseal approval', async () => {
    const status = (await call(tok.audi!, 'GET', '/v1/custody/status')).body;
    expect(status).toMatchObject({ backend: 'embedded', initialized: true, sealed: false, sealType: 'passphrase' });
    const vaultId = status.vaultId as string;
    expect((await call(tok.audi!, 'POST', '/v1/custody/seal', { reason: 'test' })).status).toBe(403);
    expect((await call(tok.alice!, 'POST', '/v1/custody/seal', { reason: 'test' })).body).toMatchObject({ sealed: true });
    let r = await call(tok.audi!, 'GET', '/v1/custody/keys');
    expect([r.status, r.body.error?.code]).toEqual([503, 'ERR_VAULT_SEALED']);
    const pass = 'correct horse battery staple';
    r = await call(tok.alice!, 'POST', '/v1/custody/unseal', { passphrase: pass });
    expect([r.status, r.body.error?.code]).toEqual([428, 'ERR_APPROVAL_REQUIRED']);
    const wrongVault = await approved('vault_unseal', { vaultId: 'some-other-vault' });
    r = await call(tok.alice!, 'POST', '/v1/custody/unseal', { passphrase: pass, approvalId: wrongVault });
    expect([r.status, r.body.error?.code]).toEqual([409, 'ERR_APPROVAL_MISMATCH']);
    const id = await approved('vault_unseal', { vaultId });
    // a wrong passphrase does not use the approval up
    r = await call(tok.alice!, 'POST', '/v1/custody/unseal', { passphrase: 'not the passphrase', approvalId: id });
    expect([r.status, r.body.error?.code]).toEqual([400, 'ERR_CUSTODY_UNSEAL_FAILED']);
    expect(await stateOf(id)).toBe('approved');
    expect(JSON.stringify(r.body)).not.toContain('not the passphrase');
    r = await call(tok.alice!, 'POST', '/v1/custody/unseal', { passphrase: pass, approvalId: id });
    expect([r.status, r.body.sealed]).toEqual([200, false]);
    expect(await stateOf(id)).toBe('consumed');
    expect((await call(tok.audi!, 'GET', '/v1/custody/keys')).status).toBe(200);
    // consumed once
    await call(tok.alice!, 'POST', '/v1/custody/seal', { reason: 'test' });
    r = await call(tok.alice!, 'POST', '/v1/custody/unseal', { passphrase: pass, approvalId: id });
    expect([r.status, r.body.error?.code]).toEqual([409, 'ERR_APPROVAL_STATE']);
    const again = await approved('vault_unseal', { vaultId });
    expect((await call(tok.alice!, 'POST', '/v1/custody/unseal', { passphrase: pass, approvalId: again })).body.sealed).toBe(false);
    const entries = await log.entries({ from: 0, limit: 100_000 });
    expect(entries.filter((e) => e.operation === 'vault.unseal').map((e) => e.result)).toEqual(['error', 'ok', 'ok']);
    expect(entries.filter((e) => e.operation === 'vault.seal')).toHaveLength(2);
    expect(JSON.stringify(entries)).not.toContain(pass);
  });

  const bob = () => tok.bob!;
});

describe('vault unseal by shares over the API: one share per operator', () => {
  it('the threshold of distinct operators unseals; the same operator twice is refused', async () => {
    const f = await makeFixture(0);
    const { log } = await openLog(f.handle);
    const vault = await EmbeddedVault.open(new MemoryVaultStore());
    const { shares } = await vault.init({ shares: 3, threshold: 2 });
    const custody = vaultGate(vault.custody(new MemoryAuditSink()));
    const tokens = new OperatorTokens(f.handle.db);
    const t = async (n: string) => (await tokens.create({ label: n, roles: ['issuer_admin'], tenants: ['*'], createdBy: null })).token;
    const [alice, bob] = [await t('alice'), await t('bob')];
    const app = await api(tokens, custody, [criticalModule({ db: f.handle.db, custody, audit: log, tenants: new TenantRepository(f.handle.db), vault })]);
    const call = async (token: string, url: string, payload?: unknown) => {
      const r = await app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${token}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
      return { status: r.statusCode, body: r.json() as Body };
    };
    try {
      await call(alice, '/v1/custody/seal', { reason: 'test' });
      let r = await call(alice, '/v1/custody/unseal', { share: shares![0] });
      expect(r.body).toMatchObject({ sealed: true, progress: 1, threshold: 2 });
      r = await call(alice, '/v1/custody/unseal', { share: shares![1] });
      expect([r.status, r.body.error?.code]).toEqual([409, 'ERR_VAULT_SHARE_DUPLICATE']);
      r = await call(alice, '/v1/custody/unseal', { passphrase: 'x'.repeat(20), approvalId: 'a' });
      expect([r.status, r.body.error?.code]).toEqual([400, 'ERR_VAULT_BAD_INPUT']);
      r = await call(bob, '/v1/custody/unseal', { share: shares![1] });
      expect([r.status, r.body.sealed]).toEqual([200, false]);
      r = await call(bob, '/v1/custody/unseal', { share: shares![2] });
      expect([r.status, r.body.error?.code]).toEqual([409, 'ERR_VAULT_UNSEALED']);
      const entries = await log.entries({ from: 0, limit: 100_000 });
      expect(entries.filter((e) => e.operation === 'vault.unseal').map((e) => e.result)).toEqual(['share', 'denied', 'ok']);
    } finally {
      await app.close();
      await log.close();
      await f.close();
    }
  });
});

describe('approvals of critical operations (service level)', () => {
  it('an expired approval is refused and not consumed', async () => {
    let now = Date.now();
    const f = await makeFixture(0);
    try {
      const approvals = new ApprovalService({ db: f.handle.db, audit: f.audit, now: () => now });
      const ops = new CriticalOperations({ db: f.handle.db, custody: f.custody, approvals, audit: f.audit, tenants: new TenantRepository(f.handle.db) });
      const a = await approvals.request('tenant_deletion', { tenantId: TENANT }, 'alice', 'delete acme');
      await approvals.vote(a.id, { id: 'bob', roles: ['issuer_admin'] }, 'approve');
      await approvals.vote(a.id, { id: 'carol', roles: ['issuer_admin'] }, 'approve');
      now += DEFAULT_APPROVAL_POLICY.kinds.tenant_deletion.ttlMs + 1;
      await f.handle.db.deleteFrom('card_applications').execute();
      await expect(ops.deleteTenant(CTX, TENANT, a.id)).rejects.toMatchObject({ code: 'ERR_APPROVAL_EXPIRED' });
      expect(await new TenantRepository(f.handle.db).tenant(TENANT)).toBeDefined();
      const rcpt = keyPair();
      const e = await approvals.request('key_export', { key: MASTER, recipient: await recipientThumbprint(rcpt.publicKey) }, 'alice', 'export');
      await approvals.vote(e.id, { id: 'bob', roles: ['issuer_admin'] }, 'approve');
      await approvals.vote(e.id, { id: 'carol', roles: ['issuer_admin'] }, 'approve');
      now += DEFAULT_APPROVAL_POLICY.kinds.key_export.ttlMs + 1;
      await expect(ops.exportKey(CTX, MASTER, rcpt.publicKey, e.id)).rejects.toMatchObject({ code: 'ERR_APPROVAL_EXPIRED' });
    } finally {
      await f.close();
    }
  });
});

const p11 = requireComponent('SoftHSM2', await softHsmAvailable());
describe.skipIf(!p11)('key export from PKCS#11 (SoftHSM2)', () => {
  it('non-extractable keys refuse with ERR_CUSTODY_NOT_EXTRACTABLE and the approval is not consumed', async () => {
    const { Pkcs11Engine } = await import('../../src/custody/pkcs11.js');
    const engine = await Pkcs11Engine.open({ ...softHsmToken(), namespace: `a${Date.now().toString(36)}` });
    const sink = new MemoryAuditSink();
    const custody = engine.custody(sink);
    const f = await makeFixture(0);
    try {
      await custody.createKey(CTX, 'acme.A1B2C3.1', { purpose: 'diversify', alg: 'aes128' });
      const approvals = new ApprovalService({ db: f.handle.db, audit: f.audit });
      const rcpt = keyPair();
      const a = await approvals.request('key_export', { key: 'acme.A1B2C3.1', recipient: await recipientThumbprint(rcpt.publicKey) }, 'alice', 'export');
      await approvals.vote(a.id, { id: 'bob', roles: ['issuer_admin'] }, 'approve');
      await approvals.vote(a.id, { id: 'carol', roles: ['issuer_admin'] }, 'approve');
      const ops = new CriticalOperations({ db: f.handle.db, custody, approvals, audit: f.audit, tenants: new TenantRepository(f.handle.db) });
      await expect(ops.exportKey(CTX, 'acme.A1B2C3.1', rcpt.publicKey, a.id)).rejects.toMatchObject({ code: 'ERR_CUSTODY_NOT_EXTRACTABLE' });
      expect((await approvals.require(a.id)).state).toBe('approved');
      expect(sink.events.at(-1)).toMatchObject({ op: 'export_key', outcome: 'error', code: 'ERR_CUSTODY_NOT_EXTRACTABLE' });
    } finally {
      await engine.destroyNamespace();
      await custody.close();
      await f.close();
    }
  });
});

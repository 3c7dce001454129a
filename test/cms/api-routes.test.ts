// The API's routes over real HTTPS on 127.0.0.1, on the whole CMS (SQLite, embedded vault, CA).
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CmsHarness, startCms } from './api-harness.js';

let h: CmsHarness;
let accessAdmin: string;
let auditor: string;
let accessAuditor: string;
const campus = readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8');
const fixture = (n: string) => readFileSync(new URL(`./layout-fixtures/${n}`, import.meta.url), 'utf8');

async function token(roles: string[], tenants: string[]): Promise<string> {
  const r = await h.call('POST', '/v1/tokens', { token: h.admin, body: { label: roles.join('+'), roles, tenants } });
  expect(r.status).toBe(201);
  return r.body.token;
}

async function readerKeyAndCsr(): Promise<{ keyPem: string; csr: string }> {
  x509.cryptoProvider.set(webcrypto as never);
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=whatever', keys: keys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
  return { keyPem, csr: csr.toString('pem') };
}

beforeAll(async () => {
  h = await startCms();
  accessAdmin = await token(['tenant_admin'], ['access']);
  auditor = await token(['auditor'], ['*']);
  accessAuditor = await token(['auditor'], ['access']);
}, 120_000);
afterAll(async () => h?.close());

describe('layouts, tenants, applications', () => {
  it('a layout that breaks isolation is refused with the rule id (422) and nothing is written', async () => {
    const r = await h.call('POST', '/v1/layouts', { token: h.admin, raw: fixture('ISO002-shared-master.yaml'), contentType: 'application/yaml' });
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('ERR_DOMAIN_LAYOUT_FINDINGS');
    expect(r.body.error.details.rules).toContain('ISO002');
    expect((await h.call('GET', '/v1/tenants', { token: h.admin })).body.tenants).toEqual([]);
  });

  it('an unparseable layout → 400 with the layout error code', async () => {
    const r = await h.call('POST', '/v1/layouts', { token: h.admin, raw: fixture('invalid-syntax.yaml'), contentType: 'text/yaml' });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toMatch(/^ERR_LAYOUT_/);
  });

  it('the campus layout registers (YAML), idempotently', async () => {
    const r = await h.call('POST', '/v1/layouts', { token: h.admin, raw: campus, contentType: 'application/yaml' });
    expect(r.status).toBe(201);
    expect(r.body.applications).toEqual(expect.arrayContaining(['A1C001', 'CAFE01']));
    const again = await h.call('POST', '/v1/layouts', { token: h.admin, raw: campus, contentType: 'application/yaml' });
    expect([again.status, again.body.applications]).toEqual([201, []]);
  });

  it('a tenant admin only ever sees its own tenant', async () => {
    const all = (await h.call('GET', '/v1/tenants', { token: h.admin })).body.tenants.map((t: { id: string }) => t.id);
    expect(all.length).toBeGreaterThan(1);
    const mine = await h.call('GET', '/v1/tenants', { token: accessAdmin });
    expect(mine.body.tenants.map((t: { id: string }) => t.id)).toEqual(['access']);
    const other = all.find((t: string) => t !== 'access');
    const r = await h.call('GET', `/v1/tenants/${other}`, { token: accessAdmin });
    expect([r.status, r.body.error.code]).toEqual([403, 'ERR_FORBIDDEN_TENANT']);
    const apps = await h.call('GET', '/v1/applications', { token: accessAdmin });
    expect(apps.body.applications.map((a: { tenantId: string }) => a.tenantId)).toEqual(['access']);
    expect((await h.call('GET', '/v1/applications/CAFE01', { token: accessAdmin })).status).toBe(404);
    expect((await h.call('GET', '/v1/applications/A1C001', { token: accessAuditor })).status).toBe(200);
    expect((await h.call('GET', `/v1/applications?tenant=${other}`, { token: accessAuditor })).status).toBe(403);
  });
});

describe('auth matrix', () => {
  const matrix: [string, string, unknown, { none: number; auditor: number; tenantAdmin: number; admin: number }][] = [
    ['GET', '/v1/tenants', undefined, { none: 401, auditor: 200, tenantAdmin: 200, admin: 200 }],
    ['POST', '/v1/tenants', { id: 'zz-new', name: 'n' }, { none: 401, auditor: 403, tenantAdmin: 403, admin: 201 }],
    ['GET', '/v1/tokens', undefined, { none: 401, auditor: 403, tenantAdmin: 200, admin: 200 }],
    ['POST', '/v1/tokens', { label: 'l', roles: ['auditor'], tenants: ['access'] }, { none: 401, auditor: 403, tenantAdmin: 403, admin: 201 }],
    ['GET', '/v1/readers', undefined, { none: 401, auditor: 200, tenantAdmin: 200, admin: 200 }],
    ['POST', '/v1/readers', { id: 'matrix-r', name: 'm' }, { none: 401, auditor: 403, tenantAdmin: 403, admin: 201 }],
    ['GET', '/v1/cards', undefined, { none: 401, auditor: 200, tenantAdmin: 200, admin: 200 }],
    ['GET', '/v1/custody/keys', undefined, { none: 401, auditor: 200, tenantAdmin: 403, admin: 200 }],
    ['POST', '/v1/custody/keys', { name: 'matrix-kek', purpose: 'wrap' }, { none: 401, auditor: 403, tenantAdmin: 403, admin: 201 }],
    ['POST', '/v1/readers/matrix-r/suspend', undefined, { none: 401, auditor: 403, tenantAdmin: 403, admin: 200 }],
    ['GET', '/v1/readers/self', undefined, { none: 401, auditor: 403, tenantAdmin: 403, admin: 403 }],
  ];
  for (const [method, path, body, want] of matrix) {
    it(`${method} ${path}`, async () => {
      const got = {
        none: (await h.call(method, path, body === undefined ? {} : { body })).status,
        auditor: (await h.call(method, path, body === undefined ? { token: auditor } : { token: auditor, body })).status,
        tenantAdmin: (await h.call(method, path, body === undefined ? { token: accessAdmin } : { token: accessAdmin, body })).status,
        admin: (await h.call(method, path, body === undefined ? { token: h.admin } : { token: h.admin, body })).status,
      };
      expect(got).toEqual(want);
    });
  }
});

describe('readers: enrolment and mTLS', () => {
  it('enrol by CSR + one-time code, authenticate by client certificate, suspend, revoke', async () => {
    expect((await h.call('POST', '/v1/readers', { token: h.admin, body: { id: 'door-1', name: 'front door' } })).status).toBe(201);
    const role = await h.call('POST', '/v1/readers/door-1/roles', { token: accessAdmin, body: { tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver'] } });
    expect(role.status).toBe(201);
    const foreign = await h.call('POST', '/v1/readers/door-1/roles', { token: accessAdmin, body: { tenantId: 'cafeteria', aid: 'CAFE01', keyNo: 1, operations: ['deliver'] } });
    expect(foreign.status).toBe(403);

    const code = await h.call('POST', '/v1/readers/door-1/enrolment-codes', { token: h.admin, body: {} });
    expect(code.status).toBe(201);
    const { keyPem, csr } = await readerKeyAndCsr();
    const bad = await h.call('POST', '/v1/enrol', { body: { csr: 'not a csr', code: code.body.code } });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'ERR_PKI_CSR_INVALID']);
    const enrolled = await h.call('POST', '/v1/enrol', { body: { csr, code: code.body.code } });
    expect(enrolled.status).toBe(201);
    expect(enrolled.body.readerId).toBe('door-1');
    const replay = await h.call('POST', '/v1/enrol', { body: { csr, code: code.body.code } });
    expect([replay.status, replay.body.error.code]).toEqual([403, 'ERR_PKI_ENROLMENT_CODE']);

    const cert = { cert: enrolled.body.certificate as string, key: keyPem };
    const self = await h.call('GET', '/v1/readers/self', { cert });
    expect(self.status).toBe(200);
    expect(self.body.reader.id).toBe('door-1');
    expect(self.body.roles).toHaveLength(1);
    // a reader is not an operator
    expect((await h.call('GET', '/v1/tenants', { cert })).status).toBe(403);

    expect((await h.call('POST', '/v1/readers/door-1/suspend', { token: h.admin })).body.state).toBe('suspended');
    expect((await h.call('GET', '/v1/readers/self', { cert })).body.error.code).toBe('ERR_READER_NOT_ACTIVE');
    expect((await h.call('POST', '/v1/readers/door-1/resume', { token: h.admin })).body.state).toBe('active');
    expect((await h.call('GET', '/v1/readers/self', { cert })).status).toBe(200);
    expect((await h.call('POST', '/v1/readers/door-1/revoke', { token: h.admin })).body.state).toBe('revoked');
    expect((await h.call('GET', '/v1/readers/self', { cert })).status).toBe(403);
    expect((await h.call('POST', '/v1/readers/door-1/resume', { token: h.admin })).status).toBe(409);
    // the tenant admin sees the reader (it holds a role in its tenant)
    const list = await h.call('GET', '/v1/readers', { token: accessAdmin });
    expect(list.body.readers.map((r: { id: string }) => r.id)).toContain('door-1');
  });
});

describe('enrolment is atomic', () => {
  it('enrolling a reader revoked meanwhile fails (409) and leaves the code unused', async () => {
    expect((await h.call('POST', '/v1/readers', { token: h.admin, body: { id: 'gate-2', name: 'gate' } })).status).toBe(201);
    const code = await h.call('POST', '/v1/readers/gate-2/enrolment-codes', { token: h.admin, body: {} });
    expect((await h.call('POST', '/v1/readers/gate-2/revoke', { token: h.admin })).status).toBe(200);
    const { csr } = await readerKeyAndCsr();
    const r = await h.call('POST', '/v1/enrol', { body: { csr, code: code.body.code } });
    expect([r.status, r.body.error.code]).toEqual([409, 'ERR_DOMAIN_STATE']);
    const row = await h.cms.db.db.selectFrom('enrolment_codes').selectAll().where('reader_id', '=', 'gate-2').executeTakeFirstOrThrow();
    expect(row.used_at).toBeNull();
    expect((await h.call('GET', '/v1/readers/gate-2', { token: h.admin })).body.reader.certSerial).toBeNull();
  });
});

describe('custody key admin (no plaintext ever)', () => {
  it('create, list, rotate, versions; conflicts and unknown keys are 4xx', async () => {
    const c = await h.call('POST', '/v1/custody/keys', { token: h.admin, body: { name: 'access.a1c001.k1', purpose: 'diversify', alg: 'aes128' } });
    expect(c.status).toBe(201);
    expect(Object.keys(c.body).sort()).toEqual(['alg', 'latestVersion', 'minDecryptionVersion', 'minEncryptionVersion', 'name', 'purpose', 'versions']);
    expect((await h.call('POST', '/v1/custody/keys', { token: h.admin, body: { name: 'access.a1c001.k1', purpose: 'wrap' } })).status).toBe(409);
    const rot = await h.call('POST', '/v1/custody/keys/access.a1c001.k1/rotate', { token: h.admin });
    expect(rot.body.latestVersion).toBe(2);
    const v = await h.call('GET', '/v1/custody/keys/access.a1c001.k1/versions', { token: auditor });
    expect(v.body.versions.map((x: { version: number }) => x.version)).toEqual([1, 2]);
    const unknown = await h.call('GET', '/v1/custody/keys/nope', { token: h.admin });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'ERR_CUSTODY_UNKNOWN_KEY']);
  });

  it("a tenant-scoped auditor sees only its tenant's keys; other tenants' and the issuer's keys answer as unknown", async () => {
    for (const name of ['access.A1C002.1', 'library.B2C001.1']) expect((await h.call('POST', '/v1/custody/keys', { token: h.admin, body: { name, purpose: 'diversify', alg: 'aes128' } })).status).toBe(201);
    for (const name of ['kek.access', 'kek.library', 'kek.issuer']) expect((await h.call('POST', '/v1/custody/keys', { token: h.admin, body: { name, purpose: 'wrap' } })).status).toBe(201);
    const listed = ((await h.call('GET', '/v1/custody/keys', { token: accessAuditor })).body.keys as { name: string }[]).map((k) => k.name);
    expect(listed).toContain('access.A1C002.1');
    expect(listed).toContain('kek.access');
    expect(listed.filter((n) => !n.startsWith('access.') && n !== 'kek.access')).toEqual([]);
    for (const name of ['library.B2C001.1', 'kek.library', 'kek.issuer']) {
      for (const path of [`/v1/custody/keys/${name}`, `/v1/custody/keys/${name}/versions`]) {
        const r = await h.call('GET', path, { token: accessAuditor });
        expect([path, r.status, r.body.error.code]).toEqual([path, 404, 'ERR_CUSTODY_UNKNOWN_KEY']);
      }
    }
    expect((await h.call('GET', '/v1/custody/keys/access.A1C002.1/versions', { token: accessAuditor })).status).toBe(200);
    // the all-tenant auditor and the issuer see everything
    const everything = ((await h.call('GET', '/v1/custody/keys', { token: auditor })).body.keys as { name: string }[]).map((k) => k.name);
    expect(everything).toEqual(expect.arrayContaining(['library.B2C001.1', 'kek.library', 'kek.issuer']));
  });
});

describe('cards', () => {
  it('list and get, scoped to the tenant', async () => {
    const cards = h.cms.deps.domain!.cards;
    await cards.createBlank('04A1B2C3D4E5F6');
    await cards.transition('04A1B2C3D4E5F6', 'issued');
    await cards.recordInstallation('04A1B2C3D4E5F6', 'A1C001', [{ keyNo: 0, version: 1 }, { keyNo: 1, version: 1 }, { keyNo: 2, version: 1 }]);
    await cards.createBlank('04FFFFFFFFFF01');
    expect((await h.call('GET', '/v1/cards', { token: h.admin })).body.cards).toHaveLength(2);
    const mine = await h.call('GET', '/v1/cards', { token: accessAdmin });
    expect(mine.body.cards.map((c: { uid: string }) => c.uid)).toEqual(['04A1B2C3D4E5F6']);
    const one = await h.call('GET', '/v1/cards/04a1b2c3d4e5f6', { token: accessAuditor });
    expect(one.body.applications[0]).toMatchObject({ aid: 'A1C001', tenantId: 'access' });
    expect((await h.call('GET', '/v1/cards/04FFFFFFFFFF01', { token: accessAdmin })).status).toBe(404);
    expect((await h.call('GET', '/v1/cards?limit=0', { token: h.admin })).status).toBe(400);
  });
});

describe('audit over HTTP', () => {
  it('operator actions are audited with the request id as correlation id; tenant scoping; proofs and checkpoints', async () => {
    const made = await h.call('POST', '/v1/tenants', { token: h.admin, body: { id: 'audited-t', name: 'A' }, headers: { 'x-request-id': 'corr-audit-1' } });
    expect(made.status).toBe(201);
    const all = await h.call('GET', '/v1/audit/entries?limit=1000', { token: auditor });
    expect(all.status).toBe(200);
    const mine = all.body.entries.filter((e: { correlationId: string }) => e.correlationId === 'corr-audit-1');
    expect(mine.map((e: { operation: string; result: string }) => `${e.operation}:${e.result}`)).toEqual(['api.tenant.create:requested', 'api.tenant.create:ok']);
    expect(h.logLines.some((l) => l.includes('"reqId":"corr-audit-1"'))).toBe(true);
    // custody operations are in the same log
    expect(all.body.entries.some((e: { operation: string }) => e.operation.startsWith('custody.'))).toBe(true);

    expect((await h.call('GET', '/v1/audit/entries', { token: accessAdmin })).status).toBe(403);
    expect((await h.call('GET', '/v1/audit/entries?tenant=cafeteria', { token: accessAdmin })).status).toBe(403);
    const scoped = await h.call('GET', '/v1/audit/entries?tenant=access&limit=1000', { token: accessAdmin });
    expect(scoped.status).toBe(200);
    expect(scoped.body.entries.length).toBeGreaterThan(0);
    expect(scoped.body.entries.every((e: { tenant: string }) => e.tenant === 'access')).toBe(true);

    const view = await h.call('GET', '/v1/audit/tenants/access/view', { token: accessAuditor });
    expect(view.status).toBe(200);
    expect(view.body.entries[0].proof.treeSize).toBe(view.body.checkpoint.size);
    expect(view.body.checkpoint.note).toContain('desfire-cms');
    expect((await h.call('GET', '/v1/audit/tenants/cafeteria/view', { token: accessAuditor })).status).toBe(403);

    const cp1 = await h.call('GET', '/v1/audit/checkpoints/latest', { token: accessAuditor });
    await h.call('POST', '/v1/tenants', { token: h.admin, body: { id: 'audited-u', name: 'U' } });
    const cp2 = await h.call('POST', '/v1/audit/checkpoints', { token: auditor });
    expect(cp2.status).toBe(201);
    expect(cp2.body.size).toBeGreaterThan(cp1.body.size);
    const cons = await h.call('GET', `/v1/audit/proofs/consistency?from=${cp1.body.size}&to=${cp2.body.size}`, { token: accessAuditor });
    expect(cons.status).toBe(200);
    expect(cons.body.hashes.length).toBeGreaterThan(0);
    const inc = await h.call('GET', `/v1/audit/proofs/inclusion?index=0&treeSize=${cp2.body.size}`, { token: auditor });
    expect([inc.status, inc.body.treeSize]).toEqual([200, cp2.body.size]);
    expect((await h.call('GET', `/v1/audit/proofs/inclusion?index=0`, { token: accessAuditor })).status).toBe(403);
    const bad = await h.call('GET', `/v1/audit/proofs/inclusion?index=999999&treeSize=${cp2.body.size}`, { token: auditor });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'ERR_AUDIT_PROOF']);
  });
});

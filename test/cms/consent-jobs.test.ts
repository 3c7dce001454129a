// Consent enforced on station jobs (the composition root's default, as `desfire-cms server` runs it) over HTTPS with an mTLS station: no install/delete job without the tenant's
// authorisation (403 ERR_CONSENT_DENIED, audited); with one, the job's plan and its audit entries
// name it; a cardholder's withdrawal lets the station delete the application at the next
// presentation (the station sees the pending deletion).
import 'reflect-metadata';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/cms/api/server.js';
import { type CmsApp, buildCmsApp } from '../../src/cms/app.js';
import { loadConfig, resolveSecrets } from '../../src/cms/config/index.js';
import { attachStation } from '../../src/cms/jobs/module.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import { enrolReader } from '../../src/cms/pki/enrol.js';
import { createEnrolmentCode } from '../../src/cms/pki/enrolment.js';
import { signStationReceipt } from '../../src/reader/station/receipt.js';
import type { CallOptions, HttpsResult } from './api-harness.js';

let cms: CmsApp;
let server: RunningServer;
let agent: HttpsAgent;
let admin: string;
let accessAdmin: string;
let station: { cert: string; key: string };
const UID = '04E5E5E5E5E5E5';
const UID2 = '04E6E6E6E6E6E6';

function call(method: string, path: string, o: CallOptions = {}): Promise<HttpsResult> {
  const headers: Record<string, string> = {};
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  if (payload !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) });
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: server.port, method, path, headers, ca: cms.ca!.certificatePem, servername: 'localhost', agent, ...(o.cert ? { cert: o.cert.cert, key: o.cert.key } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body, text, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

beforeAll(async () => {
  const env = { DESFIRE_CMS_HTTP_PORT: '0', DESFIRE_VAULT_PASSPHRASE: 'consent jobs passphrase 0123' };
  const { config } = loadConfig({ env, overrides: { dataDir: mkdtempSync(join(tmpdir(), 'cms-consent-')) } });
  config.logging.level = 'warn';
  cms = await buildCmsApp(config, resolveSecrets(config, env), { logDestination: new Writable({ write: (_c, _e, cb) => cb() }) });
  server = await startServer(cms.deps, { host: '127.0.0.1', port: 0, ...(cms.tls ? { tls: cms.tls } : {}) });
  agent = new HttpsAgent({ keepAlive: true, maxSockets: 4 });
  admin = cms.bootstrapToken!;
  const campus = readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8');
  const lay = await new Promise<number>((res, rej) => {
    const r = httpsRequest({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/v1/layouts', ca: cms.ca!.certificatePem, servername: 'localhost', agent, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/yaml' } }, (s) => {
      s.resume();
      s.on('end', () => res(s.statusCode ?? 0));
    });
    r.on('error', rej);
    r.end(campus);
  });
  expect(lay).toBe(201);
  accessAdmin = (await call('POST', '/v1/tokens', { token: admin, body: { label: 'access', roles: ['tenant_admin'], tenants: ['access'] } })).body.token;
  // a station of the access tenant (install/delete its application)
  expect((await call('POST', '/v1/readers', { token: admin, body: { id: 'desk-1', name: 'badge office' } })).status).toBe(201);
  expect((await call('POST', '/v1/readers/desk-1/roles', { token: admin, body: { tenantId: 'access', aid: 'A1C001', keyNo: 0, operations: ['install', 'issue'] } })).status).toBe(201);
  const code = await call('POST', '/v1/readers/desk-1/enrolment-codes', { token: admin, body: {} });
  x509.cryptoProvider.set(webcrypto as never);
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=desk-1', keys: keys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
  const enrolled = await call('POST', '/v1/enrol', { body: { csr: csr.toString('pem'), code: code.body.code } });
  expect(enrolled.status).toBe(201);
  station = { cert: enrolled.body.certificate, key };
  const cards = cms.deps.domain!.cards;
  await cards.createBlank(UID2);
  await cards.transition(UID2, 'issued');
  // UID is issued by the station (its card master key then exists, so an install job can be claimed)
  const issue = await call('POST', '/v1/station/jobs', { cert: station, body: { kind: 'issue', uid: UID, profile: 'staff' } });
  expect(issue.status).toBe(201);
  const ij = (await call('POST', `/v1/station/jobs/${issue.body.jobId}/claim`, { cert: station, body: { token: issue.body.token } })).body.job;
  const steps = [{ op: 'ChangeKey', aid: '000000', keyNo: 0, keyVersion: ij.cmk.version, status: 0 }, { op: 'ChangeKeySettings', status: 0 }];
  const issued = await call('POST', `/v1/station/jobs/${issue.body.jobId}/receipt`, { cert: station, body: { receipt: await signStationReceipt({ jobId: ij.jobId, jti: ij.jti, uid: UID, results: steps, at: 1 }, createPrivateKey(key)) } });
  expect([issued.status, issued.body.ok]).toEqual([200, true]);
  await cards.recordInstallation(UID2, 'A1C001', [0, 1, 2].map((keyNo) => ({ keyNo, version: 1 })));
}, 120_000);
afterAll(async () => {
  agent?.destroy();
  await server?.close();
  await cms?.close();
});

async function entriesSince(from: number) {
  return cms.deps.audit!.entries({ from, limit: 100_000 });
}

describe('station jobs under tenant authorisation', () => {
  it('install: refused without the tenant authorisation (audited); allowed with it, and the job names it', async () => {
    const from = cms.deps.audit!.size;
    const no = await call('POST', '/v1/station/jobs', { cert: station, body: { kind: 'install', uid: UID, aid: 'A1C001' } });
    expect([no.status, no.body.error.code]).toEqual([403, 'ERR_CONSENT_DENIED']);
    const e = await entriesSince(from);
    expect(e.some((x) => x.operation === 'consent.check' && x.result === 'denied' && x.cardUid === UID)).toBe(true);
    expect(e.some((x) => x.operation === 'api.refused' && x.correlationId === no.headers['x-request-id'])).toBe(true);
    expect(await cms.db.db.selectFrom('station_jobs').selectAll().where('uid', '=', UID).where('kind', '=', 'install').execute()).toEqual([]);

    // the issuer asks; the tenant grants
    const req = await call('POST', '/v1/authorisation-requests', { token: admin, body: { tenant: 'access', aid: 'A1C001', operation: 'install', cards: [UID], ttlSeconds: 600, reason: 'new badge' } });
    expect(req.status).toBe(201);
    const g = await call('POST', `/v1/authorisation-requests/${req.body.id}/grant`, { token: accessAdmin, body: {} });
    expect(g.status).toBe(200);
    const authId = g.body.authorisation.id as string;

    const from2 = cms.deps.audit!.size;
    const ok = await call('POST', '/v1/station/jobs', { cert: station, body: { kind: 'install', uid: UID, aid: 'A1C001' } });
    expect(ok.status).toBe(201);
    const job = await call('GET', `/v1/jobs/${ok.body.jobId}`, { token: admin });
    expect(job.body.plan.authorisation).toBe(authId);
    const e2 = await entriesSince(from2);
    expect(e2.some((x) => x.operation === 'consent.check' && x.result === 'ok' && x.details.authorisation === authId)).toBe(true);
    expect(e2.some((x) => x.operation === 'station.job_create' && x.result === 'ok' && x.details.authorisation === authId && x.details.jobId === ok.body.jobId)).toBe(true);

    // the job the station claims names it; the signed receipt must name the same one
    const claimed = await call('POST', `/v1/station/jobs/${ok.body.jobId}/claim`, { cert: station, body: { token: ok.body.token } });
    expect(claimed.status).toBe(200);
    expect(claimed.body.job.authorisation).toBe(authId);
    const signer = createPrivateKey(station.key);
    const base = { jobId: ok.body.jobId as string, jti: claimed.body.job.jti as string, uid: UID, results: [{ op: 'Authenticate', status: 0xae }], at: 1 };
    for (const authorisation of [undefined, 'auth_someotherone', `${authId}x`]) {
      const jws = await signStationReceipt({ ...base, ...(authorisation ? { authorisation } : {}) }, signer);
      const bad = await call('POST', `/v1/station/jobs/${ok.body.jobId}/receipt`, { cert: station, body: { receipt: jws } });
      expect([bad.status, bad.body.error.code]).toEqual([400, 'ERR_JOB_RECEIPT_MISMATCH']);
    }
    expect((await call('GET', `/v1/jobs/${ok.body.jobId}`, { token: admin })).body.state).toBe('claimed');
    const good = await call('POST', `/v1/station/jobs/${ok.body.jobId}/receipt`, { cert: station, body: { receipt: await signStationReceipt({ ...base, authorisation: authId }, signer) } });
    expect([good.status, good.body.ok, good.body.job.state]).toEqual([200, false, 'failed']);
    const e3 = await entriesSince(from2);
    expect(e3.some((x) => x.operation === 'station.job_receipt' && x.result === 'failed' && x.details.authorisation === authId)).toBe(true);
  });

  it('revoked: no new job starts under it', async () => {
    const a = await call('POST', '/v1/authorisations', { token: accessAdmin, body: { tenant: 'access', aid: 'A1C001', operation: 'delete', cards: [UID2], ttlSeconds: 600 } });
    expect(a.status).toBe(201);
    expect((await call('POST', `/v1/authorisations/${a.body.id}/revoke`, { token: accessAdmin })).status).toBe(200);
    const r = await call('POST', '/v1/station/jobs', { cert: station, body: { kind: 'delete', uid: UID2, aid: 'A1C001' } });
    expect([r.status, r.body.error.code]).toEqual([403, 'ERR_CONSENT_DENIED']);
  });

  it("cardholder withdrawal: the station sees the pending deletion and deletes under the withdrawal's authorisation", async () => {
    const c = await call('POST', '/v1/consents', { token: admin, body: { uid: UID2, aid: 'A1C001', cardholder: 'emp-77' } });
    expect(c.status).toBe(201);
    const w = await call('POST', `/v1/consents/${c.body.id}/withdraw`, { token: accessAdmin });
    expect(w.status).toBe(200);
    const pending = await call('GET', `/v1/pending-deletions?uid=${UID2}`, { cert: station });
    expect(pending.body.deletions.map((d: { aid: string }) => d.aid)).toEqual(['A1C001']);
    const job = await call('POST', '/v1/station/jobs', { cert: station, body: { kind: 'delete', uid: UID2, aid: 'A1C001' } });
    expect(job.status).toBe(201);
    const view = await call('GET', `/v1/jobs/${job.body.jobId}`, { token: admin });
    expect(view.body.plan.authorisation).toBe(w.body.deletion.authorisationId);
  });

  it('enforcement is what refuses: only the explicitly unsafe opt-out builds a CMS whose install job needs no authorisation', async () => {
    const UID3 = '04E7E7E7E7E7E7';
    const ctx = { actor: 'test:consent', purpose: 'consent opt-out test', correlationId: 'consent-opt-out' };
    const env = { DESFIRE_CMS_HTTP_PORT: '0', DESFIRE_VAULT_PASSPHRASE: 'consent opt-out passphrase 0123' };
    const { config } = loadConfig({ env, overrides: { dataDir: mkdtempSync(join(tmpdir(), 'cms-no-consent-')) } });
    config.logging.level = 'warn';
    const bare = await buildCmsApp(config, resolveSecrets(config, env), { logDestination: new Writable({ write: (_c, _e, cb) => cb() }), unsafeSkipConsent: true });
    try {
      const dm = bare.deps.domain!;
      await dm.tenants.registerLayout(parseLayout(readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8'), 'campus.yaml'));
      await dm.readers.register('desk-9', 'desk-9');
      await dm.readers.grantRole({ readerId: 'desk-9', tenantId: 'access', aid: 'A1C001', keyNo: 0, operations: ['install'] } as Parameters<typeof dm.readers.grantRole>[0]);
      const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=desk-9', keys: keys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
      const { code } = await createEnrolmentCode(bare.deps.pki!.codes, { readerId: 'desk-9', createdBy: 'test' });
      const e = await enrolReader(bare.deps.pki!.ca, bare.deps.pki!.codes, { csrPem: csr.toString('pem'), code });
      await dm.readers.attachCertificate('desk-9', { serial: e.serial, pem: e.certificatePem, notAfter: e.notAfter.getTime() });
      await dm.cards.createBlank(UID3);
      await dm.cards.transition(UID3, 'issued');
      const { job } = await (await attachStation(bare)).jobs.create(ctx, 'desk-9', { kind: 'install', uid: UID3, aid: 'A1C001' });
      expect(job.state).toBe('created');
      expect((job.plan as { authorisation?: string }).authorisation).toBeUndefined();
    } finally {
      await bare.close();
    }
    // the same request on the default CMS (no authorisation for UID3): refused, no job
    await cms.deps.domain!.cards.createBlank(UID3);
    await cms.deps.domain!.cards.transition(UID3, 'issued');
    const r = await call('POST', '/v1/station/jobs', { cert: station, body: { kind: 'install', uid: UID3, aid: 'A1C001' } });
    expect([r.status, r.body.error.code]).toEqual([403, 'ERR_CONSENT_DENIED']);
  });

  it("card profile: set at issue time, changed only by the issuer; standing policies match the card's record", async () => {
    const UID3 = '04E7E7E7E7E7E7'; // issued, no profile (the previous test)
    expect((await call('GET', `/v1/cards/${UID}`, { token: admin })).body.card.profile).toBe('staff');
    expect((await call('GET', `/v1/cards/${UID3}`, { token: admin })).body.card.profile).toBeNull();
    const pol = await call('POST', '/v1/authorisations', { token: accessAdmin, body: { tenant: 'access', aid: 'A1C001', operation: 'install', profile: 'visitor', ttlSeconds: 600 } });
    expect(pol.status).toBe(201);
    const from = cms.deps.audit!.size;
    const no = await call('POST', '/v1/station/jobs', { cert: station, body: { kind: 'install', uid: UID3, aid: 'A1C001' } });
    expect([no.status, no.body.error.code]).toEqual([403, 'ERR_CONSENT_DENIED']);
    expect((await entriesSince(from)).some((x) => x.operation === 'consent.check' && x.result === 'denied' && String(x.details.reason).split(', ').includes('card profile'))).toBe(true);
    // only the issuer sets it; bad input changes nothing
    const t = await call('PUT', `/v1/cards/${UID3}/profile`, { token: accessAdmin, body: { profile: 'visitor' } });
    expect(t.status).toBe(403);
    expect((await call('PUT', `/v1/cards/${UID3}/profile`, { token: admin, body: { profile: '*' } })).status).toBe(400);
    expect((await call('PUT', '/v1/cards/04ABABABABABAB/profile', { token: admin, body: { profile: 'visitor' } })).body.error.code).toBe('ERR_CONSENT_NOT_FOUND');
    expect((await call('GET', `/v1/cards/${UID3}`, { token: admin })).body.card.profile).toBeNull();
    const set = await call('PUT', `/v1/cards/${UID3}/profile`, { token: admin, body: { profile: 'visitor' } });
    expect([set.status, set.body]).toEqual([200, { uid: UID3, profile: 'visitor' }]);
    expect((await entriesSince(from)).some((x) => x.operation === 'api.card.profile' && x.cardUid === UID3 && x.details.profile === 'visitor')).toBe(true);
    const ok = await call('POST', '/v1/station/jobs', { cert: station, body: { kind: 'install', uid: UID3, aid: 'A1C001' } });
    expect(ok.status).toBe(201);
    expect((await call('GET', `/v1/jobs/${ok.body.jobId}`, { token: admin })).body.plan.authorisation).toBe(pol.body.id);
    // a profile on an issue request is validated like the route's
    const bad = await call('POST', '/v1/station/jobs', { cert: station, body: { kind: 'issue', uid: '04ACACACACACAC', profile: 'no spaces' } });
    expect(bad.status).toBe(400);
  });
});

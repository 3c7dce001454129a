// The separation of duties, enforced: roles × operations × tenants over a real HTTPS server (the
// whole CMS: SQLite, embedded vault, CA, mTLS readers). The operations are every route in the
// Fastify route table at run time, so a route added later is covered automatically; a route/role
// pair that the table below does not grant is expected to be REFUSED (403, or 404 where the API
// hides what is outside the caller's tenants), and every refusal must be in the audit log
// ('api.refused' with the request id) before the answer left.
//
//   roles:   issuer_admin of the issuer · tenant_admin of A · tenant_admin of B · auditor of A ·
//            a reader holding a role of A · a reader holding a role of B · no credentials at all
//   tenants: each request is made once against A's resources and once against B's
//   grants:  'all' = allowed whatever the tenant · 'own' = allowed for the caller's own tenant only
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as x509 from '@peculiar/x509';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsentService } from '../../src/cms/consent/index.js';
import { grantStandingConsent } from '../helpers/consent.js';
import { type CallOptions, type CmsHarness, type HttpsResult, startCms } from './api-harness.js';

type Who = 'issuer' | 'adminA' | 'adminB' | 'auditorA' | 'readerA' | 'readerB' | 'anonymous';
type Tn = 'A' | 'B';
type Grant = 'all' | 'own';
const WHO: Who[] = ['issuer', 'adminA', 'adminB', 'auditorA', 'readerA', 'readerB', 'anonymous'];
const HOME: Record<Who, Tn | '*' | '-'> = { issuer: '*', adminA: 'A', adminB: 'B', auditorA: 'A', readerA: 'A', readerB: 'B', anonymous: '-' };
const OPS: Who[] = ['issuer', 'adminA', 'adminB', 'auditorA'];
const READERS: Who[] = ['readerA', 'readerB'];
const all = (ws: Who[]): Partial<Record<Who, Grant>> => Object.fromEntries(ws.map((w) => [w, 'all']));
const own = (ws: Who[]): Partial<Record<Who, Grant>> => Object.fromEntries(ws.map((w) => [w, 'own']));

/** Routes anyone may call (no credentials at all). */
const PUBLIC = new Set([
  'GET /healthz',
  'GET /readyz',
  'GET /docs',
  'GET /docs/openapi.json',
  'POST /v1/enrol',
  // the console's static assets and the audit log's public verification key (the console signs in with a token)
  'GET /console',
  'GET /console/vkey',
  'GET /console/*',
]);

/** THE table of rights. Anything not listed here is refused. */
const GRANTS: Record<string, Partial<Record<Who, Grant>>> = {
  // operator tokens
  'POST /v1/tokens': all(['issuer']),
  'GET /v1/tokens': all(['issuer', 'adminA', 'adminB']),
  'GET /v1/tokens/self': all(OPS),
  'DELETE /v1/tokens/:id': all(['issuer']),
  // tenants, applications, layouts
  'GET /v1/tenants': all(OPS),
  'POST /v1/tenants': all(['issuer']),
  'GET /v1/tenants/:id': { issuer: 'all', ...own(['adminA', 'adminB', 'auditorA']) },
  'DELETE /v1/tenants/:id': all(['issuer']), // under a tenant_deletion approval (428 without one)
  'GET /v1/applications': all(OPS),
  'GET /v1/applications/:aid': { issuer: 'all', ...own(['adminA', 'adminB', 'auditorA']) },
  'POST /v1/layouts': { issuer: 'all', ...own(['adminA', 'adminB']) },
  // custody: key metadata for the issuer and auditors, never key material; changes by the issuer only
  'GET /v1/custody/keys': all(['issuer', 'auditorA']),
  'GET /v1/custody/keys/:name': all(['issuer', 'auditorA']),
  'GET /v1/custody/keys/:name/versions': all(['issuer', 'auditorA']),
  'POST /v1/custody/keys': all(['issuer']),
  'POST /v1/custody/keys/:name/rotate': all(['issuer']),
  // under M-of-N approval (engineer A): export sealed to a recipient key, the vault's state, unseal/seal — all-tenant issuer only
  'POST /v1/custody/keys/:name/export': all(['issuer']),
  'GET /v1/custody/status': all(['issuer']),
  'POST /v1/custody/unseal': all(['issuer']),
  'POST /v1/custody/seal': all(['issuer']),
  // cards and the denylist
  'GET /v1/cards': all(OPS),
  'GET /v1/cards/:uid': { issuer: 'all', ...own(['adminA', 'adminB', 'auditorA']) },
  'POST /v1/cards/:uid/state': all(['issuer']),
  'GET /v1/cards/denylist': all(OPS),
  'PUT /v1/cards/denylist/:uid': all(['issuer']),
  'DELETE /v1/cards/denylist/:uid': all(['issuer']),
  // audit
  'GET /v1/audit/entries': { issuer: 'all', ...own(['adminA', 'adminB', 'auditorA']) },
  'GET /v1/audit/tenants/:tenant/view': { issuer: 'all', ...own(['adminA', 'adminB', 'auditorA']) },
  'GET /v1/audit/proofs/inclusion': all(['issuer']),
  // the log's signed checkpoints and consistency proofs carry no tenant data: anyone may verify the log
  'GET /v1/audit/proofs/consistency': all(OPS),
  'GET /v1/audit/checkpoints/latest': all(OPS),
  'POST /v1/audit/checkpoints': all(['issuer', 'auditorA']),
  // alerts span tenants: a token for every tenant (the issuer here; auditorA is tenant-scoped)
  'GET /v1/alerts': all(['issuer']),
  'POST /v1/alerts/:id/acknowledge': all(['issuer']),
  // readers
  'GET /v1/readers': all(OPS),
  'POST /v1/readers': all(['issuer']),
  'GET /v1/readers/:id': { issuer: 'all', ...own(['adminA', 'adminB', 'auditorA']) },
  'POST /v1/readers/:id/suspend': all(['issuer']),
  'POST /v1/readers/:id/resume': all(['issuer']),
  'POST /v1/readers/:id/revoke': all(['issuer']),
  'POST /v1/readers/:id/roles': { issuer: 'all', ...own(['adminA', 'adminB']) },
  'POST /v1/readers/:id/enrolment-codes': all(['issuer']),
  'GET /v1/readers/:id/baton': { issuer: 'all', ...own(['adminA', 'adminB', 'auditorA']) },
  'GET /v1/readers/self': all(READERS),
  'POST /v1/readers/self/baton': all(READERS),
  'GET /v1/readers/self/sync': all(READERS),
  // consent and authorisation: only the tenant grants; the issuer requests
  'POST /v1/authorisations': own(['adminA', 'adminB']),
  'GET /v1/authorisations': all(OPS),
  'GET /v1/authorisations/:id': { issuer: 'all', ...own(['adminA', 'adminB', 'auditorA']) },
  'POST /v1/authorisations/:id/revoke': own(['adminA', 'adminB']),
  'POST /v1/authorisation-requests': all(['issuer']),
  'GET /v1/authorisation-requests': all(OPS),
  'GET /v1/authorisation-requests/:id': { issuer: 'all', ...own(['adminA', 'adminB', 'auditorA']) },
  'POST /v1/authorisation-requests/:id/grant': own(['adminA', 'adminB']),
  'POST /v1/authorisation-requests/:id/refuse': own(['adminA', 'adminB']),
  'POST /v1/authorisation-requests/:id/cancel': all(['issuer']),
  'POST /v1/consents': { issuer: 'all', ...own(['adminA', 'adminB']) },
  'GET /v1/consents': all(OPS),
  'POST /v1/consents/:id/withdraw': { issuer: 'all', ...own(['adminA', 'adminB']) },
  'GET /v1/pending-deletions': all([...OPS, ...READERS]),
  'PUT /v1/cards/:uid/profile': all(['issuer']),
  // station jobs, key delivery, remote mode: readers act only for the applications of their roles
  'POST /v1/station/jobs': own(READERS),
  'POST /v1/station/jobs/:id/claim': all(READERS),
  'POST /v1/station/jobs/:id/receipt': all(READERS),
  'GET /v1/jobs': all(OPS), // cut to the caller's tenants (a personalise job to its own installations)
  'GET /v1/jobs/:id': all(OPS),
  'POST /v1/jobs/:id/reconcile': all(['issuer']), // asks a station to probe the card of an unknown job
  'POST /v1/station/reconcile': all(READERS), // the reconciliations asked of this station (its own only)
  'POST /v1/keys/deliver': own(READERS),
  'POST /v1/keys/master': own(READERS), // with a role granting 'offline-master' (the matrix readers hold one on key 2)
  'POST /v1/remote/sessions': own(READERS),
  'POST /v1/remote/sessions/:id/step': all(READERS),
  // key rotation, approvals, KEK rewrap, compromise (engineer J): the issuer acts; auditors read
  // metadata (versions, campaigns, approvals, runs) — never key material
  'GET /v1/key-versions/:tenant/:aid/:keyNo': { issuer: 'all', auditorA: 'own' },
  'GET /v1/readers/self/key-versions/:aid/:keyNo': own(READERS),
  'POST /v1/readers/self/rotations': own(READERS), // field rotation: with a role granting 'rotate' (the matrix readers hold one on key 1)
  'POST /v1/readers/self/rotations/:id/receipt': all(READERS),
  'GET /v1/rotation/campaigns': all(['issuer', 'auditorA']),
  'POST /v1/rotation/campaigns': all(['issuer']),
  'GET /v1/rotation/campaigns/:id': all(['issuer', 'auditorA']),
  'POST /v1/rotation/campaigns/:id/:action': all(['issuer']),
  // approvals span tenants and the issuer: all-tenant tokens only (a tenant-scoped auditor is refused)
  'GET /v1/approvals': all(['issuer']),
  'GET /v1/approvals/:id': all(['issuer']),
  'POST /v1/approvals': all(['issuer']),
  'POST /v1/approvals/:id/approve': all(['issuer']),
  'POST /v1/approvals/:id/reject': all(['issuer']),
  'GET /v1/kek/:name/census': all(['issuer', 'auditorA']),
  'POST /v1/kek/:name/rotation-requests': all(['issuer']),
  'POST /v1/kek/:name/rotate': all(['issuer']),
  'GET /v1/kek/runs': all(['issuer', 'auditorA']),
  'GET /v1/kek/runs/:id': all(['issuer', 'auditorA']),
  'POST /v1/kek/runs/:id/resume': all(['issuer']),
  'GET /v1/compromise/readers/:id/keys': all(['issuer', 'auditorA']),
  'POST /v1/compromise/readers/:id': all(['issuer']),
  'POST /v1/compromise/cards/:uid': all(['issuer']),
  'POST /v1/compromise/kek/:name': all(['issuer']),
  // operations: Prometheus metrics (labels name every tenant): all-tenant tokens only
  'GET /v1/metrics': all(['issuer']),
};

const TEN = { A: { tenant: 'access', aid: 'A1C001', uid: '04A1A1A1A1A1A1' }, B: { tenant: 'cafeteria', aid: 'CAFE01', uid: '04B2B2B2B2B2B2' } };

let h: CmsHarness;
const cred: Record<Who, CallOptions> = {} as never;
const fx: Record<Tn, Record<string, string>> = { A: {}, B: {} };
let layouts: Record<Tn, unknown>;

/** Route table → [METHOD, path] (HEAD is Fastify's automatic twin of GET). */
function routeTable(text: string): [string, string][] {
  const out: [string, string][] = [];
  const stack: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^([│ ├└─]*?)(?:├── |└── )(\S+)(?: \(([^)]*)\))?/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    // a wildcard child is printed as '*' (it is '/*' below its parent)
    const full = (stack[depth - 1] ?? '') + (m[2]!.startsWith('/') ? m[2] : `/${m[2]}`);
    stack[depth] = full;
    for (const meth of (m[3] ?? '').split(',').map((s) => s.trim()).filter(Boolean)) if (meth !== 'HEAD') out.push([meth, full]);
  }
  return out;
}

function fill(path: string, t: Tn): string {
  const f = fx[t];
  const seg = (name: string): string => {
    if (name === 'tenant') return TEN[t].tenant;
    if (name === 'aid') return TEN[t].aid;
    if (name === 'uid') return path.includes('/denylist/') || path.startsWith('/v1/compromise/') ? f.spareUid! : TEN[t].uid;
    if (name === 'keyNo') return '1';
    if (name === 'action') return 'pause';
    if (path.startsWith('/v1/compromise/readers/')) return 'matrix-no-such-reader';
    if (name === 'name') return 'matrix-no-such-key';
    if (path.startsWith('/v1/tenants/')) return TEN[t].tenant;
    if (path.startsWith('/v1/tokens/')) return 'tok_matrixnosuchtoken';
    if (path.startsWith('/v1/readers/')) return f.spareReader!;
    if (path.startsWith('/v1/authorisations/')) return path.endsWith('/revoke') ? f.revokableAuth! : f.auth!;
    if (path.startsWith('/v1/authorisation-requests/')) return path.endsWith('/refuse') ? f.request2! : path.endsWith('/cancel') ? f.request3! : f.request!;
    if (path.startsWith('/v1/consents/')) return f.consent!;
    if (path.startsWith('/v1/station/jobs/') || path.startsWith('/v1/jobs/')) return 'job_matrixnosuchjob';
    if (path.startsWith('/v1/remote/sessions/')) return 'rs_matrixnosuchsession';
    return 'x';
  };
  return path.replace(/:([A-Za-z]+)/g, (_s, n: string) => seg(n));
}

const QUERY: Record<string, (t: Tn) => string> = {
  'GET /v1/audit/entries': (t) => `?tenant=${TEN[t].tenant}`,
  'GET /v1/audit/proofs/inclusion': () => '?index=0',
  'GET /v1/audit/proofs/consistency': () => '?from=1&to=2',
};

/** Bodies where the tenant decides (valid, so a refusal cannot hide behind a 400). */
function body(key: string, t: Tn): unknown {
  const x = TEN[t];
  switch (key) {
    case 'POST /v1/layouts':
      return layouts[t];
    case 'POST /v1/readers/:id/roles':
      return { tenantId: x.tenant, aid: x.aid, keyNo: 2, operations: ['deliver'] };
    case 'POST /v1/authorisations':
      return { tenant: x.tenant, aid: x.aid, operation: 'install', cards: [fx[t].spareUid], ttlSeconds: 60 };
    case 'POST /v1/authorisation-requests':
      return { tenant: x.tenant, aid: x.aid, operation: 'install', cards: [fx[t].spareUid], ttlSeconds: 60, reason: 'matrix' };
    case 'PUT /v1/cards/:uid/profile':
      return { profile: 'matrix' };
    case 'POST /v1/consents':
      return { uid: fx[t].spareUid, aid: x.aid, cardholder: 'matrix-holder' };
    case 'POST /v1/station/jobs':
      return { kind: 'delete', uid: x.uid, aid: x.aid };
    case 'POST /v1/keys/deliver':
      return { uid: x.uid, aid: x.aid, keyNo: 1 };
    case 'POST /v1/keys/master':
      return { aid: x.aid, keyNo: 2 };
    case 'POST /v1/jobs/:id/reconcile':
      return { readerId: 'matrix-no-such-reader' };
    case 'POST /v1/station/reconcile':
      return { uid: x.uid };
    case 'POST /v1/readers/self/rotations':
      return { uid: x.uid, aid: x.aid, keyNo: 1, cardVersion: 1 };
    case 'POST /v1/remote/sessions':
      return { op: 'read', uid: x.uid, aid: x.aid, keyNo: 1, fileNo: 1 };
    default:
      return {};
  }
}

async function readerCert(id: string, tenant: Tn): Promise<{ cert: string; key: string }> {
  x509.cryptoProvider.set(webcrypto as never);
  expect((await h.call('POST', '/v1/readers', { token: h.admin, body: { id, name: id } })).status).toBe(201);
  const x = TEN[tenant];
  expect((await h.call('POST', `/v1/readers/${id}/roles`, { token: h.admin, body: { tenantId: x.tenant, aid: x.aid, keyNo: 1, operations: ['deliver', 'rotate'] } })).status).toBe(201);
  expect((await h.call('POST', `/v1/readers/${id}/roles`, { token: h.admin, body: { tenantId: x.tenant, aid: x.aid, keyNo: 0, operations: ['install'] } })).status).toBe(201);
  expect((await h.call('POST', `/v1/readers/${id}/roles`, { token: h.admin, body: { tenantId: x.tenant, aid: x.aid, keyNo: 2, operations: ['offline-master'] } })).status).toBe(201);
  const code = await h.call('POST', `/v1/readers/${id}/enrolment-codes`, { token: h.admin, body: {} });
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${id}`, keys: keys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
  const enrolled = await h.call('POST', '/v1/enrol', { body: { csr: csr.toString('pem'), code: code.body.code } });
  expect(enrolled.status).toBe(201);
  return { cert: enrolled.body.certificate as string, key };
}

async function token(roles: string[], tenants: string[]): Promise<string> {
  const r = await h.call('POST', '/v1/tokens', { token: h.admin, body: { label: roles.join('+'), roles, tenants } });
  expect(r.status).toBe(201);
  return r.body.token as string;
}

beforeAll(async () => {
  h = await startCms({ DESFIRE_CMS_LIMIT_OPERATOR_REQUESTS: '1000000', DESFIRE_CMS_LIMIT_READER_REQUESTS: '1000000', DESFIRE_CMS_LIMIT_ANONYMOUS_REQUESTS: '1000000' });
  const campus = readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8');
  expect((await h.call('POST', '/v1/layouts', { token: h.admin, raw: campus, contentType: 'application/yaml' })).status).toBe(201);
  await grantStandingConsent(h.server.app, h.admin, { operations: ['delete'] }); // consent is enforced: the stations' delete jobs run under it
  const doc = parseYaml(campus) as { tenants: { id: string }[] };
  layouts = { A: { ...doc, tenants: doc.tenants.filter((t) => t.id === 'access') }, B: { ...doc, tenants: doc.tenants.filter((t) => t.id === 'cafeteria') } };
  cred.anonymous = {};
  cred.issuer = { token: h.admin };
  cred.adminA = { token: await token(['tenant_admin'], ['access']) };
  cred.adminB = { token: await token(['tenant_admin'], ['cafeteria']) };
  cred.auditorA = { token: await token(['auditor'], ['access']) };
  cred.readerA = { cert: await readerCert('matrix-reader-a', 'A') };
  cred.readerB = { cert: await readerCert('matrix-reader-b', 'B') };
  // per tenant: a card carrying its application, a spare card, a spare reader, an authorisation,
  // requests, a cardholder consent
  const dm = h.cms.deps.domain!;
  const consent = (h.cms.deps.modules ?? []).length ? await consentService() : undefined;
  for (const t of ['A', 'B'] as Tn[]) {
    const x = TEN[t];
    const app = (await dm.tenants.application(x.aid))!;
    await dm.cards.createBlank(x.uid);
    await dm.cards.transition(x.uid, 'issued');
    await dm.cards.transition(x.uid, 'active');
    await dm.cards.recordInstallation(x.uid, x.aid, Array.from({ length: app.keyCount }, (_v, keyNo) => ({ keyNo, version: 1 })));
    fx[t].spareUid = t === 'A' ? '04C3C3C3C3C3C3' : '04D4D4D4D4D4D4';
    await dm.cards.createBlank(fx[t].spareUid);
    fx[t].spareReader = `matrix-spare-${t.toLowerCase()}`;
    expect((await h.call('POST', '/v1/readers', { token: h.admin, body: { id: fx[t].spareReader, name: 'spare' } })).status).toBe(201);
    expect((await h.call('POST', `/v1/readers/${fx[t].spareReader}/roles`, { token: h.admin, body: { tenantId: x.tenant, aid: x.aid, keyNo: 1, operations: ['deliver'] } })).status).toBe(201);
    const admin = t === 'A' ? cred.adminA : cred.adminB;
    const grant = async () => (await h.call('POST', '/v1/authorisations', { ...admin, body: { tenant: x.tenant, aid: x.aid, operation: 'rotate', cards: [x.uid], ttlSeconds: 3600 } })).body.id as string;
    fx[t].auth = await grant();
    fx[t].revokableAuth = await grant();
    const req = async () => (await h.call('POST', '/v1/authorisation-requests', { token: h.admin, body: { tenant: x.tenant, aid: x.aid, operation: 'delete', cards: [x.uid], ttlSeconds: 600, reason: 'matrix' } })).body.id as string;
    fx[t].request = await req();
    fx[t].request2 = await req();
    fx[t].request3 = await req();
    fx[t].consent = (await consent!.recordConsent({ actor: 'test' }, { uid: x.uid, aid: x.aid, cardholder: `holder-${t}` })).id;
    for (const k of Object.keys(fx[t])) expect(fx[t][k], k).toBeTruthy();
  }
}, 180_000);
afterAll(async () => h?.close());

/** The ConsentService the composed CMS mounted (reached through its route module's closure is not possible: build one on the same database). */
async function consentService(): Promise<ConsentService> {
  const { ConsentService: C } = await import('../../src/cms/consent/index.js');
  return new C({ db: h.cms.db.db });
}

interface Cell {
  key: string;
  who: Who;
  t: Tn;
  expect: 'allowed' | 'refused';
  status: number;
  code?: string;
  requestId: string;
}

describe('role × operation × tenant matrix (HTTPS, every route of the route table)', () => {
  // first: the matrix walk below changes custody state (key creation, sealing)
  it('a tenant-scoped auditor reads no global metadata: approvals refused, KEKs and rewrap runs of other tenants unknown', async () => {
    expect((await h.call('GET', '/v1/approvals', { token: h.admin })).status).toBe(200);
    const a = await h.call('GET', '/v1/approvals', { ...cred.auditorA });
    expect([a.status, a.body.error.code]).toEqual([403, 'ERR_FORBIDDEN_TENANT']);
    for (const kek of ['kek.access', 'kek.cafeteria']) {
      const k = await h.call('POST', '/v1/custody/keys', { token: h.admin, body: { name: kek, purpose: 'wrap' } });
      expect([201, 409]).toContain(k.status);
      expect((await h.call('GET', `/v1/kek/${kek}/census`, { token: h.admin })).status).toBe(200);
    }
    expect((await h.call('GET', '/v1/kek/kek.access/census', { ...cred.auditorA })).status).toBe(200);
    expect((await h.call('GET', '/v1/kek/kek.cafeteria/census', { ...cred.auditorA })).status).toBe(404);
    expect((await h.call('GET', '/v1/kek/runs', { ...cred.auditorA })).body.runs.every((r: { kek: string }) => r.kek === 'kek.access')).toBe(true);
  });

  it('every right not granted is refused, and every refusal is audited', async () => {
    const routes = routeTable(h.server.app.printRoutes({ commonPrefix: false }));
    expect(routes.length).toBeGreaterThan(40);
    const keys = routes.map(([m, p]) => `${m} ${p}`);
    // the table names only routes that exist, or that another module mounts when present (station/remote)
    const optional = /^(POST|GET) \/v1\/(station|jobs|keys|remote|key-versions|rotation|approvals|kek|compromise|metrics)/;
    for (const k of Object.keys(GRANTS)) if (!optional.test(k)) expect(keys, `GRANTS names '${k}' but the route table has no such route`).toContain(k);
    const auditFrom = h.cms.deps.audit!.size;
    const cells: Cell[] = [];
    for (const [method, path] of routes) {
      const key = `${method} ${path}`;
      for (const t of ['A', 'B'] as Tn[]) {
        const url = fill(path, t) + (QUERY[key]?.(t) ?? '');
        for (const who of WHO) {
          const g = PUBLIC.has(key) ? 'all' : GRANTS[key]?.[who];
          const allowed = g === 'all' || (g === 'own' && HOME[who] === t);
          const o: CallOptions = { ...cred[who] };
          if (method !== 'GET' && method !== 'DELETE') o.body = key === 'POST /v1/enrol' ? { csr: 'x', code: 'x' } : body(key, t);
          const r: HttpsResult = await h.call(method, url, o);
          cells.push({ key, who, t, expect: allowed ? 'allowed' : 'refused', status: r.status, code: r.body?.error?.code, requestId: String(r.headers['x-request-id']) });
        }
      }
    }
    const wrong = cells.filter((c) => (c.expect === 'allowed' ? [401, 403, 500].includes(c.status) : ![401, 403, 404].includes(c.status)));
    expect(wrong.map((c) => `${c.key} as ${c.who} on ${c.t}: expected ${c.expect}, got ${c.status} ${c.code ?? ''}`)).toEqual([]);

    // every refusal is in the audit log, under the request id it was answered with
    await h.cms.deps.audit!.sync?.();
    const entries = await h.cms.deps.audit!.entries({ from: auditFrom, limit: 1_000_000 });
    const refusedIds = new Set(entries.filter((e) => e.operation === 'api.refused').map((e) => e.correlationId));
    const unaudited = cells.filter((c) => c.expect === 'refused' && !refusedIds.has(c.requestId));
    expect(unaudited.map((c) => `${c.key} as ${c.who} on ${c.t}`)).toEqual([]);
    const refusals = cells.filter((c) => c.expect === 'refused').length;
    expect(refusals).toBeGreaterThan(200);
    process.stderr.write(`[matrix] ${routes.length} routes × ${WHO.length} roles × 2 tenants = ${cells.length} requests, ${refusals} refusals audited\n`);
  }, 300_000);

  it("lists are cut to the caller's tenants: a tenant-scoped auditor never sees another tenant's station jobs", async () => {
    // the matrix run made a delete job for each tenant's card (each station for its own tenant)
    const all = (await h.call('GET', '/v1/jobs', { token: h.admin })).body.jobs as { id: string; aid: string }[];
    const bJob = all.find((j) => j.aid === TEN.B.aid);
    expect(bJob).toBeDefined();
    const mine = (await h.call('GET', '/v1/jobs', { ...cred.auditorA })).body.jobs as { aid: string }[];
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((j) => j.aid === TEN.A.aid)).toBe(true);
    for (const w of ['auditorA', 'adminA'] as Who[]) expect((await h.call('GET', `/v1/jobs/${bJob!.id}`, { ...cred[w] })).status).toBe(404);
    expect((await h.call('GET', `/v1/jobs/${bJob!.id}`, { ...cred.adminB })).status).toBe(200);
  });

  it("the issuer's operators never obtain a tenant's application keys, nor authorise themselves", async () => {
    // no operator route hands out key material: key delivery is for readers (mTLS) only
    for (const w of OPS) {
      const r = await h.call('POST', '/v1/keys/deliver', { ...cred[w], body: { uid: TEN.A.uid, aid: TEN.A.aid, keyNo: 1 } });
      expect([w, r.status]).toEqual([w, 403]);
    }
    // an issuer cannot grant an authorisation (only ask), so no install job can run on its say-so
    const g = await h.call('POST', '/v1/authorisations', { token: h.admin, body: { tenant: 'access', aid: 'A1C001', operation: 'install', profile: '*', ttlSeconds: 60 } });
    expect([g.status, g.body.error.code]).toEqual([403, 'ERR_FORBIDDEN']);
    // a tenant admin cannot authorise another tenant's application, even naming its own tenant
    const x = await h.call('POST', '/v1/authorisations', { ...cred.adminA, body: { tenant: 'access', aid: 'CAFE01', operation: 'install', profile: '*', ttlSeconds: 60 } });
    expect([x.status, x.body.error.code]).toEqual([403, 'ERR_CONSENT_FORBIDDEN']);
    // nor the card master application (000000 is not an AID of any tenant)
    const m = await h.call('POST', '/v1/authorisations', { ...cred.adminA, body: { tenant: 'access', aid: '000000', operation: 'delete', profile: '*', ttlSeconds: 60 } });
    expect(m.status).toBeGreaterThanOrEqual(400);
    expect(m.status).toBeLessThan(500);
  });
});

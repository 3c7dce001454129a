// Readers: register, list/get (tenant admins see readers holding a role in their tenants),
// suspend/resume/revoke (revocation also revokes the certificate), roles; one-time enrolment codes
// (operator) and enrolment itself (CSR + code → certificate from the CMS CA; no credentials
// besides the code, rate-limited per client address).
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { OPERATIONS, type ReaderRepository } from '../../domain/index.js';
import type { CertificateAuthority } from '../../pki/ca.js';
import { createEnrolmentCode, type EnrolmentCodeStore } from '../../pki/enrolment.js';
import { enrolReader } from '../../pki/enrol.js';
import type { RevocationList } from '../../pki/revocation.js';
import type { Database } from '../../storage/index.js';
import { ANY_OPERATOR, actorOf, assertTenant, tenantScope } from '../auth.js';
import { type ActionRecorder, audited } from '../context.js';
import { ERROR_RESPONSES, notFound } from '../errors.js';

const ReaderId = Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,62}$' });
const Reader = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    state: Type.String(),
    certSerial: Type.Union([Type.String(), Type.Null()]),
    certNotAfter: Type.Union([Type.Integer(), Type.Null()]),
    createdAt: Type.Integer(),
    updatedAt: Type.Integer(),
  },
  { $id: 'Reader' },
);
const Role = Type.Object(
  {
    readerId: Type.String(),
    tenantId: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }),
    aid: Type.String({ pattern: '^[0-9A-Fa-f]{6}$' }),
    keyNo: Type.Integer({ minimum: 0, maximum: 13 }),
    operations: Type.Array(Type.Union(OPERATIONS.map((o) => Type.Literal(o))), { minItems: 1, uniqueItems: true }),
  },
  { $id: 'ReaderRole' },
);
const Params = Type.Object({ id: ReaderId });
const sec = [{ apiToken: [] }];

export interface ReaderRouteDeps {
  db: Kysely<Database>;
  readers: ReaderRepository;
  pki?: { ca: CertificateAuthority; codes: EnrolmentCodeStore; revocations: RevocationList };
  audit?: ActionRecorder;
  /**
   * Run `fn` in one database transaction with stores bound to it, so that multi-step changes
   * (consume code + attach certificate; revoke certificate + reader state) happen together or not
   * at all. Without it the steps run one after the other.
   */
  atomic?: <T>(fn: (s: TxStores) => Promise<T>) => Promise<T>;
}

export interface TxStores {
  readers: ReaderRepository;
  codes: EnrolmentCodeStore;
  revocations: RevocationList;
}

export function readerRoutes(d: ReaderRouteDeps) {
  const { readers } = d;
  const inTx = <T>(fn: (s: Partial<TxStores> & { readers: ReaderRepository }) => Promise<T>): Promise<T> =>
    d.atomic ? d.atomic(fn) : fn({ readers, ...(d.pki ? { codes: d.pki.codes, revocations: d.pki.revocations } : {}) });
  /** Reader ids visible to the caller: all, or those with a role in the caller's tenants. */
  async function visibleIds(scope: '*' | string[]): Promise<Set<string> | '*'> {
    if (scope === '*') return '*';
    if (scope.length === 0) return new Set();
    const rows = await d.db.selectFrom('reader_roles').select('reader_id').where('tenant_id', 'in', scope).execute();
    return new Set(rows.map((r) => r.reader_id));
  }

  return async (app: FastifyInstance) => {
    app.addSchema(Reader);
    app.addSchema(Role);

    app.get(
      '/readers',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: { tags: ['readers'], summary: 'readers in scope', security: sec, response: { 200: Type.Object({ readers: Type.Array(Type.Ref('Reader')) }), ...ERROR_RESPONSES } },
      },
      async (req) => {
        const vis = await visibleIds(tenantScope(req));
        const rows = await d.db.selectFrom('readers').select('id').orderBy('id').execute();
        const ids = rows.map((r) => r.id).filter((id) => vis === '*' || vis.has(id));
        const out = [];
        for (const id of ids) {
          const r = await readers.get(id);
          if (r) out.push(r);
        }
        return { readers: out };
      },
    );
    app.get(
      '/readers/self',
      {
        config: { auth: { reader: true } },
        schema: {
          tags: ['readers'],
          summary: 'the calling reader (mTLS) with its roles',
          security: [{ readerCertificate: [] }],
          response: { 200: Type.Object({ reader: Type.Ref('Reader'), roles: Type.Array(Type.Ref('ReaderRole')) }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        const id = req.principal?.id ?? '';
        return { reader: await readers.require(id), roles: await readers.roles(id) };
      },
    );
    app.post<{ Body: { id: string; name: string } }>(
      '/readers',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: {
          tags: ['readers'],
          summary: 'register a reader (it then enrols with a one-time code)',
          security: sec,
          body: Type.Object({ id: ReaderId, name: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false }),
          response: { 201: Type.Ref('Reader'), ...ERROR_RESPONSES, 409: Type.Ref('Error') },
        },
      },
      async (req, reply) =>
        reply.code(201).send(await audited(req, d.audit, { operation: 'api.reader.register', readerId: req.body.id }, () => readers.register(req.body.id, req.body.name))),
    );
    app.get<{ Params: Static<typeof Params> }>(
      '/readers/:id',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: { tags: ['readers'], summary: 'one reader with its roles', security: sec, params: Params, response: { 200: Type.Object({ reader: Type.Ref('Reader'), roles: Type.Array(Type.Ref('ReaderRole')) }), ...ERROR_RESPONSES } },
      },
      async (req) => {
        const vis = await visibleIds(tenantScope(req));
        const r = await readers.get(req.params.id);
        if (!r || (vis !== '*' && !vis.has(r.id))) throw notFound('reader');
        const scope = tenantScope(req);
        const roles = (await readers.roles(r.id)).filter((x) => scope === '*' || scope.includes(x.tenantId));
        return { reader: r, roles };
      },
    );
    for (const [action, state] of [
      ['suspend', 'suspended'],
      ['resume', 'active'],
      ['revoke', 'revoked'],
    ] as const) {
      app.post<{ Params: Static<typeof Params> }>(
        `/readers/:id/${action}`,
        {
          config: { auth: { operator: ['issuer_admin'] } },
          schema: { tags: ['readers'], summary: `${action} a reader${action === 'revoke' ? ' (its certificate is revoked too; final)' : ''}`, security: sec, params: Params, response: { 200: Type.Ref('Reader'), ...ERROR_RESPONSES, 409: Type.Ref('Error') } },
        },
        async (req) => {
          const r = await audited(req, d.audit, { operation: `api.reader.${action}`, readerId: req.params.id }, () =>
            inTx(async (s) => {
              const before = await s.readers.require(req.params.id);
              if (state === 'revoked' && before.certSerial && s.revocations) await s.revocations.revoke(before.certSerial, `reader revoked by ${actorOf(req)}`);
              return s.readers.setState(req.params.id, state);
            }),
          );
          req.log.info({ readerId: r.id, state: r.state }, `reader ${action}`);
          return r;
        },
      );
    }
    app.post<{ Params: Static<typeof Params>; Body: Omit<Static<typeof Role>, 'readerId'> }>(
      '/readers/:id/roles',
      {
        config: { auth: { operator: ['issuer_admin', 'tenant_admin'] } },
        schema: {
          tags: ['readers'],
          summary: 'grant a role: (tenant, AID, keyNo, operations)',
          security: sec,
          params: Params,
          body: Type.Omit(Role, ['readerId'], { additionalProperties: false }),
          response: { 201: Type.Ref('ReaderRole'), ...ERROR_RESPONSES, 409: Type.Ref('Error') },
        },
      },
      async (req, reply) => {
        assertTenant(req, req.body.tenantId);
        const b = req.body;
        const role = await audited(req, d.audit, { operation: 'api.reader.role.grant', readerId: req.params.id, tenant: b.tenantId, aid: b.aid, details: { keyNo: b.keyNo, operations: b.operations } }, () =>
          readers.grantRole({ readerId: req.params.id, tenantId: b.tenantId, aid: b.aid.toUpperCase(), keyNo: b.keyNo, operations: b.operations }),
        );
        return reply.code(201).send(role);
      },
    );

    if (!d.pki) return;
    const pki = d.pki;
    app.post<{ Params: Static<typeof Params>; Body: { ttlSeconds?: number } }>(
      '/readers/:id/enrolment-codes',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: {
          tags: ['enrolment'],
          summary: 'create a one-time enrolment code for a registered reader (shown once)',
          security: sec,
          params: Params,
          body: Type.Optional(Type.Object({ ttlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 7 * 86400 })) }, { additionalProperties: false })),
          response: { 201: Type.Object({ readerId: Type.String(), code: Type.String(), expiresAt: Type.Integer() }), ...ERROR_RESPONSES },
        },
      },
      async (req, reply) => {
        const r = await readers.require(req.params.id);
        const ttl = req.body?.ttlSeconds;
        const { code, expiresAt } = await audited(req, d.audit, { operation: 'api.reader.enrolment_code', readerId: r.id }, () =>
          createEnrolmentCode(pki.codes, { readerId: r.id, createdBy: actorOf(req), ...(ttl ? { ttlMs: ttl * 1000 } : {}) }),
        );
        req.log.info({ readerId: r.id, expiresAt }, 'enrolment code created');
        return reply.code(201).send({ readerId: r.id, code, expiresAt });
      },
    );
    app.post<{ Body: { csr: string; code: string } }>(
      '/enrol',
      {
        config: { auth: { public: true } },
        schema: {
          tags: ['enrolment'],
          summary: 'reader enrolment: PKCS#10 CSR (P-256) + one-time code → client certificate from the CMS CA',
          body: Type.Object({ csr: Type.String({ minLength: 1, maxLength: 16384 }), code: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
          response: {
            201: Type.Object({ readerId: Type.String(), certificate: Type.String(), caCertificate: Type.String(), serial: Type.String(), notAfter: Type.String() }),
            ...ERROR_RESPONSES,
          },
        },
      },
      async (req, reply) => {
        // The code is consumed and the certificate attached in one transaction: a failure (e.g. the
        // reader was revoked meanwhile) leaves the code unused.
        const res = await audited(req, d.audit, { operation: 'api.reader.enrol' }, () =>
          inTx(async (s) => {
            const e = await enrolReader(pki.ca, s.codes ?? pki.codes, { csrPem: req.body.csr, code: req.body.code });
            await s.readers.attachCertificate(e.readerId, { serial: e.serial, pem: e.certificatePem, notAfter: e.notAfter.getTime() });
            return e;
          }),
        );
        req.log.info({ readerId: res.readerId, serial: res.serial }, 'reader enrolled');
        return reply.code(201).send({ readerId: res.readerId, certificate: res.certificatePem, caCertificate: pki.ca.certificatePem, serial: res.serial, notAfter: res.notAfter.toISOString() });
      },
    );
  };
}

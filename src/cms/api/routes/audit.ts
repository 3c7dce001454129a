// The audit log over HTTP: entries (filtered), a tenant's view with inclusion proofs, inclusion and
// consistency proofs, signed checkpoints (latest, list, on demand). Tenant-scoped callers only see
// their tenants' entries, through the per-tenant view or the entries filter with their tenant.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditLog } from '../../audit/log.js';
import type { StoredCheckpoint } from '../../audit/store.js';
import { ANY_OPERATOR, assertTenant, tenantScope } from '../auth.js';
import { ERROR_RESPONSES, forbidden } from '../errors.js';

const TenantId = Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' });
const Aid = Type.String({ pattern: '^[0-9A-Fa-f]{6}$' });
const Entry = Type.Object(
  {
    index: Type.Integer(),
    time: Type.Integer(),
    actor: Type.Union([Type.String(), Type.Null()]),
    readerId: Type.Union([Type.String(), Type.Null()]),
    cardUid: Type.Union([Type.String(), Type.Null()]),
    tenant: Type.Union([Type.String(), Type.Null()]),
    aid: Type.Union([Type.String(), Type.Null()]),
    keyNo: Type.Union([Type.Integer(), Type.Null()]),
    keyVersion: Type.Union([Type.Integer(), Type.Null()]),
    operation: Type.String(),
    result: Type.String(),
    correlationId: Type.Union([Type.String(), Type.Null()]),
    details: Type.Unknown(),
  },
  { $id: 'AuditEntry' },
);
const Checkpoint = Type.Object(
  { size: Type.Integer(), rootHash: Type.String({ description: 'hex' }), note: Type.String({ description: 'C2SP signed note' }), createdAt: Type.Integer() },
  { $id: 'AuditCheckpoint' },
);
const Proof = Type.Object({ index: Type.Integer(), treeSize: Type.Integer(), hashes: Type.Array(Type.String()) }, { $id: 'InclusionProof' });
const EntriesQuery = Type.Object(
  {
    from: Type.Optional(Type.Integer({ minimum: 0 })),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    tenant: Type.Optional(TenantId),
    aid: Type.Optional(Aid),
    cardUid: Type.Optional(Type.String({ pattern: '^([0-9A-Fa-f]{2}){4,10}$' })),
    readerId: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,62}$' })),
  },
  { additionalProperties: false },
);
const sec = [{ apiToken: [] }];

const cpOut = (c: StoredCheckpoint) => ({ size: c.size, rootHash: Buffer.from(c.root).toString('hex'), note: c.note, createdAt: c.createdAt });

function requireGlobal(req: FastifyRequest): void {
  if (tenantScope(req) !== '*') throw forbidden('needs a token for every tenant (issuer admin or global auditor); use the tenant view', 'ERR_FORBIDDEN_TENANT');
}

export function auditRoutes(log: AuditLog) {
  return async (app: FastifyInstance) => {
    app.addSchema(Entry);
    app.addSchema(Checkpoint);
    app.addSchema(Proof);

    app.get<{ Querystring: Static<typeof EntriesQuery> }>(
      '/audit/entries',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: {
          tags: ['audit'],
          summary: 'audit entries, filtered; tenant-scoped callers must filter by one of their tenants',
          security: sec,
          querystring: EntriesQuery,
          response: { 200: Type.Object({ entries: Type.Array(Type.Ref('AuditEntry')), next: Type.Union([Type.Integer(), Type.Null()]) }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        const q = req.query;
        if (tenantScope(req) !== '*') {
          if (!q.tenant) throw forbidden('a tenant-scoped token must filter by its tenant', 'ERR_FORBIDDEN_TENANT');
          assertTenant(req, q.tenant);
        }
        await log.sync();
        const entries = await log.entries({
          ...(q.from !== undefined ? { from: q.from } : {}),
          limit: q.limit,
          ...(q.tenant ? { tenant: q.tenant } : {}),
          ...(q.aid ? { aids: [q.aid.toUpperCase()] } : {}),
          ...(q.cardUid ? { cardUid: q.cardUid.toUpperCase() } : {}),
          ...(q.readerId ? { readerId: q.readerId } : {}),
        });
        return { entries, next: entries.length === q.limit ? entries[entries.length - 1]!.index + 1 : null };
      },
    );
    app.get<{ Params: { tenant: string }; Querystring: { from?: number; limit: number } }>(
      '/audit/tenants/:tenant/view',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: {
          tags: ['audit'],
          summary: "a tenant's view: its entries, each with an inclusion proof against the latest signed checkpoint",
          security: sec,
          params: Type.Object({ tenant: TenantId }),
          querystring: Type.Object({ from: Type.Optional(Type.Integer({ minimum: 0 })), limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) }, { additionalProperties: false }),
          response: {
            200: Type.Object({ checkpoint: Type.Ref('AuditCheckpoint'), entries: Type.Array(Type.Object({ entry: Type.Ref('AuditEntry'), leafHash: Type.String(), proof: Type.Ref('InclusionProof') })) }),
            ...ERROR_RESPONSES,
          },
        },
      },
      async (req) => {
        assertTenant(req, req.params.tenant);
        await log.sync();
        const v = await log.view({ tenant: req.params.tenant, limit: req.query.limit, ...(req.query.from !== undefined ? { from: req.query.from } : {}) });
        return { checkpoint: cpOut(v.checkpoint), entries: v.entries };
      },
    );
    app.get<{ Querystring: { index: number; treeSize?: number } }>(
      '/audit/proofs/inclusion',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: {
          tags: ['audit'],
          summary: 'inclusion proof of entry `index` (RFC 9162) in the tree of `treeSize` leaves (default: the latest checkpoint)',
          security: sec,
          querystring: Type.Object({ index: Type.Integer({ minimum: 0 }), treeSize: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false }),
          response: { 200: Type.Ref('InclusionProof'), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        requireGlobal(req);
        await log.sync();
        return log.inclusionProof(req.query.index, req.query.treeSize);
      },
    );
    app.get<{ Querystring: { from: number; to: number } }>(
      '/audit/proofs/consistency',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: {
          tags: ['audit'],
          summary: 'consistency proof between two tree sizes (RFC 9162); hashes only',
          security: sec,
          querystring: Type.Object({ from: Type.Integer({ minimum: 1 }), to: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
          response: { 200: Type.Object({ from: Type.Integer(), to: Type.Integer(), hashes: Type.Array(Type.String()) }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        await log.sync();
        return { from: req.query.from, to: req.query.to, hashes: await log.consistencyProof(req.query.from, req.query.to) };
      },
    );
    app.get(
      '/audit/checkpoints/latest',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: { tags: ['audit'], summary: 'the latest signed checkpoint', security: sec, response: { 200: Type.Ref('AuditCheckpoint'), ...ERROR_RESPONSES } },
      },
      async () => {
        const cp = (await log.latestCheckpoint()) ?? (await log.checkpoint());
        return cpOut(cp);
      },
    );
    app.post(
      '/audit/checkpoints',
      {
        config: { auth: { operator: ['issuer_admin', 'auditor'] } },
        schema: { tags: ['audit'], summary: 'sign a checkpoint now (idempotent for an unchanged tree)', security: sec, response: { 201: Type.Ref('AuditCheckpoint'), ...ERROR_RESPONSES } },
      },
      async (req, reply) => {
        await log.sync();
        return reply.code(201).send(cpOut(await log.checkpoint()));
      },
    );
  };
}

// Station jobs (readers with the install/issue operations, by mTLS), their status (operators), and
// online key delivery for runtime readers (mTLS). Every refusal is a 4xx with a stable code.
//
//   POST /v1/station/jobs                 reader: ask for a job {kind: issue|install|delete, uid, aid?, picc?},
//                                         or {kind: personalise, uid, aids, picc?, profile?}: a blank card's
//                                         issue + every installation in ONE job (one receipt);
//                                         with claim: true the job comes back claimed (keys sealed), no token
//   POST /v1/station/jobs/:id/claim       reader: redeem the single-use token → the job, keys sealed to it
//   POST /v1/station/jobs/:id/receipt     reader: the signed receipt → mapping recorded (or job failed)
//   GET  /v1/jobs, /v1/jobs/:id           operators: job state and outcome
//   POST /v1/keys/deliver                 reader: the key of its role for a presented card, sealed
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { KeyDelivery } from '../../delivery/service.js';
import { JobError } from '../../jobs/errors.js';
import type { JobRequest } from '../../jobs/plan.js';
import type { StationJobs } from '../../jobs/service.js';
import type { ServerTimings } from '../../jobs/timings.js';
import { ANY_OPERATOR, tenantScope } from '../auth.js';
import { callerContext } from '../context.js';
import { ApiError, ERROR_RESPONSES } from '../errors.js';

const Uid = Type.String({ pattern: '^([0-9A-Fa-f]{2}){4,10}$' });
const Aid = Type.String({ pattern: '^[0-9A-Fa-f]{6}$' });
const JobId = Type.String({ pattern: '^job_[A-Za-z0-9_-]{1,40}$' });
const Flags = Type.Object(
  {
    masterKeyChangeable: Type.Optional(Type.Boolean()),
    freeDirectoryListing: Type.Optional(Type.Boolean()),
    freeCreateDelete: Type.Optional(Type.Boolean()),
    configurationChangeable: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const Profile = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' });
const Picc = Type.Object({ keySettings: Type.Optional(Flags), randomUid: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
const CreateBody = Type.Union([
  Type.Object({ kind: Type.Literal('issue'), uid: Uid, claim: Type.Optional(Type.Boolean()), profile: Type.Optional(Profile), picc: Type.Optional(Picc) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('install'), uid: Uid, aid: Aid, claim: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('delete'), uid: Uid, aid: Aid, claim: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  // AIDs in installation order; duplicates are refused by the service (ERR_JOB_BAD_INPUT)
  Type.Object({ kind: Type.Literal('personalise'), uid: Uid, aids: Type.Array(Aid, { maxItems: 28 }), claim: Type.Optional(Type.Boolean()), profile: Type.Optional(Profile), picc: Type.Optional(Picc) }, { additionalProperties: false }),
]);
const JobView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  readerId: Type.String(),
  uid: Type.String(),
  aid: Type.String(),
  state: Type.String(),
  plan: Type.Unknown(),
  outcome: Type.Unknown(),
  createdAt: Type.Integer(),
  expiresAt: Type.Integer(),
  updatedAt: Type.Integer(),
});
const DeliverBody = Type.Object({ uid: Uid, aid: Aid, keyNo: Type.Integer({ minimum: 0, maximum: 13 }) }, { additionalProperties: false });
const readerSec = [{ readerCertificate: [] }];
const opSec = [{ apiToken: [] }];

/** Token and receipt failures are refusals of what the reader presented. */
const PKI_STATUS: Record<string, number> = {
  ERR_TOKEN_REPLAYED: 403,
  ERR_TOKEN_INVALID: 403,
  ERR_TOKEN_EXPIRED: 403,
  ERR_RECEIPT_SIGNATURE: 400,
  ERR_RECEIPT_INVALID: 400,
  ERR_RECEIPT_MISMATCH: 400,
  ERR_DOMAIN_FORBIDDEN: 403,
};

export function toApiError(e: unknown): unknown {
  if (e instanceof JobError) return new ApiError(e.statusCode, e.code, e.message, e.details);
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && code in PKI_STATUS) return new ApiError(PKI_STATUS[code]!, code, (e as Error).message);
  return e;
}

function readerId(req: FastifyRequest): string {
  const p = req.principal;
  if (p?.kind !== 'reader') throw new ApiError(403, 'ERR_FORBIDDEN', 'only readers (mTLS) call this endpoint');
  return p.id;
}

async function wrap<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toApiError(e);
  }
}

const view = (j: Awaited<ReturnType<StationJobs['get']>>) => ({
  id: j.id,
  kind: j.kind,
  readerId: j.readerId,
  uid: j.uid,
  aid: j.aid,
  state: j.state,
  plan: j.plan,
  outcome: j.outcome,
  createdAt: j.createdAt,
  expiresAt: j.expiresAt,
  updatedAt: j.updatedAt,
});

export function stationRoutes(jobs: StationJobs, delivery: KeyDelivery, timings?: ServerTimings) {
  return async (app: FastifyInstance) => {
    if (timings) app.addHook('onResponse', async (req, reply) => timings.record(`${req.method} ${req.routeOptions.url ?? '?'}`, reply.elapsedTime));
    app.post<{ Body: Static<typeof CreateBody> }>(
      '/station/jobs',
      {
        config: { auth: { reader: true } },
        schema: {
          tags: ['station'],
          summary:
            "a station asks for a job on the card in front of it (201: job id + single-use operation token; with claim: true the job itself, claimed by this reader, keys sealed to it, and no token); kind 'personalise': a blank card's issue and every listed installation in one job",
          security: readerSec,
          body: CreateBody,
          response: { 201: Type.Object({ jobId: Type.String(), token: Type.Optional(Type.String()), expiresAt: Type.Integer(), job: Type.Optional(Type.Unknown()) }), ...ERROR_RESPONSES },
        },
      },
      async (req, reply) => {
        const rid = readerId(req);
        const { claim, ...body } = req.body;
        reply.code(201);
        if (claim) {
          const { job, wire } = await wrap(() => jobs.createClaimed(callerContext(req, 'station job'), rid, body as JobRequest));
          return { jobId: job.id, expiresAt: job.expiresAt, job: wire };
        }
        const { job, token } = await wrap(() => jobs.create(callerContext(req, 'station job'), rid, body as JobRequest));
        return { jobId: job.id, token, expiresAt: job.expiresAt };
      },
    );
    app.post<{ Params: { id: string }; Body: { token: string } }>(
      '/station/jobs/:id/claim',
      {
        config: { auth: { reader: true } },
        schema: {
          tags: ['station'],
          summary: 'redeem the operation token (once): the job with its keys sealed to this reader',
          security: readerSec,
          params: Type.Object({ id: JobId }),
          body: Type.Object({ token: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false }),
          response: { 200: Type.Object({ job: Type.Unknown() }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        const rid = readerId(req);
        return { job: await wrap(() => jobs.claim(callerContext(req, 'station job claim'), rid, req.params.id, req.body.token)) };
      },
    );
    app.post<{ Params: { id: string }; Body: { receipt: string } }>(
      '/station/jobs/:id/receipt',
      {
        config: { auth: { reader: true } },
        schema: {
          tags: ['station'],
          summary: "the station's signed receipt: the mapping is recorded only when it verifies and shows every planned step",
          security: readerSec,
          params: Type.Object({ id: JobId }),
          body: Type.Object({ receipt: Type.String({ minLength: 1, maxLength: 65536 }) }, { additionalProperties: false }),
          response: { 200: Type.Object({ ok: Type.Boolean(), job: JobView }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        const rid = readerId(req);
        const r = await wrap(() => jobs.receipt(callerContext(req, 'station job receipt'), rid, req.params.id, req.body.receipt));
        return { ok: r.ok, job: view(r.job) };
      },
    );
    app.get<{ Querystring: { uid?: string; state?: string; limit?: number } }>(
      '/jobs',
      {
        config: { auth: { operator: ['issuer_admin', 'auditor'] } },
        schema: {
          tags: ['station'],
          summary: 'station jobs (by card and/or state)',
          security: opSec,
          querystring: Type.Object(
            {
              uid: Type.Optional(Uid),
              state: Type.Optional(Type.Union(['created', 'claimed', 'completed', 'failed', 'unknown', 'reconciled'].map((s) => Type.Literal(s)))),
              limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ jobs: Type.Array(JobView) }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        const q = req.query;
        const list = await wrap(() => jobs.list({ ...(q.uid ? { uid: q.uid } : {}), ...(q.state ? { state: q.state as never } : {}), limit: q.limit ?? 100 }));
        // an auditor scoped to some tenants sees the jobs of their applications only
        const scope = tenantScope(req);
        if (scope === '*') return { jobs: list.map(view) };
        const own = new Set((await jobs.o.tenants.applications()).filter((a) => scope.includes(a.tenantId)).map((a) => a.aid));
        return { jobs: list.filter((j) => own.has(j.aid)).map(view) };
      },
    );
    app.get<{ Params: { id: string } }>(
      '/jobs/:id',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: { tags: ['station'], summary: 'one station job', security: opSec, params: Type.Object({ id: JobId }), response: { 200: JobView, ...ERROR_RESPONSES } },
      },
      async (req) => {
        const j = await wrap(() => jobs.get(req.params.id));
        if (req.principal?.kind === 'operator' && tenantScope(req) !== '*') {
          // tenant admins and tenant-scoped auditors see jobs of their tenants' applications only
          const t = await jobs.o.tenants.application(j.aid);
          if (!t || !(req.principal.tenants.includes('*') || req.principal.tenants.includes(t.tenantId))) throw new ApiError(404, 'ERR_NOT_FOUND', 'job not found');
        }
        return view(j);
      },
    );
    app.post<{ Body: Static<typeof DeliverBody> }>(
      '/keys/deliver',
      {
        config: { auth: { reader: true, readerRecheck: 'handler' } }, // the delivery lookup re-checks the reader (api/auth.ts)
        schema: {
          tags: ['delivery'],
          summary: "online key delivery: the key of this reader's role for the presented card, sealed to the reader, short TTL",
          security: readerSec,
          body: DeliverBody,
          response: {
            200: Type.Object({ uid: Type.String(), aid: Type.String(), keyNo: Type.Integer(), keyVersion: Type.Integer(), binding: Type.Unknown(), sealed: Type.Unknown() }),
            ...ERROR_RESPONSES,
          },
        },
      },
      async (req) => {
        const rid = readerId(req);
        return wrap(() => delivery.deliver(callerContext(req, 'key delivery'), rid, req.body, req.principal?.kind === 'reader' ? req.principal.recheck : undefined));
      },
    );
  };
}

// Station jobs (readers with the install/issue operations, by mTLS), their status (operators), and
// online key delivery for runtime readers (mTLS). Every refusal is a 4xx with a stable code.
//
//   POST /v1/station/jobs                 reader: ask for a job {kind: issue|install|delete, uid, aid?, picc?},
//                                         or {kind: personalise, uid, aids, picc?, profile?}: a blank card's
//                                         issue + every installation in ONE job (one receipt);
//                                         with claim: true the job comes back claimed (keys sealed), no token
//   POST /v1/station/jobs/:id/claim       reader: redeem the single-use token → the job, keys sealed to it
//   POST /v1/station/jobs/:id/receipt     reader: the signed receipt → mapping recorded (or job failed)
//   GET  /v1/jobs, /v1/jobs/:id           operators: job state and outcome (the list paged: ?after=<next>)
//   POST /v1/keys/deliver                 reader: the key of its role for a presented card, sealed
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { KeyDelivery } from '../../delivery/service.js';
import { JobError } from '../../jobs/errors.js';
import type { DeletePlan, Job, JobRequest, PersonalisePlan } from '../../jobs/plan.js';
import type { StationJobs } from '../../jobs/service.js';
import type { ServerTimings } from '../../jobs/timings.js';
import { ANY_OPERATOR, tenantScope } from '../auth.js';
import { callerContext } from '../context.js';
import { ApiError, ERROR_RESPONSES } from '../errors.js';
import { observeRoutes } from '../../ops/http-metrics.js';

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
/** A job's state as the receipt's answer gives it: the plan and outcome are what the station already has (the claimed job it ran, the results it signed). */
const JobSummary = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  readerId: Type.String(),
  uid: Type.String(),
  aid: Type.String(),
  state: Type.String(),
  createdAt: Type.Integer(),
  expiresAt: Type.Integer(),
  updatedAt: Type.Integer(),
});
/** A job as operators read it: its state and its plan and outcome. */
const JobView = Type.Composite([JobSummary, Type.Object({ plan: Type.Unknown(), outcome: Type.Unknown() })]);
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

const view = (j: Job) => ({
  id: j.id,
  kind: j.kind,
  readerId: j.readerId,
  uid: j.uid,
  aid: j.aid,
  state: j.state,
  plan: j.plan as unknown,
  outcome: j.outcome,
  createdAt: j.createdAt,
  expiresAt: j.expiresAt,
  updatedAt: j.updatedAt,
});

/** The opaque paging cursor of GET /v1/jobs: base64url of `<createdAt>.<id>` of the last job examined. */
const cursorAfter = (j: { createdAt: number; id: string }): string => Buffer.from(`${j.createdAt}.${j.id}`).toString('base64url');
const CURSOR_TEXT = /^(0|[1-9][0-9]{0,15})\.(job_[A-Za-z0-9_-]{1,40})$/;

/** A cursor of cursorAfter, or 400 ERR_BAD_CURSOR (only its own encoding: no other text decodes to the same job). */
export function jobCursor(s: string): { createdAt: number; id: string } {
  const m = /^[A-Za-z0-9_-]{1,128}$/.test(s) ? CURSOR_TEXT.exec(Buffer.from(s, 'base64url').toString('utf8')) : null;
  const at = m ? Number(m[1]) : NaN;
  if (!m || !Number.isSafeInteger(at) || cursorAfter({ createdAt: at, id: m[2]! }) !== s) throw new ApiError(400, 'ERR_BAD_CURSOR', 'after: not a cursor of GET /v1/jobs (pass the `next` of the previous page)');
  return { createdAt: at, id: m[2]! };
}

type Verdict = 'applied' | 'not-applied' | 'partial';

/**
 * A job as an operator scoped to `tenants` sees it, or undefined when no part of it is theirs.
 * install/delete: the job of one application — whole, if its tenant is in scope. personalise: the
 * card's job for every tenant at once — only the installations of the caller's tenants: the plan
 * holds their `installs` only (not the PICC part, the other installations, nor the digest binding
 * every tenant's authorisation), the outcome only their steps (a receipt's results naming their
 * AIDs; a probe's steps and findings of their AIDs, its verdict theirs). issue: the issuer's only.
 * `tenantOf`: the registered application's tenant (jobs stored before plans named it).
 */
export async function tenantJobView(j: Job, tenants: readonly string[], tenantOf: (aid: string) => Promise<string | undefined>): Promise<ReturnType<typeof view> | undefined> {
  const inScope = (t: string | undefined) => t !== undefined && tenants.includes(t);
  if (j.kind === 'install' || j.kind === 'delete') return inScope((j.plan as DeletePlan).tenant ?? (await tenantOf(j.aid))) ? view(j) : undefined;
  if (j.kind !== 'personalise') return undefined;
  const p = j.plan as PersonalisePlan;
  const own = [];
  for (const i of p.installs ?? []) if (inScope(i.tenant ?? (await tenantOf(i.aid)))) own.push(i);
  if (own.length === 0) return undefined;
  const aids = new Set(own.map((i) => i.aid));
  return { ...view(j), plan: { installs: own }, outcome: projectOutcome(j.outcome, aids) };
}

/** A personalise job's outcome limited to the steps of `aids` (unknown shapes: nothing). */
function projectOutcome(outcome: unknown, aids: ReadonlySet<string>): unknown {
  if (outcome === null || typeof outcome !== 'object') return null;
  const o = outcome as { source?: unknown; at?: unknown; results?: unknown; jobId?: unknown; steps?: unknown; findings?: unknown; claimed?: unknown };
  if (o.source === 'expiry') return { source: 'expiry', claimed: o.claimed === true };
  if (o.source === 'receipt' && Array.isArray(o.results)) return { source: 'receipt', at: o.at, results: (o.results as { aid?: unknown }[]).filter((r) => typeof r?.aid === 'string' && aids.has(r.aid)) };
  if (o.source === 'probe' && Array.isArray(o.steps)) {
    const steps = (o.steps as { step: string; verdict: Verdict }[]).filter((st) => aids.has(st.step));
    const findings = Array.isArray(o.findings) ? (o.findings as unknown[]).filter((f): f is string => typeof f === 'string' && aids.has(f.slice(0, f.indexOf(': ')))) : [];
    const verdict: Verdict = steps.every((st) => st.verdict === 'applied') ? 'applied' : steps.every((st) => st.verdict === 'not-applied') ? 'not-applied' : 'partial';
    return { source: 'probe', jobId: o.jobId, verdict, findings, steps };
  }
  return null;
}

export function stationRoutes(jobs: StationJobs, delivery: KeyDelivery, timings?: ServerTimings) {
  return async (app: FastifyInstance) => {
    // per route pattern, its key made once (observeRoutes: no routeOptions object, no promise per request)
    if (timings)
      observeRoutes(app, (route, method) => {
        const key = `${String(method)} ${route}`;
        return (req, reply) => timings.record(req.method === method ? key : `${req.method} ${route}`, reply.elapsedTime);
      });
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
          summary:
            "the station's signed receipt: the mapping is recorded only when it verifies and shows every planned step; the answer: ok and the job's state (not its plan and outcome: the station has the job it ran and the results it signed — operators read them at GET /v1/jobs/:id)",
          security: readerSec,
          params: Type.Object({ id: JobId }),
          body: Type.Object({ receipt: Type.String({ minLength: 1, maxLength: 65536 }) }, { additionalProperties: false }),
          response: { 200: Type.Object({ ok: Type.Boolean(), job: JobSummary }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        const rid = readerId(req);
        const r = await wrap(() => jobs.receipt(callerContext(req, 'station job receipt'), rid, req.params.id, req.body.receipt));
        const j = r.job;
        return { ok: r.ok, job: { id: j.id, kind: j.kind, readerId: j.readerId, uid: j.uid, aid: j.aid, state: j.state, createdAt: j.createdAt, expiresAt: j.expiresAt, updatedAt: j.updatedAt } };
      },
    );
    app.get<{ Querystring: { uid?: string; state?: string; limit?: number; after?: string } }>(
      '/jobs',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: {
          tags: ['station'],
          summary:
            "station jobs (by card and/or state), oldest first, paged: pass the answer's `next` as `after` (null: no more); a tenant-scoped operator sees its applications' jobs, a personalise job with its own installations' steps only — `limit` of those",
          security: opSec,
          querystring: Type.Object(
            {
              uid: Type.Optional(Uid),
              state: Type.Optional(Type.Union(['created', 'claimed', 'completed', 'failed', 'unknown', 'reconciled'].map((s) => Type.Literal(s)))),
              limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
              after: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: "the previous page's `next` (opaque)" })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ jobs: Type.Array(JobView), next: Type.Union([Type.String(), Type.Null()]) }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        const q = req.query;
        const limit = q.limit ?? 100;
        const filter = { ...(q.uid ? { uid: q.uid } : {}), ...(q.state ? { state: q.state as never } : {}) };
        let after = q.after === undefined ? undefined : jobCursor(q.after);
        const scope = tenantScope(req);
        if (scope === '*') {
          const rows = await wrap(() => jobs.list({ ...filter, limit, ...(after ? { after } : {}) }));
          return { jobs: rows.map(view), next: rows.length === limit ? cursorAfter(rows[rows.length - 1]!) : null };
        }
        if (scope.length === 0) return { jobs: [], next: null };
        // a tenant-scoped operator: the jobs of its applications (install/delete filed under their
        // AID, personalise under 000000 naming every tenant), each projected to its part — a job
        // with no part of theirs is skipped, so pages of rows are read until `limit` jobs are
        // theirs or none is left; `next` names the last job examined (not only the last returned)
        const apps = await jobs.o.tenants.applications();
        const tenantOf = new Map(apps.map((a) => [a.aid, a.tenantId]));
        const visibleTo = { aids: apps.filter((a) => scope.includes(a.tenantId)).map((a) => a.aid) };
        const batch = Math.min(1000, Math.max(limit, 100));
        const out = [];
        for (;;) {
          const from = after;
          const rows = await wrap(() => jobs.list({ ...filter, visibleTo, limit: batch, ...(from ? { after: from } : {}) }));
          for (let i = 0; i < rows.length; i++) {
            const j = rows[i]!;
            after = { createdAt: j.createdAt, id: j.id };
            const v = await tenantJobView(j, scope, async (aid) => tenantOf.get(aid));
            if (v) out.push(v);
            // full: more may follow, unless this was the last row there is
            if (out.length === limit) return { jobs: out, next: i === rows.length - 1 && rows.length < batch ? null : cursorAfter(j) };
          }
          if (rows.length < batch) return { jobs: out, next: null };
        }
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
        const scope = tenantScope(req);
        if (scope === '*') return view(j);
        // tenant admins and tenant-scoped auditors: jobs of their tenants' applications only, a
        // personalise job with their installations' steps only
        const v = await tenantJobView(j, scope, async (aid) => (await jobs.o.tenants.application(aid))?.tenantId);
        if (!v) throw new ApiError(404, 'ERR_NOT_FOUND', 'job not found');
        return v;
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

// Operator-requested reconciliation (src/cms/jobs/reconcile.ts): an issuer admin asks a station to
// probe the card of a job whose outcome is unknown; the station, with that card in front of it,
// lists what it was asked for (POST /v1/station/reconcile {uid}) and runs each probe through the remote-mode relay
// (POST /v1/remote/sessions {op: 'reconcile', jobId}). Nothing is decided without the probe.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { READER_ID_RE } from '../../pki/enrolment.js';
import { type RequestStore, requestReconcile, requestedFor } from '../../jobs/reconcile.js';
import type { StationJobs } from '../../jobs/service.js';
import { callerContext } from '../context.js';
import { ApiError, ERROR_RESPONSES } from '../errors.js';
import { toApiError } from './station.js';

const JobId = Type.String({ pattern: '^job_[A-Za-z0-9_-]{1,40}$' });
const Uid = Type.String({ pattern: '^([0-9A-Fa-f]{2}){4,10}$' });

const api = <T>(fn: () => Promise<T>): Promise<T> => fn().catch((e: unknown) => Promise.reject(toApiError(e)));

export function reconcileRoutes(jobs: StationJobs, store: RequestStore) {
  return async (app: FastifyInstance) => {
    app.post<{ Params: { id: string }; Body: { readerId: string } }>(
      '/jobs/:id/reconcile',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: {
          tags: ['station'],
          summary: "ask a station to probe the card of a job whose outcome is unknown (or failed); the verdict comes only from the probe (202)",
          security: [{ apiToken: [] }],
          params: Type.Object({ id: JobId }),
          body: Type.Object({ readerId: Type.String({ pattern: READER_ID_RE.source }) }, { additionalProperties: false }),
          response: {
            202: Type.Object({ jobId: Type.String(), readerId: Type.String(), uid: Type.String(), kind: Type.String(), aid: Type.String(), expiresAt: Type.Integer() }),
            ...ERROR_RESPONSES,
            409: Type.Ref('Error'),
          },
        },
      },
      async (req, reply) => {
        const r = await api(() => requestReconcile(jobs, store, callerContext(req, 'reconcile request'), req.params.id, req.body.readerId));
        reply.code(202);
        return r;
      },
    );
    // POST with the UID in the body: request URLs are logged at info level, and the UID of a
    // random-UID card is private (the same reason /v1/keys/deliver takes it in the body)
    app.post<{ Body: { uid: string } }>(
      '/station/reconcile',
      {
        config: { auth: { reader: true } },
        schema: {
          tags: ['station'],
          summary: 'the reconciliations this station was asked to run on the card in front of it (run each with POST /v1/remote/sessions {op: reconcile})',
          security: [{ readerCertificate: [] }],
          body: Type.Object({ uid: Uid }, { additionalProperties: false }),
          response: { 200: Type.Object({ jobs: Type.Array(Type.Object({ jobId: Type.String(), kind: Type.String(), aid: Type.String() })) }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        const p = req.principal;
        if (p?.kind !== 'reader') throw new ApiError(403, 'ERR_FORBIDDEN', 'only readers (mTLS) call this endpoint');
        return { jobs: await api(() => requestedFor(jobs, store, p.id, req.body.uid.toUpperCase())) };
      },
    );
  };
}

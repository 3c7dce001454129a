// Remote mode (readers by mTLS): the CMS runs authentication and secure messaging, the reader
// relays APDUs. POST /v1/remote/sessions starts an operation and answers the first APDU; each
// POST /v1/remote/sessions/:id/step carries the card's answer and gets the next APDU, until
// `done` with the result. op 'session': the CMS authenticates, then releases only the EV2 session
// keys (sealed to the reader) for the rest of that transaction.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { RemoteRequest, RemoteSessions } from '../../remote/service.js';
import { callerContext } from '../context.js';
import { ApiError, ERROR_RESPONSES } from '../errors.js';
import { toApiError } from './station.js';

const Step = Type.Object({ sessionId: Type.String(), apdu: Type.Optional(Type.String()), done: Type.Boolean(), result: Type.Optional(Type.Unknown()) });
const StartBody = Type.Union([
  Type.Object(
    {
      op: Type.Literal('read'),
      uid: Type.String({ pattern: '^([0-9A-Fa-f]{2}){4,10}$' }),
      aid: Type.String({ pattern: '^[0-9A-Fa-f]{6}$' }),
      keyNo: Type.Integer({ minimum: 0, maximum: 13 }),
      fileNo: Type.Integer({ minimum: 0, maximum: 31 }),
      offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffff })),
      length: Type.Optional(Type.Integer({ minimum: 0, maximum: 4096 })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      op: Type.Literal('session'),
      uid: Type.String({ pattern: '^([0-9A-Fa-f]{2}){4,10}$' }),
      aid: Type.String({ pattern: '^[0-9A-Fa-f]{6}$' }),
      keyNo: Type.Integer({ minimum: 0, maximum: 13 }),
    },
    { additionalProperties: false },
  ),
  Type.Object({ op: Type.Literal('reconcile'), jobId: Type.String({ pattern: '^job_[A-Za-z0-9_-]{1,40}$' }) }, { additionalProperties: false }),
]);
const sec = [{ readerCertificate: [] }];

export function remoteRoutes(remote: RemoteSessions) {
  return async (app: FastifyInstance) => {
    const rid = (p: unknown): string => {
      const q = p as { kind?: string; id?: string } | undefined;
      if (q?.kind !== 'reader' || !q.id) throw new ApiError(403, 'ERR_FORBIDDEN', 'only readers (mTLS) call this endpoint');
      return q.id;
    };
    app.post<{ Body: RemoteRequest }>(
      '/remote/sessions',
      {
        config: { auth: { reader: true } },
        schema: { tags: ['remote'], summary: 'start a remote-mode operation (the reader relays APDUs; keys stay in the CMS)', security: sec, body: StartBody, response: { 200: Step, ...ERROR_RESPONSES } },
      },
      async (req) => {
        try {
          return await remote.start(callerContext(req, 'remote mode'), rid(req.principal), req.body);
        } catch (e) {
          throw toApiError(e);
        }
      },
    );
    app.post<{ Params: { id: string }; Body: { response: string } }>(
      '/remote/sessions/:id/step',
      {
        config: { auth: { reader: true } },
        schema: {
          tags: ['remote'],
          summary: "relay the card's answer; get the next APDU or the result",
          security: sec,
          params: Type.Object({ id: Type.String({ pattern: '^rs_[A-Za-z0-9_-]{1,40}$' }) }),
          body: Type.Object({ response: Type.String({ minLength: 4, maxLength: 600 }) }, { additionalProperties: false }),
          response: { 200: Step, ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        try {
          return await remote.step(rid(req.principal), req.params.id, req.body.response);
        } catch (e) {
          throw toApiError(e);
        }
      },
    );
  };
}

// POST /v1/keys/master   reader (mTLS): the AN10922 master of (AID, keyNo), sealed to the reader,
// for offline use with cards it has not seen; only with a role granting 'offline-master'
// (src/cms/delivery/masters.ts says why that is a separate, explicit grant).
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { MasterDelivery } from '../../delivery/masters.js';
import { callerContext } from '../context.js';
import { ApiError, ERROR_RESPONSES } from '../errors.js';
import { toApiError } from './station.js';

const Body = Type.Object({ aid: Type.String({ pattern: '^[0-9A-Fa-f]{6}$' }), keyNo: Type.Integer({ minimum: 0, maximum: 13 }) }, { additionalProperties: false });

export function masterRoutes(masters: MasterDelivery) {
  return async (app: FastifyInstance) => {
    app.post<{ Body: Static<typeof Body> }>(
      '/keys/master',
      {
        config: { auth: { reader: true } },
        schema: {
          tags: ['delivery'],
          summary: "offline diversification master: the AN10922 master of this reader's role (needs 'offline-master'), sealed to the reader, TTL 5-15 min",
          security: [{ readerCertificate: [] }],
          body: Body,
          response: {
            200: Type.Object({
              tenant: Type.String(),
              aid: Type.String(),
              keyNo: Type.Integer(),
              keyVersion: Type.Integer(),
              alg: Type.String(),
              input: Type.Array(Type.String()),
              systemIdentifier: Type.String(),
              sealed: Type.Unknown(),
            }),
            ...ERROR_RESPONSES,
          },
        },
      },
      async (req) => {
        const p = req.principal;
        if (p?.kind !== 'reader') throw new ApiError(403, 'ERR_FORBIDDEN', 'only readers (mTLS) call this endpoint');
        try {
          return await masters.deliverMaster(callerContext(req, 'offline master delivery'), p.id, req.body);
        } catch (e) {
          throw toApiError(e);
        }
      },
    );
  };
}

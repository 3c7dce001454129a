// Reader audit baton and reader sync: what a reader agent calls on every contact (mTLS only), and
// the operator views.
//
//   POST /v1/readers/self/baton   reader: upload baton entries (idempotent by seq); the answer also
//                                 carries the reader's state and the card denylist
//   GET  /v1/readers/self/sync    reader: state + denylist + server time (no entries)
//                                 (both: ?denylist=<version> -> only the changes since that version)
//   GET  /v1/readers/:id/baton    operators: the stored entries of a reader
//   GET  /v1/cards/denylist       operators: the denylist
//   PUT  /v1/cards/denylist/:uid  issuer_admin: deny a card (readers refuse it at their next contact)
//   DELETE /v1/cards/denylist/:uid issuer_admin
//
// A revoked or suspended reader never reaches these handlers: mTLS authentication refuses it with
// 403 ERR_READER_NOT_ACTIVE, which the agent takes as "stop and wipe".
import { type Static, Type } from '@sinclair/typebox';
import type BetterSqlite3 from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { type BatonAudit, BatonError, BatonService, DENYLIST_TOKEN, MAX_BATCH } from '../../baton/service.js';
import type { ReaderRepository } from '../../domain/index.js';
import { GroupCommit } from '../../jobs/commit.js';
import type { Database } from '../../storage/index.js';
import { ANY_OPERATOR, actorOf, tenantScope } from '../auth.js';
import { ApiError, ERROR_RESPONSES, notFound } from '../errors.js';
import type { ApiModule } from '../ports.js';

const Entry = Type.Object(
  {
    seq: Type.Integer({ minimum: 1 }),
    time: Type.Integer({ minimum: 0 }),
    readerId: Type.String({ maxLength: 64 }),
    cardUid: Type.String({ pattern: '^([0-9A-F]{2}){0,10}$' }),
    aid: Type.String({ pattern: '^([0-9A-F]{6})?$' }),
    keyNo: Type.Integer({ minimum: -1, maximum: 13 }),
    keyVersion: Type.Integer({ minimum: -1, maximum: 255 }),
    op: Type.String({ minLength: 1, maxLength: 64 }),
    result: Type.String({ minLength: 1, maxLength: 128 }),
    prev: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    hash: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  },
  { additionalProperties: false, $id: 'BatonEntry' },
);
const SyncState = Type.Object({
  readerId: Type.String(),
  state: Type.String(),
  /** The whole denylist; empty when `denylistDelta` is given (an old reader never sends a version: it always gets the whole list here). */
  denylist: Type.Array(Type.String()),
  /** The version of the denylist this answer brings the reader to: sent back as ?denylist= at the next contact. */
  denylistVersion: Type.String(),
  /** Present when the reader sent ?denylist=<version> the CMS knows: the cards added and removed since (both empty: unchanged). */
  denylistDelta: Type.Optional(Type.Object({ since: Type.String(), add: Type.Array(Type.String()), remove: Type.Array(Type.String()) })),
  serverTime: Type.Integer(),
  acked: Type.Integer(),
  hash: Type.String(),
});
/** ?denylist=<version>: the denylist version the reader holds (absent: it holds none and gets the whole list). */
const SyncQuery = Type.Object({ denylist: Type.Optional(Type.String({ pattern: DENYLIST_TOKEN.source, maxLength: 40 })) });
const UidParams = Type.Object({ uid: Type.String({ pattern: '^([0-9A-Fa-f]{2}){4,10}$' }) });
const IdParams = Type.Object({ id: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,62}$' }) });
const mtls = [{ readerCertificate: [] }];
const sec = [{ apiToken: [] }];

const STATUS: Record<string, number> = { ERR_BATON_BAD_INPUT: 400 };

function apiError(e: unknown): unknown {
  if (e instanceof BatonError) return new ApiError(STATUS[e.code] ?? 409, e.code, e.message);
  return e;
}

export interface BatonRouteDeps {
  db: Kysely<Database>;
  readers: ReaderRepository;
  now?: () => number;
  /** The audit log: accepted baton entries are recorded in it (tamper-evident), before they are acknowledged. */
  audit?: BatonAudit;
  /** SQLite: the native connection; uploads are stored through a group commit with the WAL fsync off the event loop. */
  sqlite?: BetterSqlite3.Database;
}

export function batonModule(d: BatonRouteDeps): ApiModule {
  const gc = d.sqlite ? new GroupCommit(d.db, { native: d.sqlite }) : undefined;
  const svc = new BatonService(d.db, d.now, d.audit, gc ? (fn, o) => gc.run(fn, o) : undefined, gc ? d.sqlite : undefined, gc ? { durable: () => gc.durable() } : {});
  const now = d.now ?? Date.now;
  return {
    name: 'baton',
    register(app: FastifyInstance) {
      app.addSchema(Entry);
      const state = async (readerId: string, denylist: string | undefined, head?: { acked: number; hash: string }) => {
        const r = await d.readers.require(readerId);
        let h = head;
        if (!h) {
          const x = await svc.head(readerId);
          h = { acked: x.seq, hash: x.hash };
        }
        const dl = await svc.denylistFor(denylist);
        return { readerId, state: r.state, denylist: dl.full ?? [], denylistVersion: dl.version, ...(dl.delta ? { denylistDelta: dl.delta } : {}), serverTime: now(), acked: h.acked, hash: h.hash };
      };

      app.post<{ Body: { entries: Static<typeof Entry>[] }; Querystring: Static<typeof SyncQuery> }>(
        '/readers/self/baton',
        {
          config: { auth: { reader: true } },
          schema: {
            tags: ['readers'],
            summary: 'upload audit baton entries (idempotent by sequence number); answers with state and denylist',
            security: mtls,
            querystring: SyncQuery,
            body: Type.Object({ entries: Type.Array(Type.Ref('BatonEntry'), { maxItems: MAX_BATCH }) }, { additionalProperties: false }),
            response: { 200: Type.Object({ ...SyncState.properties, stored: Type.Integer(), duplicates: Type.Integer() }), ...ERROR_RESPONSES, 409: Type.Ref('Error') },
          },
        },
        async (req) => {
          const id = req.principal?.id ?? '';
          let r;
          try {
            r = await svc.sync(id, req.body.entries);
          } catch (e) {
            if (e instanceof BatonError) req.log.warn({ readerId: id, code: e.code }, 'baton refused');
            throw apiError(e);
          }
          return { ...(await state(id, req.query.denylist, { acked: r.acked, hash: r.hash })), stored: r.stored, duplicates: r.duplicates };
        },
      );
      app.get<{ Querystring: Static<typeof SyncQuery> }>(
        '/readers/self/sync',
        {
          config: { auth: { reader: true } },
          schema: { tags: ['readers'], summary: 'reader state, card denylist (whole, or the changes since ?denylist=<version>), server time, baton head', security: mtls, querystring: SyncQuery, response: { 200: SyncState, ...ERROR_RESPONSES } },
        },
        async (req) => state(req.principal?.id ?? '', req.query.denylist),
      );
      app.get<{ Params: Static<typeof IdParams>; Querystring: { after?: number; limit?: number } }>(
        '/readers/:id/baton',
        {
          config: { auth: { operator: ANY_OPERATOR } },
          schema: {
            tags: ['readers'],
            summary: "a reader's stored audit baton",
            security: sec,
            params: IdParams,
            querystring: Type.Object({ after: Type.Optional(Type.Integer({ minimum: 0 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })) }),
            response: { 200: Type.Object({ entries: Type.Array(Type.Ref('BatonEntry')) }), ...ERROR_RESPONSES },
          },
        },
        async (req) => {
          if (!(await d.readers.get(req.params.id))) throw notFound('reader');
          // a tenant-scoped operator sees the baton of readers holding a role of its tenants only
          const scope = tenantScope(req);
          if (scope !== '*' && !(await d.readers.roles(req.params.id)).some((r) => scope.includes(r.tenantId))) throw notFound('reader');
          return { entries: await svc.entries(req.params.id, { ...(req.query.after !== undefined ? { after: req.query.after } : {}), ...(req.query.limit !== undefined ? { limit: req.query.limit } : {}) }) };
        },
      );
      app.get(
        '/cards/denylist',
        {
          config: { auth: { operator: ANY_OPERATOR } },
          schema: { tags: ['cards'], summary: 'cards every reader refuses', security: sec, response: { 200: Type.Object({ uids: Type.Array(Type.String()) }), ...ERROR_RESPONSES } },
        },
        async () => ({ uids: await svc.denylist() }),
      );
      app.put<{ Params: Static<typeof UidParams>; Body: { reason: string } }>(
        '/cards/denylist/:uid',
        {
          config: { auth: { operator: ['issuer_admin'] } },
          schema: {
            tags: ['cards'],
            summary: 'deny a card (readers refuse it from their next contact)',
            security: sec,
            params: UidParams,
            body: Type.Object({ reason: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
            response: { 200: Type.Object({ uid: Type.String() }), ...ERROR_RESPONSES },
          },
        },
        async (req) => {
          try {
            await svc.deny(req.params.uid, req.body.reason, actorOf(req));
          } catch (e) {
            throw apiError(e);
          }
          req.log.info({ uid: req.params.uid.toUpperCase() }, 'card denied');
          return { uid: req.params.uid.toUpperCase() };
        },
      );
      app.delete<{ Params: Static<typeof UidParams> }>(
        '/cards/denylist/:uid',
        {
          config: { auth: { operator: ['issuer_admin'] } },
          schema: { tags: ['cards'], summary: 'take a card off the denylist', security: sec, params: UidParams, response: { 200: Type.Object({ uid: Type.String() }), ...ERROR_RESPONSES } },
        },
        async (req) => {
          if (!(await svc.allow(req.params.uid))) throw notFound('denylist entry');
          return { uid: req.params.uid.toUpperCase() };
        },
      );
    },
  };
}

// Cards: list (paged) and get, with the CardUID ↔ AID ↔ key versions mapping. A tenant admin or
// tenant auditor sees only cards carrying one of its applications, and only those applications.
// The issuer moves a card along its lifecycle (POST /v1/cards/:uid/state: issued → active when
// handed out, active ⇄ suspended, → revoked → destroyed; src/cms/domain/lifecycle.ts): keys are
// delivered to readers only for active cards.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import type { CardRepository } from '../../domain/index.js';
import type { Database } from '../../storage/index.js';
import { ANY_OPERATOR, tenantScope } from '../auth.js';
import { type ActionRecorder, audited } from '../context.js';
import { ERROR_RESPONSES, notFound } from '../errors.js';

const Uid = Type.String({ pattern: '^([0-9A-Fa-f]{2}){4,10}$' });
const Card = Type.Object(
  { uid: Type.String(), state: Type.String(), randomUid: Type.Boolean(), piccKeyVersion: Type.Integer(), createdAt: Type.Integer(), updatedAt: Type.Integer(), profile: Type.Union([Type.String(), Type.Null()]) },
  { $id: 'Card' },
);
const CardApp = Type.Object({ aid: Type.String(), tenantId: Type.String(), installedAt: Type.Integer(), keys: Type.Array(Type.Object({ keyNo: Type.Integer(), version: Type.Integer() })) });
const ListQuery = Type.Object(
  {
    state: Type.Optional(Type.Union(['blank', 'issued', 'active', 'suspended', 'revoked', 'destroyed'].map((s) => Type.Literal(s)))),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    after: Type.Optional(Uid),
  },
  { additionalProperties: false },
);
const sec = [{ apiToken: [] }];

const StateBody = Type.Object({ state: Type.Union((['active', 'suspended', 'revoked', 'destroyed'] as const).map((s) => Type.Literal(s))) }, { additionalProperties: false });

export function cardRoutes(db: Kysely<Database>, cards: CardRepository, audit?: ActionRecorder) {
  return async (app: FastifyInstance) => {
    app.addSchema(Card);
    app.get<{ Querystring: Static<typeof ListQuery> }>(
      '/cards',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: {
          tags: ['cards'],
          summary: 'cards in scope (paged by UID: pass the last UID as `after`)',
          security: sec,
          querystring: ListQuery,
          response: { 200: Type.Object({ cards: Type.Array(Type.Ref('Card')), next: Type.Union([Type.String(), Type.Null()]) }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        const scope = tenantScope(req);
        const q = req.query;
        let sel = db.selectFrom('cards').select('cards.uid').distinct();
        if (scope !== '*') {
          if (scope.length === 0) return { cards: [], next: null };
          sel = sel
            .innerJoin('card_applications', 'card_applications.uid', 'cards.uid')
            .innerJoin('applications', 'applications.aid', 'card_applications.aid')
            .where('applications.tenant_id', 'in', scope);
        }
        if (q.state) sel = sel.where('cards.state', '=', q.state);
        if (q.after) sel = sel.where('cards.uid', '>', q.after.toUpperCase());
        const rows = await sel.orderBy('cards.uid').limit(q.limit).execute();
        const out = [];
        for (const r of rows) {
          const c = await cards.get(r.uid);
          if (c) out.push(c);
        }
        return { cards: out, next: rows.length === q.limit ? rows[rows.length - 1]!.uid : null };
      },
    );
    app.post<{ Params: { uid: string }; Body: Static<typeof StateBody> }>(
      '/cards/:uid/state',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: {
          tags: ['cards'],
          summary: 'move a card along its lifecycle (issued → active when handed out; active ⇄ suspended; → revoked → destroyed)',
          security: sec,
          params: Type.Object({ uid: Uid }),
          body: StateBody,
          response: { 200: Type.Ref('Card'), ...ERROR_RESPONSES, 409: Type.Ref('Error') },
        },
      },
      async (req) => {
        const uid = req.params.uid.toUpperCase();
        const c = await audited(req, audit, { operation: 'api.card.state', cardUid: uid, details: { state: req.body.state } }, async () => {
          if (!(await cards.get(uid))) throw notFound('card');
          return cards.transition(uid, req.body.state);
        });
        req.log.info({ uid, state: c.state }, 'card state');
        return c;
      },
    );
    app.get<{ Params: { uid: string } }>(
      '/cards/:uid',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: {
          tags: ['cards'],
          summary: 'one card with its applications and key versions (in scope)',
          security: sec,
          params: Type.Object({ uid: Uid }),
          response: { 200: Type.Object({ card: Type.Ref('Card'), applications: Type.Array(CardApp) }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        const scope = tenantScope(req);
        const c = await cards.get(req.params.uid.toUpperCase());
        if (!c) throw notFound('card');
        const apps = (await cards.applications(c.uid)).filter((a) => scope === '*' || scope.includes(a.tenantId));
        if (scope !== '*' && apps.length === 0) throw notFound('card');
        return { card: c, applications: apps };
      },
    );
  };
}

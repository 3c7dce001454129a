// Cards: list (paged) and get, with the CardUID ↔ AID ↔ key versions mapping. A tenant admin or
// tenant auditor sees only cards carrying one of its applications, and only those applications.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import type { CardRepository } from '../../domain/index.js';
import type { Database } from '../../storage/index.js';
import { ANY_OPERATOR, tenantScope } from '../auth.js';
import { ERROR_RESPONSES, notFound } from '../errors.js';

const Uid = Type.String({ pattern: '^([0-9A-Fa-f]{2}){4,10}$' });
const Card = Type.Object(
  { uid: Type.String(), state: Type.String(), randomUid: Type.Boolean(), piccKeyVersion: Type.Integer(), createdAt: Type.Integer(), updatedAt: Type.Integer() },
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

export function cardRoutes(db: Kysely<Database>, cards: CardRepository) {
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

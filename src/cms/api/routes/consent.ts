// Tenant consent and authorisation over HTTP. The separation of duties is enforced here:
//
//   POST /v1/authorisations                     tenant_admin of the tenant: grant (install / rotate / delete
//                                               its application on a card, a batch, or a card profile)
//   POST /v1/authorisations/:id/revoke          tenant_admin of the tenant
//   GET  /v1/authorisations[/:id]               any operator, within its tenants
//   POST /v1/authorisation-requests             issuer_admin: ask a tenant for an authorisation
//   POST /v1/authorisation-requests/:id/grant   tenant_admin of the tenant (creates the authorisation)
//   POST /v1/authorisation-requests/:id/refuse  tenant_admin of the tenant
//   POST /v1/authorisation-requests/:id/cancel  issuer_admin (its own pending request)
//   GET  /v1/authorisation-requests[/:id]       any operator, within its tenants (?state=pending)
//   POST /v1/consents                           issuer_admin or tenant_admin of the application's tenant
//   POST /v1/consents/:id/withdraw              same; schedules the application's deletion
//   GET  /v1/consents                           any operator, within its tenants
//   GET  /v1/pending-deletions?uid=             operators within their tenants; readers (mTLS) for the
//                                               AIDs they hold an install role for
//   PUT  /v1/cards/:uid/profile                 issuer_admin: the card's profile (what standing policies match)
//
// The issuer never grants: an issuer_admin token cannot create an authorisation (403), so no job
// installs, rotates or deletes a tenant's application without that tenant's say-so.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ReaderRepository } from '../../domain/index.js';
import type { ConsentService} from '../../consent/index.js';
import { type Authorisation, type AuthorisationRequest, type CardholderConsent, OPERATIONS } from '../../consent/index.js';
import type { ApiModule } from '../ports.js';
import { ANY_OPERATOR, actorOf, assertTenant, tenantScope } from '../auth.js';
import { type ActionRecorder, audited } from '../context.js';
import { ApiError, ERROR_RESPONSES, notFound } from '../errors.js';

const TenantId = Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' });
const Aid = Type.String({ pattern: '^[0-9A-Fa-f]{6}$' });
const Uid = Type.String({ pattern: '^([0-9A-Fa-f]{2}){4,10}$' });
const Operation = Type.Union(OPERATIONS.map((o) => Type.Literal(o)));
const Ttl = Type.Integer({ minimum: 1, maximum: 5 * 365 * 24 * 3600 });
const IdParam = (prefix: string) => Type.Object({ id: Type.String({ pattern: `^${prefix}_[A-Za-z0-9_-]{1,40}$` }) });
const Scope = {
  cards: Type.Optional(Type.Array(Uid, { minItems: 1, maxItems: 10_000 })),
  profile: Type.Optional(Type.String({ pattern: '^(\\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$' })),
};
const GrantBody = Type.Object({ tenant: TenantId, aid: Aid, operation: Operation, ...Scope, ttlSeconds: Ttl, validFrom: Type.Optional(Type.Integer({ minimum: 0 })) }, { additionalProperties: false });
const RequestBody = Type.Object({ tenant: TenantId, aid: Aid, operation: Operation, ...Scope, ttlSeconds: Ttl, reason: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false });
const ConsentBody = Type.Object(
  { uid: Uid, aid: Aid, cardholder: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$' }), evidence: Type.Optional(Type.String({ maxLength: 512 })), givenAt: Type.Optional(Type.Integer({ minimum: 0 })) },
  { additionalProperties: false },
);
const AuthorisationView = Type.Object(
  {
    id: Type.String(),
    tenant: Type.String(),
    aid: Type.String(),
    operation: Type.String(),
    scope: Type.String(),
    cardUids: Type.Union([Type.Array(Type.String()), Type.Null()]),
    cardProfile: Type.Union([Type.String(), Type.Null()]),
    validFrom: Type.Integer(),
    expiresAt: Type.Integer(),
    grantedBy: Type.String(),
    requestId: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.Integer(),
    revokedAt: Type.Union([Type.Integer(), Type.Null()]),
    revokedBy: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'Authorisation' },
);
const RequestView = Type.Object(
  {
    id: Type.String(),
    tenant: Type.String(),
    aid: Type.String(),
    operation: Type.String(),
    scope: Type.String(),
    cardUids: Type.Union([Type.Array(Type.String()), Type.Null()]),
    cardProfile: Type.Union([Type.String(), Type.Null()]),
    ttlSeconds: Type.Integer(),
    reason: Type.String(),
    state: Type.String(),
    requestedBy: Type.String(),
    createdAt: Type.Integer(),
    decidedBy: Type.Union([Type.String(), Type.Null()]),
    decidedAt: Type.Union([Type.Integer(), Type.Null()]),
    decisionReason: Type.Union([Type.String(), Type.Null()]),
    authorisationId: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'AuthorisationRequest' },
);
const ConsentView = Type.Object(
  {
    id: Type.String(),
    uid: Type.String(),
    aid: Type.String(),
    tenant: Type.String(),
    cardholder: Type.String(),
    state: Type.String(),
    givenAt: Type.Integer(),
    recordedBy: Type.String(),
    evidence: Type.Union([Type.String(), Type.Null()]),
    withdrawnAt: Type.Union([Type.Integer(), Type.Null()]),
    withdrawnBy: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'CardholderConsent' },
);
const DeletionView = Type.Object({
  uid: Type.String(),
  aid: Type.String(),
  tenant: Type.String(),
  reason: Type.String(),
  consentId: Type.Union([Type.String(), Type.Null()]),
  authorisationId: Type.String(),
  state: Type.String(),
  createdAt: Type.Integer(),
  doneAt: Type.Union([Type.Integer(), Type.Null()]),
});
const sec = [{ apiToken: [] }];
const R = { ...ERROR_RESPONSES, 409: Type.Ref('Error') };

export interface ConsentRouteDeps {
  consent: ConsentService;
  readers?: ReaderRepository;
  audit?: ActionRecorder;
}

const who = (req: FastifyRequest) => ({ actor: actorOf(req), correlationId: String(req.id) });

function inScope<T extends { tenant: string }>(req: FastifyRequest, list: T[]): T[] {
  const s = tenantScope(req);
  return s === '*' ? list : list.filter((x) => s.includes(x.tenant));
}

export function consentRoutes(d: ConsentRouteDeps) {
  const c = d.consent;
  const rec = d.audit;
  return async (app: FastifyInstance) => {
    app.addSchema(AuthorisationView);
    app.addSchema(RequestView);
    app.addSchema(ConsentView);

    // ---- authorisations ----
    app.post<{ Body: Static<typeof GrantBody> }>(
      '/authorisations',
      {
        config: { auth: { operator: ['tenant_admin'] } },
        schema: {
          tags: ['consent'],
          summary: "a tenant admin authorises an operation on its application: one card, a batch, or every card of a profile ('*' = all); expiring",
          security: sec,
          body: GrantBody,
          response: { 201: Type.Ref('Authorisation'), ...R },
        },
      },
      async (req, reply) => {
        const b = req.body;
        assertTenant(req, b.tenant);
        const a: Authorisation = await audited(
          req,
          rec,
          { operation: 'api.authorisation.grant', tenant: b.tenant, aid: b.aid, details: { op: b.operation, scope: b.cards ? (b.cards.length === 1 ? 'card' : 'batch') : 'policy' } },
          () => c.grant(who(req), { tenant: b.tenant, aid: b.aid, operation: b.operation, ttlSeconds: b.ttlSeconds, ...(b.cards ? { cards: b.cards } : {}), ...(b.profile !== undefined ? { profile: b.profile } : {}), ...(b.validFrom !== undefined ? { validFrom: b.validFrom } : {}) }),
        );
        return reply.code(201).send(a);
      },
    );
    app.get<{ Querystring: { tenant?: string; aid?: string; active?: boolean } }>(
      '/authorisations',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: {
          tags: ['consent'],
          summary: 'authorisations in scope (active=true: only those in force now)',
          security: sec,
          querystring: Type.Object({ tenant: Type.Optional(TenantId), aid: Type.Optional(Aid), active: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
          response: { 200: Type.Object({ authorisations: Type.Array(Type.Ref('Authorisation')) }), ...R },
        },
      },
      async (req) => {
        const q = req.query;
        if (q.tenant) assertTenant(req, q.tenant);
        const list = await c.authorisations({ ...(q.tenant ? { tenant: q.tenant } : {}), ...(q.aid ? { aid: q.aid } : {}), ...(q.active ? { activeAt: Date.now() } : {}) });
        return { authorisations: inScope(req, list) };
      },
    );
    app.get<{ Params: { id: string } }>(
      '/authorisations/:id',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: { tags: ['consent'], summary: 'one authorisation', security: sec, params: IdParam('auth'), response: { 200: Type.Ref('Authorisation'), ...R } },
      },
      async (req) => {
        const a = await c.authorisation(req.params.id);
        assertTenant(req, a.tenant);
        return a;
      },
    );
    app.post<{ Params: { id: string } }>(
      '/authorisations/:id/revoke',
      {
        config: { auth: { operator: ['tenant_admin'] } },
        schema: { tags: ['consent'], summary: 'revoke an authorisation (no job starts under it any more)', security: sec, params: IdParam('auth'), response: { 200: Type.Ref('Authorisation'), ...R } },
      },
      async (req) => {
        const a = await c.authorisation(req.params.id);
        assertTenant(req, a.tenant);
        return audited(req, rec, { operation: 'api.authorisation.revoke', tenant: a.tenant, aid: a.aid, details: { authorisation: a.id } }, () => c.revoke(who(req), a.id));
      },
    );

    // ---- requests ----
    app.post<{ Body: Static<typeof RequestBody> }>(
      '/authorisation-requests',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: { tags: ['consent'], summary: 'the issuer asks a tenant for an authorisation', security: sec, body: RequestBody, response: { 201: Type.Ref('AuthorisationRequest'), ...R } },
      },
      async (req, reply) => {
        const b = req.body;
        const r: AuthorisationRequest = await audited(req, rec, { operation: 'api.authorisation.request', tenant: b.tenant, aid: b.aid, details: { op: b.operation } }, () =>
          c.request(who(req), { tenant: b.tenant, aid: b.aid, operation: b.operation, ttlSeconds: b.ttlSeconds, reason: b.reason, ...(b.cards ? { cards: b.cards } : {}), ...(b.profile !== undefined ? { profile: b.profile } : {}) }),
        );
        return reply.code(201).send(r);
      },
    );
    app.get<{ Querystring: { tenant?: string; state?: 'pending' | 'granted' | 'refused' | 'cancelled' } }>(
      '/authorisation-requests',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: {
          tags: ['consent'],
          summary: 'authorisation requests in scope (a tenant sees its pending requests with ?state=pending)',
          security: sec,
          querystring: Type.Object({ tenant: Type.Optional(TenantId), state: Type.Optional(Type.Union(['pending', 'granted', 'refused', 'cancelled'].map((s) => Type.Literal(s)))) }, { additionalProperties: false }),
          response: { 200: Type.Object({ requests: Type.Array(Type.Ref('AuthorisationRequest')) }), ...R },
        },
      },
      async (req) => {
        const q = req.query;
        if (q.tenant) assertTenant(req, q.tenant);
        return { requests: inScope(req, await c.requests({ ...(q.tenant ? { tenant: q.tenant } : {}), ...(q.state ? { state: q.state } : {}) })) };
      },
    );
    app.get<{ Params: { id: string } }>(
      '/authorisation-requests/:id',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: { tags: ['consent'], summary: 'one authorisation request', security: sec, params: IdParam('areq'), response: { 200: Type.Ref('AuthorisationRequest'), ...R } },
      },
      async (req) => {
        const r = await c.requestById(req.params.id);
        assertTenant(req, r.tenant);
        return r;
      },
    );
    app.post<{ Params: { id: string }; Body: { ttlSeconds?: number } }>(
      '/authorisation-requests/:id/grant',
      {
        config: { auth: { operator: ['tenant_admin'] } },
        schema: {
          tags: ['consent'],
          summary: 'the tenant grants a pending request (optionally shortening its validity): the authorisation is created',
          security: sec,
          params: IdParam('areq'),
          body: Type.Optional(Type.Object({ ttlSeconds: Type.Optional(Ttl) }, { additionalProperties: false })),
          response: { 200: Type.Object({ request: Type.Ref('AuthorisationRequest'), authorisation: Type.Ref('Authorisation') }), ...R },
        },
      },
      async (req) => {
        const r = await c.requestById(req.params.id);
        assertTenant(req, r.tenant);
        const ttl = req.body?.ttlSeconds;
        return audited(req, rec, { operation: 'api.authorisation.request.grant', tenant: r.tenant, aid: r.aid, details: { request: r.id } }, () => c.grantRequest(who(req), r.id, ttl !== undefined ? { ttlSeconds: ttl } : {}));
      },
    );
    app.post<{ Params: { id: string }; Body: { reason?: string } }>(
      '/authorisation-requests/:id/refuse',
      {
        config: { auth: { operator: ['tenant_admin'] } },
        schema: {
          tags: ['consent'],
          summary: 'the tenant refuses a pending request',
          security: sec,
          params: IdParam('areq'),
          body: Type.Optional(Type.Object({ reason: Type.Optional(Type.String({ maxLength: 512 })) }, { additionalProperties: false })),
          response: { 200: Type.Ref('AuthorisationRequest'), ...R },
        },
      },
      async (req) => {
        const r = await c.requestById(req.params.id);
        assertTenant(req, r.tenant);
        return audited(req, rec, { operation: 'api.authorisation.request.refuse', tenant: r.tenant, aid: r.aid, details: { request: r.id } }, () => c.refuseRequest(who(req), r.id, req.body?.reason ?? ''));
      },
    );
    app.post<{ Params: { id: string } }>(
      '/authorisation-requests/:id/cancel',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: { tags: ['consent'], summary: 'the issuer withdraws a pending request', security: sec, params: IdParam('areq'), response: { 200: Type.Ref('AuthorisationRequest'), ...R } },
      },
      async (req) => {
        const r = await c.requestById(req.params.id);
        return audited(req, rec, { operation: 'api.authorisation.request.cancel', tenant: r.tenant, aid: r.aid, details: { request: r.id } }, () => c.cancelRequest(who(req), r.id));
      },
    );

    // ---- cardholder consent ----
    app.post<{ Body: Static<typeof ConsentBody> }>(
      '/consents',
      {
        config: { auth: { operator: ['issuer_admin', 'tenant_admin'] } },
        schema: { tags: ['consent'], summary: "record a cardholder's consent to an application on their card", security: sec, body: ConsentBody, response: { 201: Type.Ref('CardholderConsent'), ...R } },
      },
      async (req, reply) => {
        const b = req.body;
        const tenant = await c.applicationTenant(b.aid);
        assertTenant(req, tenant);
        const r: CardholderConsent = await audited(req, rec, { operation: 'api.consent.record', tenant, aid: b.aid, cardUid: b.uid }, () =>
          c.recordConsent(who(req), { uid: b.uid, aid: b.aid, cardholder: b.cardholder, ...(b.evidence !== undefined ? { evidence: b.evidence } : {}), ...(b.givenAt !== undefined ? { givenAt: b.givenAt } : {}) }),
        );
        return reply.code(201).send(r);
      },
    );
    app.get<{ Querystring: { uid?: string; aid?: string; tenant?: string } }>(
      '/consents',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: {
          tags: ['consent'],
          summary: 'cardholder consent records in scope',
          security: sec,
          querystring: Type.Object({ uid: Type.Optional(Uid), aid: Type.Optional(Aid), tenant: Type.Optional(TenantId) }, { additionalProperties: false }),
          response: { 200: Type.Object({ consents: Type.Array(Type.Ref('CardholderConsent')) }), ...R },
        },
      },
      async (req) => {
        const q = req.query;
        if (q.tenant) assertTenant(req, q.tenant);
        return { consents: inScope(req, await c.consents({ ...(q.uid ? { uid: q.uid } : {}), ...(q.aid ? { aid: q.aid } : {}), ...(q.tenant ? { tenant: q.tenant } : {}) })) };
      },
    );
    app.post<{ Params: { id: string } }>(
      '/consents/:id/withdraw',
      {
        config: { auth: { operator: ['issuer_admin', 'tenant_admin'] } },
        schema: {
          tags: ['consent'],
          summary: "the cardholder withdraws consent: the application's deletion is scheduled for the card's next presentation",
          security: sec,
          params: IdParam('cns'),
          response: { 200: Type.Object({ consent: Type.Ref('CardholderConsent'), deletion: Type.Union([DeletionView, Type.Null()]) }), ...R },
        },
      },
      async (req) => {
        const k = await c.consent(req.params.id);
        assertTenant(req, k.tenant);
        return audited(req, rec, { operation: 'api.consent.withdraw', tenant: k.tenant, aid: k.aid, cardUid: k.uid, details: { consent: k.id } }, () => c.withdrawConsent(who(req), k.id));
      },
    );
    // ---- the card's profile (standing policies match the record, never the caller's word) ----
    app.put<{ Params: { uid: string }; Body: { profile: string | null } }>(
      '/cards/:uid/profile',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: {
          tags: ['consent'],
          summary: "the issuer sets (or clears, null) a card's profile: standing-policy authorisations of that profile cover the card",
          security: sec,
          params: Type.Object({ uid: Uid }),
          body: Type.Object({ profile: Type.Union([Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' }), Type.Null()]) }, { additionalProperties: false }),
          response: { 200: Type.Object({ uid: Type.String(), profile: Type.Union([Type.String(), Type.Null()]) }), ...R },
        },
      },
      async (req) => {
        const uid = req.params.uid.toUpperCase();
        return audited(req, rec, { operation: 'api.card.profile', cardUid: uid, details: { profile: req.body.profile } }, () => c.setCardProfile(uid, req.body.profile));
      },
    );
    app.get<{ Querystring: { uid?: string } }>(
      '/pending-deletions',
      {
        config: { auth: { operator: ANY_OPERATOR, reader: true } },
        schema: {
          tags: ['consent'],
          summary: 'applications to delete at the next presentation of a card (readers: for the AIDs they may install/delete)',
          security: [{ apiToken: [] }, { readerCertificate: [] }],
          querystring: Type.Object({ uid: Type.Optional(Uid) }, { additionalProperties: false }),
          response: { 200: Type.Object({ deletions: Type.Array(DeletionView) }), ...R },
        },
      },
      async (req) => {
        const p = req.principal;
        const uid = req.query.uid;
        if (p?.kind === 'reader') {
          if (!uid) throw new ApiError(400, 'ERR_BAD_REQUEST', 'readers ask for one card: ?uid=');
          if (!d.readers) throw notFound('pending deletions');
          const aids = [...new Set((await d.readers.roles(p.id)).filter((r) => r.operations.includes('install')).map((r) => r.aid))];
          return { deletions: await c.pendingDeletions({ uid, aids }) };
        }
        return { deletions: inScope(req, await c.pendingDeletions(uid ? { uid } : {})) };
      },
    );
  };
}

/** The route group for the composition root's `modules` list. */
export function consentModule(d: ConsentRouteDeps): ApiModule {
  return { name: 'consent', register: (app) => consentRoutes(d)(app) };
}

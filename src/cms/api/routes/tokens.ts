// Operator API tokens: create (issuer admin; the token is shown once), list, inspect self, revoke.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ANY_OPERATOR, tenantScope } from '../auth.js';
import { audited } from '../context.js';
import { ERROR_RESPONSES, notFound } from '../errors.js';
import type { ApiDeps } from '../ports.js';
import { ROLES, type OperatorToken } from '../tokens/service.js';

const Id = Type.String({ pattern: '^tok_[A-Za-z0-9_-]{12}$' });
const TenantId = Type.String({ minLength: 1, maxLength: 64, pattern: '^(\\*|[A-Za-z0-9][A-Za-z0-9._-]*)$' });

export const TokenRecord = Type.Object(
  {
    id: Id,
    label: Type.String(),
    roles: Type.Array(Type.Union(ROLES.map((r) => Type.Literal(r)))),
    tenants: Type.Array(Type.String()),
    createdBy: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.Integer(),
    expiresAt: Type.Union([Type.Integer(), Type.Null()]),
    revokedAt: Type.Union([Type.Integer(), Type.Null()]),
  },
  { $id: 'OperatorToken' },
);

const CreateBody = Type.Object(
  {
    label: Type.String({ minLength: 1, maxLength: 100 }),
    roles: Type.Array(Type.Union(ROLES.map((r) => Type.Literal(r))), { minItems: 1, maxItems: 3, uniqueItems: true }),
    tenants: Type.Array(TenantId, { minItems: 1, maxItems: 100, uniqueItems: true }),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 366 * 86400 })),
  },
  { additionalProperties: false },
);
const Created = Type.Object({
  token: Type.String({ description: 'the bearer token; shown only in this response' }),
  record: Type.Ref('OperatorToken'),
});

const visible = (scope: '*' | string[], t: OperatorToken) => scope === '*' || (!t.tenants.includes('*') && t.tenants.every((x) => scope.includes(x)));

export function tokenRoutes(deps: ApiDeps) {
  return async (app: FastifyInstance) => {
    app.addSchema(TokenRecord);
    app.post<{ Body: Static<typeof CreateBody> }>(
      '/tokens',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: {
          tags: ['tokens'],
          summary: 'create an operator API token (shown once)',
          security: [{ apiToken: [] }],
          body: CreateBody,
          response: { 201: Created, ...ERROR_RESPONSES },
        },
      },
      async (req, reply) => {
        const b = req.body;
        const { token, record } = await audited(req, deps.audit, { operation: 'api.token.create', details: { roles: b.roles, tenants: b.tenants } }, () =>
          deps.tokens.create({
            label: b.label,
            roles: b.roles,
            tenants: b.tenants,
            createdBy: req.principal?.id ?? null,
            ...(b.ttlSeconds ? { ttlSeconds: b.ttlSeconds } : {}),
          }),
        );
        req.log.info({ tokenId: record.id, roles: record.roles, tenants: record.tenants }, 'operator token created');
        return reply.code(201).send({ token, record });
      },
    );
    app.get(
      '/tokens',
      {
        config: { auth: { operator: ['issuer_admin', 'tenant_admin'] } },
        schema: { tags: ['tokens'], summary: 'list operator tokens in scope', security: [{ apiToken: [] }], response: { 200: Type.Object({ tokens: Type.Array(Type.Ref('OperatorToken')) }), ...ERROR_RESPONSES } },
      },
      async (req) => {
        const scope = tenantScope(req);
        return { tokens: (await deps.tokens.list()).filter((t) => visible(scope, t)) };
      },
    );
    app.get(
      '/tokens/self',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: { tags: ['tokens'], summary: 'the calling token', security: [{ apiToken: [] }], response: { 200: Type.Ref('OperatorToken'), ...ERROR_RESPONSES } },
      },
      async (req) => (req.principal?.kind === 'operator' ? req.principal.token : undefined),
    );
    app.delete<{ Params: { id: string } }>(
      '/tokens/:id',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: { tags: ['tokens'], summary: 'revoke an operator token', security: [{ apiToken: [] }], params: Type.Object({ id: Id }), response: { 200: Type.Ref('OperatorToken'), ...ERROR_RESPONSES } },
      },
      async (req) => {
        const t = await audited(req, deps.audit, { operation: 'api.token.revoke', details: { tokenId: req.params.id } }, () => deps.tokens.revoke(req.params.id));
        if (!t) throw notFound('token');
        req.log.info({ tokenId: t.id }, 'operator token revoked');
        return t;
      },
    );
  };
}

// Tenants, their applications (AIDs), and layout upload (JSON or YAML). A layout that breaks an
// isolation rule is refused with 422 and the linter's findings (rule ids, pointers, lines); a
// layout is registered in one transaction or not at all. Tenant admins and auditors only ever see
// their own tenants.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { TenantRepository } from '../../domain/index.js';
import { parseLayout } from '../../layout/index.js';
import { ANY_OPERATOR, assertTenant, canSeeTenant, hasRole, tenantScope } from '../auth.js';
import { type ActionRecorder, audited } from '../context.js';
import { ERROR_RESPONSES, badRequest, notFound } from '../errors.js';

const TenantId = Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' });
const Aid = Type.String({ pattern: '^[0-9A-Fa-f]{6}$' });
const Tenant = Type.Object({ id: Type.String(), name: Type.String(), createdAt: Type.Integer() }, { $id: 'Tenant' });
const Application = Type.Object(
  {
    aid: Type.String(),
    tenantId: Type.String(),
    name: Type.String(),
    keyType: Type.String(),
    keyCount: Type.Integer(),
    layoutName: Type.String(),
    definition: Type.Unknown({ description: 'the normalised application layout' }),
    createdAt: Type.Integer(),
  },
  { $id: 'Application' },
);
const CreateTenant = Type.Object({ id: TenantId, name: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false });
const sec = [{ apiToken: [] }];

export function tenantRoutes(tenants: TenantRepository, rec?: ActionRecorder) {
  return async (app: FastifyInstance) => {
    app.addSchema(Tenant);
    app.addSchema(Application);

    app.get(
      '/tenants',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: { tags: ['tenants'], summary: 'tenants in scope', security: sec, response: { 200: Type.Object({ tenants: Type.Array(Type.Ref('Tenant')) }), ...ERROR_RESPONSES } },
      },
      async (req) => ({ tenants: (await tenants.tenants()).filter((t) => canSeeTenant(req, t.id)) }),
    );
    app.post<{ Body: Static<typeof CreateTenant> }>(
      '/tenants',
      {
        config: { auth: { operator: ['issuer_admin'] } },
        schema: { tags: ['tenants'], summary: 'create a tenant', security: sec, body: CreateTenant, response: { 201: Type.Ref('Tenant'), ...ERROR_RESPONSES } },
      },
      async (req, reply) =>
        reply.code(201).send(await audited(req, rec, { operation: 'api.tenant.create', tenant: req.body.id }, () => tenants.createTenant(req.body.id, req.body.name))),
    );
    app.get<{ Params: { id: string } }>(
      '/tenants/:id',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: { tags: ['tenants'], summary: 'one tenant', security: sec, params: Type.Object({ id: TenantId }), response: { 200: Type.Ref('Tenant'), ...ERROR_RESPONSES } },
      },
      async (req) => {
        assertTenant(req, req.params.id);
        const t = await tenants.tenant(req.params.id);
        if (!t) throw notFound('tenant');
        return t;
      },
    );
    app.get<{ Querystring: { tenant?: string } }>(
      '/applications',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: {
          tags: ['applications'],
          summary: 'applications (AIDs) in scope',
          security: sec,
          querystring: Type.Object({ tenant: Type.Optional(TenantId) }, { additionalProperties: false }),
          response: { 200: Type.Object({ applications: Type.Array(Type.Ref('Application')) }), ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        if (req.query.tenant) assertTenant(req, req.query.tenant);
        const list = await tenants.applications(req.query.tenant);
        return { applications: list.filter((a) => canSeeTenant(req, a.tenantId)) };
      },
    );
    app.get<{ Params: { aid: string } }>(
      '/applications/:aid',
      {
        config: { auth: { operator: ANY_OPERATOR } },
        schema: { tags: ['applications'], summary: 'one application', security: sec, params: Type.Object({ aid: Aid }), response: { 200: Type.Ref('Application'), ...ERROR_RESPONSES } },
      },
      async (req) => {
        const a = await tenants.application(req.params.aid.toUpperCase());
        if (!a || !canSeeTenant(req, a.tenantId)) throw notFound('application');
        return a;
      },
    );
    app.post<{ Body: unknown }>(
      '/layouts',
      {
        config: { auth: { operator: ['issuer_admin', 'tenant_admin'] } },
        schema: {
          tags: ['applications'],
          summary: 'register the tenants and applications of a layout (JSON or YAML body); refused with the linter findings when it breaks isolation',
          description: 'Content-Type application/json, application/yaml or text/yaml. 422 ERR_DOMAIN_LAYOUT_FINDINGS lists rule ids; 400 ERR_LAYOUT_* for unparseable or schema-invalid layouts.',
          security: sec,
          response: {
            201: Type.Object({ tenants: Type.Array(Type.String()), applications: Type.Array(Type.String()) }),
            ...ERROR_RESPONSES,
            409: Type.Ref('Error'),
            422: Type.Ref('Error'),
          },
        },
      },
      async (req, reply) => {
        const body = req.body;
        const text = typeof body === 'string' ? body : JSON.stringify(body);
        if (text === undefined || text.length === 0) throw badRequest('empty layout');
        const layout = parseLayout(text, 'request body');
        if (!hasRole(req, 'issuer_admin')) {
          const scope = tenantScope(req);
          for (const t of layout.tenants) if (scope !== '*' && !scope.includes(t.id)) assertTenant(req, t.id);
        }
        const r = await audited(req, rec, { operation: 'api.layout.register', details: { layout: layout.name, tenants: layout.tenants.map((t) => t.id) } }, () => tenants.registerLayout(layout));
        req.log.info({ tenants: r.tenants, applications: r.applications }, 'layout registered');
        return reply.code(201).send(r);
      },
    );
  };
}

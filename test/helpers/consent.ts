// Test and benchmark setup under enforced tenant consent (src/cms/consent): each tenant's own admin
// grants standing authorisations (profile '*' = every card) for its applications, the way a tenant
// admin does it — a tenant_admin token of that tenant, POST /v1/authorisations through the real API
// (routes, auth hooks, audit). The issuer's token only lists the applications and mints the tenant
// admin tokens; it never grants.
import type { FastifyInstance } from 'fastify';

export type ConsentOperation = 'install' | 'rotate' | 'delete';

export interface StandingGrant {
  tenant: string;
  aid: string;
  operation: ConsentOperation;
  id: string;
}

export interface GrantOptions {
  operations?: ConsentOperation[];
  /** Lifetime of the authorisations (default a day). */
  ttlSeconds?: number;
  /** Only these AIDs (default every application the issuer token sees). */
  aids?: string[];
  /** AIDs already granted (skipped, then added): lets a harness grant again after each new layout. */
  granted?: Set<string>;
}

async function inject(app: FastifyInstance, method: 'GET' | 'POST', url: string, token: string, payload?: unknown): Promise<{ status: number; body: unknown }> {
  const r = await app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
  return { status: r.statusCode, body: r.json() as unknown };
}

/** Every tenant admin authorises install/rotate/delete of its applications on every card. */
export async function grantStandingConsent(app: FastifyInstance, issuerToken: string, o: GrantOptions = {}): Promise<StandingGrant[]> {
  const listed = await inject(app, 'GET', '/v1/applications', issuerToken);
  if (listed.status !== 200) throw new Error(`list applications: ${listed.status} ${JSON.stringify(listed.body)}`);
  const apps = (listed.body as { applications: { tenantId: string; aid: string }[] }).applications.filter((a) => (!o.aids || o.aids.includes(a.aid)) && !o.granted?.has(a.aid));
  const grants: StandingGrant[] = [];
  const admins = new Map<string, string>();
  for (const a of apps) {
    let admin = admins.get(a.tenantId);
    if (!admin) {
      const t = await inject(app, 'POST', '/v1/tokens', issuerToken, { label: `${a.tenantId} admin (consent setup)`, roles: ['tenant_admin'], tenants: [a.tenantId] });
      if (t.status !== 201) throw new Error(`tenant admin token for ${a.tenantId}: ${t.status} ${JSON.stringify(t.body)}`);
      admin = (t.body as { token: string }).token;
      admins.set(a.tenantId, admin);
    }
    for (const operation of o.operations ?? ['install', 'rotate', 'delete']) {
      const g = await inject(app, 'POST', '/v1/authorisations', admin, { tenant: a.tenantId, aid: a.aid, operation, profile: '*', ttlSeconds: o.ttlSeconds ?? 86_400 });
      if (g.status !== 201) throw new Error(`authorise ${operation} ${a.tenantId}/${a.aid}: ${g.status} ${JSON.stringify(g.body)}`);
      grants.push({ tenant: a.tenantId, aid: a.aid, operation, id: (g.body as { id: string }).id });
    }
    o.granted?.add(a.aid);
  }
  return grants;
}

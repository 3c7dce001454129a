// API request rate and latency by route pattern and status, and reader presence, as Fastify hooks;
// and `GET /v1/metrics` on the API for operators (issuer_admin, auditor) when the separate metrics
// listener is not used.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { tenantScope } from '../api/auth.js';
import { forbidden } from '../api/errors.js';
import type { ApiModule } from '../api/ports.js';
import type { CmsMetrics } from './metrics.js';
import type { PromMetrics } from './prometheus.js';

type OnResponse = (req: FastifyRequest, reply: FastifyReply, done: () => void) => void;

/**
 * An onResponse observer for every route registered on `app` (or its children) from now on, made
 * ONCE per route from its pattern and method (`onRoute`), as a synchronous route-level hook:
 * Fastify's `req.routeOptions` is a getter building a 12-field object on every read, and an async
 * hook a promise per request. The observer runs for every answer of the route (refusals and
 * errors too). The HEAD route Fastify adds for a GET route gets its own (the copied hook is
 * replaced). `observe` must not throw.
 */
export function observeRoutes(app: FastifyInstance, make: (route: string, method: string | string[]) => (req: FastifyRequest, reply: FastifyReply) => void): void {
  const mine = new WeakSet<OnResponse>();
  app.addHook('onRoute', (ro) => {
    const observe = make(ro.url, ro.method);
    const hook: OnResponse = (req, reply, done) => {
      observe(req, reply);
      done();
    };
    mine.add(hook);
    const prior = (ro.onResponse === undefined ? [] : Array.isArray(ro.onResponse) ? ro.onResponse : [ro.onResponse]) as OnResponse[];
    ro.onResponse = [...prior.filter((h) => !mine.has(h)), hook] as typeof ro.onResponse;
  });
}

export function registerHttpMetrics(app: FastifyInstance, metrics: CmsMetrics): void {
  const observe = (req: FastifyRequest, reply: FastifyReply, route: string): void => {
    try {
      metrics.httpRequest({ method: req.method, route, status: reply.statusCode, seconds: reply.elapsedTime / 1000 });
      if (req.principal?.kind === 'reader') metrics.readerSeen(req.principal.id);
    } catch {
      /* metrics never fail a request */
    }
  };
  // matched routes: the pattern captured once per route
  observeRoutes(app, (route) => (req, reply) => observe(req, reply, route));
  // no route matched (the not-found handler; `is404` reads the route context without building routeOptions)
  app.addHook('onResponse', (req, reply, done) => {
    if (req.is404) observe(req, reply, 'unmatched');
    done();
  });
}

/** `GET /v1/metrics` (Prometheus text format) for operators holding an all-tenant issuer_admin or auditor token. */
export function metricsModule(metrics: PromMetrics): ApiModule {
  return {
    name: 'metrics',
    register(app) {
      app.get(
        '/metrics',
        {
          config: { auth: { operator: ['issuer_admin', 'auditor'] } },
          schema: { tags: ['health'], summary: 'Prometheus metrics (operator token; or the separate 127.0.0.1 metrics listener)', security: [{ apiToken: [] }] },
        },
        async (req, reply) => {
          // the labels name every tenant (key releases by tenant/AID): a tenant-scoped token may not read them
          if (tenantScope(req) !== '*') throw forbidden('metrics span every tenant: an all-tenant operator token is needed', 'ERR_FORBIDDEN_TENANT');
          return reply.header('content-type', metrics.contentType()).send(await metrics.text());
        },
      );
    },
  };
}

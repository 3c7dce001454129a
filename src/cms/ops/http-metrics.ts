// API request rate and latency by route pattern and status, and reader presence, as Fastify hooks;
// and `GET /v1/metrics` on the API for operators (issuer_admin, auditor) when the separate metrics
// listener is not used.
import type { FastifyInstance } from 'fastify';
import { tenantScope } from '../api/auth.js';
import { forbidden } from '../api/errors.js';
import type { ApiModule } from '../api/ports.js';
import type { CmsMetrics } from './metrics.js';
import type { PromMetrics } from './prometheus.js';

export function registerHttpMetrics(app: FastifyInstance, metrics: CmsMetrics): void {
  app.addHook('onResponse', async (req, reply) => {
    try {
      metrics.httpRequest({ method: req.method, route: req.routeOptions.url ?? 'unmatched', status: reply.statusCode, seconds: reply.elapsedTime / 1000 });
      if (req.principal?.kind === 'reader') metrics.readerSeen(req.principal.id);
    } catch {
      /* metrics never fail a request */
    }
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

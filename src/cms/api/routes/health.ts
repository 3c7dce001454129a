// /healthz: the process is alive. /readyz: every dependency (database, session store, custody
// unsealed, audit writable) is usable; each one down is named. Neither needs authentication nor
// counts against rate limits (load balancers poll them).
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../ports.js';

const Check = Type.Object({ name: Type.String(), ok: Type.Boolean(), reason: Type.Optional(Type.String()) });
const Ready = Type.Object({ status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]), checks: Type.Array(Check) });

const CHECK_TIMEOUT_MS = 3000;

export function healthRoutes(deps: ApiDeps) {
  return async (app: FastifyInstance) => {
    app.get(
      '/healthz',
      {
        config: { auth: { public: true }, rateLimit: false },
        schema: { tags: ['health'], summary: 'liveness', response: { 200: Type.Object({ status: Type.Literal('ok') }) } },
      },
      async () => ({ status: 'ok' as const }),
    );
    app.get(
      '/readyz',
      {
        config: { auth: { public: true }, rateLimit: false },
        schema: { tags: ['health'], summary: 'readiness: each dependency named', response: { 200: Ready, 503: Ready } },
      },
      async (_req, reply) => {
        const checks = await Promise.all(
          deps.health.map(async (h) => {
            try {
              const r = await Promise.race([
                h.check(),
                new Promise<{ ok: false; reason: string }>((res) => setTimeout(() => res({ ok: false, reason: 'timed out' }), CHECK_TIMEOUT_MS).unref()),
              ]);
              return r.ok ? { name: h.name, ok: true } : { name: h.name, ok: false, reason: r.reason ?? 'down' };
            } catch (e) {
              return { name: h.name, ok: false, reason: (e as { code?: string }).code ?? 'error' };
            }
          }),
        );
        const ok = checks.every((c) => c.ok);
        return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', checks });
      },
    );
  };
}

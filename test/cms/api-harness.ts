// A real API on 127.0.0.1 (ephemeral port) over a real SQLite database, with its log captured.
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/cms/api/build.js';
import { createLogger } from '../../src/cms/api/logging.js';
import type { ApiDeps, HealthCheck } from '../../src/cms/api/ports.js';
import { LocalRateLimiter } from '../../src/cms/api/ratelimit.js';
import { OperatorTokens } from '../../src/cms/api/tokens/service.js';
import { type DatabaseHandle, openDatabase } from '../../src/cms/storage/index.js';

export interface Harness {
  app: FastifyInstance;
  url: string;
  db: DatabaseHandle;
  tokens: OperatorTokens;
  admin: string;
  logLines: string[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies of many shapes in tests
  call(method: string, path: string, opts?: { token?: string; body?: unknown; raw?: string; contentType?: string; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers; text: string }>;
  close(): Promise<void>;
}

export async function startHarness(extra: Partial<ApiDeps> = {}, health: HealthCheck[] = []): Promise<Harness> {
  const db = await openDatabase({ kind: 'sqlite', file: ':memory:' });
  const tokens = new OperatorTokens(db.db);
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      logLines.push(...chunk.toString('utf8').split('\n').filter((l: string) => l.length > 0));
      cb();
    },
  });
  const deps: ApiDeps = {
    logger: createLogger({ level: 'trace', destination: sink }),
    tokens,
    rateLimiter: new LocalRateLimiter(),
    limits: { operatorRequests: 10_000, readerRequests: 10_000, anonymousRequests: 10_000, windowMs: 60_000 },
    health,
    ...extra,
  };
  const app = await buildApi(deps);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const url = `http://127.0.0.1:${port}`;
  const admin = (await tokens.create({ label: 'test admin', roles: ['issuer_admin'], tenants: ['*'], createdBy: null })).token;
  return {
    app,
    url,
    db,
    tokens,
    admin,
    logLines,
    async call(method, path, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      let body: string | undefined;
      if (o.raw !== undefined) {
        body = o.raw;
        headers['content-type'] = o.contentType ?? 'application/json';
      } else if (o.body !== undefined) {
        body = JSON.stringify(o.body);
        headers['content-type'] = 'application/json';
      }
      const res = await fetch(url + path, { method, headers, ...(body !== undefined ? { body } : {}) });
      const text = await res.text();
      let parsed: unknown = undefined;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: res.status, body: parsed, headers: res.headers, text };
    },
    async close() {
      await app.close();
      await db.close();
    },
  };
}

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

// ---- the whole CMS (composition root) over real HTTPS --------------------------------------------
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CmsApp, buildCmsApp } from '../../src/cms/app.js';
import { type RunningServer, startServer } from '../../src/cms/api/server.js';
import { loadConfig, resolveSecrets } from '../../src/cms/config/index.js';

export interface HttpsResult {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies of many shapes in tests
  body: any;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface CallOptions {
  token?: string;
  body?: unknown;
  raw?: string;
  contentType?: string;
  cert?: { cert: string; key: string };
  headers?: Record<string, string>;
}

export interface CmsHarness {
  cms: CmsApp;
  server: RunningServer;
  admin: string;
  dataDir: string;
  logLines: string[];
  call(method: string, path: string, o?: CallOptions): Promise<HttpsResult>;
  close(): Promise<void>;
}

export const TEST_PASSPHRASE = 'test vault passphrase 0123';

export async function startCms(env: Record<string, string> = {}): Promise<CmsHarness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cms-'));
  const fullEnv = { DESFIRE_CMS_HTTP_PORT: '0', DESFIRE_VAULT_PASSPHRASE: TEST_PASSPHRASE, ...env };
  const { config } = loadConfig({ env: fullEnv, overrides: { dataDir } });
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      logLines.push(...chunk.toString('utf8').split('\n').filter((l: string) => l.length > 0));
      cb();
    },
  });
  config.logging.level = 'trace';
  const cms = await buildCmsApp(config, resolveSecrets(config, fullEnv), { logDestination: sink });
  const server = await startServer(cms.deps, { host: '127.0.0.1', port: 0, ...(cms.tls ? { tls: cms.tls } : {}) });
  const admin = cms.bootstrapToken!;
  const ca = cms.ca!.certificatePem;
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 8 });
  return {
    cms,
    server,
    admin,
    dataDir,
    logLines,
    call(method, path, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      let payload: string | undefined;
      if (o.raw !== undefined) {
        payload = o.raw;
        headers['content-type'] = o.contentType ?? 'application/json';
      } else if (o.body !== undefined) {
        payload = JSON.stringify(o.body);
        headers['content-type'] = 'application/json';
      }
      if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
      return new Promise<HttpsResult>((resolve, reject) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port: server.port, method, path, headers, ca, servername: 'localhost', ...(o.cert ? { cert: o.cert.cert, key: o.cert.key } : {}), agent },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let body: unknown;
              try {
                body = JSON.parse(text);
              } catch {
                body = undefined;
              }
              resolve({ status: res.statusCode ?? 0, body, text, headers: res.headers });
            });
          },
        );
        req.on('error', reject);
        if (payload !== undefined) req.write(payload);
        req.end();
      });
    },
    async close() {
      agent.destroy();
      await server.close();
      await cms.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

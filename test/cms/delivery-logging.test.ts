// Logging on the delivery hot path (src/cms/api/build.ts): request loggers are built on first
// use (a delivery normally logs nothing), the lines written are unchanged (request id, actor),
// and POST /v1/keys/deliver writes Fastify's per-request lines only when debug logging is on.
import { Writable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApi, lazyChildLogger } from '../../src/cms/api/build.js';
import { createLogger } from '../../src/cms/api/logging.js';
import { LocalRateLimiter } from '../../src/cms/api/ratelimit.js';
import { OperatorTokens } from '../../src/cms/api/tokens/service.js';
import { type DatabaseHandle, openDatabase } from '../../src/cms/storage/index.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function api(level: 'info' | 'debug') {
  const db: DatabaseHandle = await openDatabase({ kind: 'sqlite', file: ':memory:' });
  const tokens = new OperatorTokens(db.db);
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const app = await buildApi({
    logger: createLogger({ level, destination: sink }),
    tokens,
    rateLimiter: new LocalRateLimiter(),
    limits: { operatorRequests: 10_000, readerRequests: 10_000, anonymousRequests: 10_000, windowMs: 60_000 },
    health: [],
  });
  closers.push(async () => {
    await app.close();
    await db.close();
  });
  const admin = (await tokens.create({ label: 'admin', roles: ['issuer_admin'], tenants: ['*'], createdBy: null })).token;
  return { app, lines, admin };
}

describe('request loggers', () => {
  it('a lazy child builds the pino child only when a line is logged, with the same bindings', () => {
    const out: Record<string, unknown>[] = [];
    const root = createLogger({
      level: 'info',
      destination: new Writable({
        write(c, _e, cb) {
          out.push(JSON.parse(String(c)) as Record<string, unknown>);
          cb();
        },
      }),
    });
    let built = 0;
    const parent = new Proxy(root, {
      get: (t, p) => (p === 'child' ? (...a: Parameters<typeof root.child>) => (built++, t.child(...a)) : Reflect.get(t, p)),
    }) as unknown as FastifyBaseLogger;
    const reqLog = lazyChildLogger(parent, { reqId: 'r-1' });
    const withActor = reqLog.child({ actor: 'reader:door-1' });
    expect(built).toBe(0); // nothing built for a request that logs nothing
    withActor.info({ uid: '04A1' }, 'card state');
    expect(built).toBe(1);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ reqId: 'r-1', actor: 'reader:door-1', uid: '04A1', msg: 'card state' });
    withActor.debug('below the level');
    expect(out).toHaveLength(1);
    expect(reqLog.level).toBe('info');
  });

  it('operator requests: per-request lines and handler lines carry the request id and the actor', async () => {
    const { app, lines, admin } = await api('info');
    const r = await app.inject({ method: 'POST', url: '/v1/tokens', headers: { authorization: `Bearer ${admin}`, 'x-request-id': 'lazy-log-1' }, payload: { label: 'x', roles: ['auditor'], tenants: ['*'] } });
    expect(r.statusCode).toBe(201);
    const mine = lines.filter((l) => l.reqId === 'lazy-log-1');
    expect(mine.map((l) => l.msg)).toEqual(expect.arrayContaining(['incoming request', 'operator token created', 'request completed']));
    const handler = mine.find((l) => l.msg === 'operator token created')!;
    expect(String(handler.actor)).toMatch(/^operator:/);
    expect(JSON.stringify(lines)).not.toContain(admin); // never the credential
  });

  it('POST /v1/keys/deliver: no per-request lines at info level, both lines at debug level', async () => {
    const info = await api('info');
    await info.app.inject({ method: 'POST', url: '/v1/keys/deliver', headers: { 'x-request-id': 'deliver-info' }, payload: {} });
    expect(info.lines.filter((l) => l.reqId === 'deliver-info' && (l.msg === 'incoming request' || l.msg === 'request completed'))).toEqual([]);
    await info.app.inject({ method: 'GET', url: '/v1/tokens', headers: { 'x-request-id': 'other-info' } });
    expect(info.lines.filter((l) => l.reqId === 'other-info').map((l) => l.msg)).toEqual(expect.arrayContaining(['incoming request', 'request completed']));

    const debug = await api('debug');
    await debug.app.inject({ method: 'POST', url: '/v1/keys/deliver', headers: { 'x-request-id': 'deliver-debug' }, payload: {} });
    expect(debug.lines.filter((l) => l.reqId === 'deliver-debug').map((l) => l.msg)).toEqual(expect.arrayContaining(['incoming request', 'request completed']));
  });
});

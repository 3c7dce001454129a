// Graceful stop of the listener: close() stops accepting connections, lets the request in flight
// finish, then resolves. And the request activity the audit store reads (ApiDeps.requests).
import { Agent, request } from 'node:http';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/cms/api/logging.js';
import { LocalRateLimiter } from '../../src/cms/api/ratelimit.js';
import { startServer } from '../../src/cms/api/server.js';
import { OperatorTokens } from '../../src/cms/api/tokens/service.js';
import { type DatabaseHandle, openDatabase } from '../../src/cms/storage/index.js';

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** What every server here needs: a silent logger, tokens, a rate limiter, limits, no health checks. */
function baseDeps(db: DatabaseHandle) {
  return {
    logger: createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) }),
    tokens: new OperatorTokens(db.db),
    rateLimiter: new LocalRateLimiter(),
    limits: { operatorRequests: 100, readerRequests: 100, anonymousRequests: 100, windowMs: 60_000 },
    health: [],
  };
}

describe('server drain', () => {
  it('close() refuses new connections, finishes the request in flight, then resolves', async () => {
    const db = await openDatabase({ kind: 'sqlite', file: ':memory:' });
    let release!: () => void;
    let entered!: () => void;
    const inHandler = new Promise<void>((r) => (entered = r));
    const running = await startServer(
      {
        ...baseDeps(db),
        modules: [
          {
            name: 'slow',
            register(app) {
              app.get('/slow', { config: { auth: { public: true } } }, async () => {
                entered();
                await new Promise<void>((r) => (release = r));
                return { done: true };
              });
            },
          },
        ],
      },
      { host: '127.0.0.1', port: 0, shutdownGraceMs: 30_000 },
    );
    const inflight = get(running.port, '/v1/slow');
    await inHandler;
    let closed = false;
    const closing = running.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 100));
    await expect(get(running.port, '/healthz')).rejects.toThrow();
    expect(closed).toBe(false);
    release();
    const r = await inflight;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ done: true });
    await closing;
    expect(closed).toBe(true);
    await db.close();
  });

  it('request activity: each request in flight from its arrival until its response closes (an aborted one too); when one last came on another connection', async () => {
    const db = await openDatabase({ kind: 'sqlite', file: ':memory:' });
    const requests = { inFlight: 0, otherConnectionAt: -Infinity };
    const seen: number[] = [];
    const releases: (() => void)[] = [];
    let entered = 0;
    const running = await startServer(
      {
        ...baseDeps(db),
        requests,
        modules: [
          {
            name: 'slow',
            register(app) {
              app.get('/slow', { config: { auth: { public: true } } }, async () => {
                seen.push(requests.inFlight);
                entered++;
                await new Promise<void>((r) => releases.push(r));
                return { done: true };
              });
            },
          },
        ],
      },
      { host: '127.0.0.1', port: 0 },
    );
    const waitFor = async (f: () => boolean) => {
      for (let i = 0; i < 500 && !f(); i++) await new Promise((r) => setTimeout(r, 5));
      expect(f()).toBe(true);
    };
    const a = get(running.port, '/v1/slow');
    await waitFor(() => entered === 1);
    const b = get(running.port, '/v1/slow');
    await waitFor(() => entered === 2);
    expect(seen).toEqual([1, 2]);
    expect(requests.inFlight).toBe(2);
    for (const r of releases.splice(0)) r();
    await Promise.all([a, b]);
    await waitFor(() => requests.inFlight === 0);
    // two requests on ONE keep-alive connection: the second is not another client's
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const onAgent = () =>
      new Promise<void>((resolve, reject) => {
        const q = request({ host: '127.0.0.1', port: running.port, path: '/healthz', agent }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        q.on('error', reject);
        q.end();
      });
    await onAgent();
    const switched = requests.otherConnectionAt;
    expect(switched).toBeGreaterThan(0); // a new connection after a, b
    await onAgent();
    expect(requests.otherConnectionAt).toBe(switched);
    agent.destroy();
    // a client that goes away before the answer: its response closes, the gauge comes back down
    const c = request({ host: '127.0.0.1', port: running.port, path: '/v1/slow', agent: false });
    c.on('error', () => undefined);
    c.end();
    await waitFor(() => entered === 3);
    expect(requests.inFlight).toBe(1);
    c.destroy();
    await waitFor(() => requests.inFlight === 0);
    for (const r of releases.splice(0)) r();
    await running.close();
    await db.close();
  });
});

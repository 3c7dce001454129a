// Graceful stop of the listener: close() stops accepting connections, lets the request in flight
// finish, then resolves.
import { request } from 'node:http';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/cms/api/logging.js';
import { LocalRateLimiter } from '../../src/cms/api/ratelimit.js';
import { startServer } from '../../src/cms/api/server.js';
import { OperatorTokens } from '../../src/cms/api/tokens/service.js';
import { openDatabase } from '../../src/cms/storage/index.js';

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

describe('server drain', () => {
  it('close() refuses new connections, finishes the request in flight, then resolves', async () => {
    const db = await openDatabase({ kind: 'sqlite', file: ':memory:' });
    let release!: () => void;
    let entered!: () => void;
    const inHandler = new Promise<void>((r) => (entered = r));
    const running = await startServer(
      {
        logger: createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) }),
        tokens: new OperatorTokens(db.db),
        rateLimiter: new LocalRateLimiter(),
        limits: { operatorRequests: 100, readerRequests: 100, anonymousRequests: 100, windowMs: 60_000 },
        health: [],
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
});

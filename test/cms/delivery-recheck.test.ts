// The reader re-check handed to a route (src/cms/api/auth.ts ReaderRecheck): a route declaring
// `readerRecheck: 'handler'` gets the cached reader without a database read and must re-check it
// in its own lookup; if it answers successfully without doing so, the API answers 500 instead
// (fail closed). Routes without the declaration keep the full per-request check in the hook, and
// an authenticator without the deferred variant is used as before.
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { type DeferringReaderAuthenticator, registerAuth } from '../../src/cms/api/auth.js';
import type { ApiDeps } from '../../src/cms/api/ports.js';
import { LocalRateLimiter } from '../../src/cms/api/ratelimit.js';

const DER = new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]);
let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

function calls() {
  return { full: 0, deferred: 0 };
}

async function build(readers: ApiDeps['readers'], handlerChecks: boolean): Promise<FastifyInstance> {
  const a = Fastify();
  // a TLS client certificate on the (injected) connection
  a.addHook('onRequest', async (req) => {
    Object.assign(req.raw.socket, { authorized: true, getPeerCertificate: () => ({ raw: Buffer.from(DER) }), getProtocol: () => 'TLSv1.3' });
  });
  const deps = { readers, rateLimiter: new LocalRateLimiter(), limits: { operatorRequests: 100, readerRequests: 100, anonymousRequests: 100, windowMs: 60_000 } } as unknown as ApiDeps;
  registerAuth(a, deps);
  a.post('/deferred', { config: { auth: { reader: true, readerRecheck: 'handler' } } }, async (req) => {
    const p = req.principal;
    if (handlerChecks && p?.kind === 'reader' && p.recheck) p.recheck.done = true;
    return { reader: p?.id, serial: p?.kind === 'reader' ? (p.recheck?.serial ?? null) : null };
  });
  a.post('/plain', { config: { auth: { reader: true } } }, async (req) => ({ reader: req.principal?.id, recheck: req.principal?.kind === 'reader' ? (req.principal.recheck ?? null) : null }));
  await a.ready();
  return a;
}

function deferring(n: ReturnType<typeof calls>, serial: string | undefined): DeferringReaderAuthenticator {
  return {
    async authenticate() {
      n.full++;
      return { readerId: 'door-1' };
    },
    async authenticateDeferred() {
      n.deferred++;
      return serial === undefined ? { readerId: 'door-1' } : { readerId: 'door-1', recheckSerial: serial };
    },
  };
}

describe('reader re-check handed to the route', () => {
  it('a route that re-checks answers; the hook did not read (deferred) and passed the serial', async () => {
    const n = calls();
    app = await build(deferring(n, 'abc1'), true);
    const r = await app.inject({ method: 'POST', url: '/deferred', payload: {} });
    expect([r.statusCode, r.json()]).toEqual([200, { reader: 'door-1', serial: 'abc1' }]);
    expect(n).toEqual({ full: 0, deferred: 1 });
  });

  it('a route that declares the re-check but does not do it answers 500, never its payload', async () => {
    const n = calls();
    app = await build(deferring(n, 'abc1'), false);
    const r = await app.inject({ method: 'POST', url: '/deferred', payload: {} });
    expect(r.statusCode).toBe(500);
    expect(r.body).not.toContain('door-1');
  });

  it('a first-seen certificate (fully verified, no serial handed over) needs no re-check by the route', async () => {
    const n = calls();
    app = await build(deferring(n, undefined), false);
    const r = await app.inject({ method: 'POST', url: '/deferred', payload: {} });
    expect([r.statusCode, r.json()]).toEqual([200, { reader: 'door-1', serial: null }]);
  });

  it('routes without the declaration keep the full check in the hook (no re-check handed over)', async () => {
    const n = calls();
    app = await build(deferring(n, 'abc1'), false);
    const r = await app.inject({ method: 'POST', url: '/plain', payload: {} });
    expect([r.statusCode, r.json()]).toEqual([200, { reader: 'door-1', recheck: null }]);
    expect(n).toEqual({ full: 1, deferred: 0 });
  });

  it('an authenticator without the deferred variant is used as before on a declaring route', async () => {
    let full = 0;
    app = await build({ authenticate: async () => (full++, { readerId: 'door-1' }) }, false);
    const r = await app.inject({ method: 'POST', url: '/deferred', payload: {} });
    expect([r.statusCode, r.json()]).toEqual([200, { reader: 'door-1', serial: null }]);
    expect(full).toBe(1);
  });

  it('a refused certificate is 403 ERR_READER_NOT_ACTIVE on a declaring route too', async () => {
    app = await build({ authenticate: async () => undefined, authenticateDeferred: async () => undefined } as DeferringReaderAuthenticator, true);
    const r = await app.inject({ method: 'POST', url: '/deferred', payload: {} });
    expect([r.statusCode, r.json().error.code]).toEqual([403, 'ERR_READER_NOT_ACTIVE']);
  });
});

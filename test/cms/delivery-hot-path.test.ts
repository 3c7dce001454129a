// The per-request observers of the API (src/cms/ops/http-metrics.ts observeRoutes: the HTTP metrics
// and the station routes' server timings) take the route pattern captured once per route, not
// Fastify's `req.routeOptions` (a getter building an object on every read), and observe every
// answer of a route exactly once — refusals, validation errors, the HEAD route Fastify adds for a
// GET, and unmatched URLs. And the SQLite statements of src/cms/delivery/prepared.ts (rows read as
// arrays and made into objects) give the rows better-sqlite3 itself gives.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyRequest } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorBody, sendError } from '../../src/cms/api/errors.js';
import { stationRoutes } from '../../src/cms/api/routes/station.js';
import type { KeyDelivery } from '../../src/cms/delivery/service.js';
import { prepare } from '../../src/cms/delivery/prepared.js';
import type { StationJobs } from '../../src/cms/jobs/service.js';
import { ServerTimings } from '../../src/cms/jobs/timings.js';
import { type CmsMetrics, type HttpObservation, NO_METRICS } from '../../src/cms/ops/metrics.js';
import { registerHttpMetrics } from '../../src/cms/ops/http-metrics.js';
import { type Database, type DatabaseHandle, openDatabase, withTransaction } from '../../src/cms/storage/index.js';

describe('route observers (HTTP metrics, station timings)', () => {
  it('observe each answer once with its route pattern and method, without reading req.routeOptions', async () => {
    const seen: HttpObservation[] = [];
    const readers: string[] = [];
    const metrics: CmsMetrics = { ...NO_METRICS, httpRequest: (o) => seen.push(o), readerSeen: (id) => readers.push(id) };
    const timings = new ServerTimings();
    const app = Fastify();
    app.addSchema(ErrorBody);
    app.setErrorHandler((err, req, reply) => sendError(reply, req, err));
    // count the reads of Fastify's routeOptions getter (the hooks under test are the only readers):
    // shadowed on each request by the first hook (Fastify's own accessor is not configurable)
    let reads = 0;
    const shadow = (req: object): void => {
      let owner = Object.getPrototypeOf(req) as object | null;
      while (owner && !Object.getOwnPropertyDescriptor(owner, 'routeOptions')) owner = Object.getPrototypeOf(owner) as object | null;
      const getter = Object.getOwnPropertyDescriptor(owner!, 'routeOptions')!.get!;
      Object.defineProperty(req, 'routeOptions', {
        get(this: FastifyRequest) {
          reads++;
          return getter.call(this);
        },
      });
    };
    // a refusal before the route runs (as the API's auth hook answers 403), and a reader principal
    app.addHook('onRequest', async (req, reply) => {
      shadow(req);
      if (req.headers['x-deny']) return reply.code(403).send({ error: { code: 'ERR_FORBIDDEN', message: 'no' } });
      if (req.headers['x-reader']) (req as FastifyRequest & { principal?: unknown }).principal = { kind: 'reader', id: 'rdr_x' };
    });
    registerHttpMetrics(app, metrics);
    await app.register(async (s) => stationRoutes({} as StationJobs, {} as KeyDelivery, timings)(s), { prefix: '/v1' });
    await app.register(async (s) => s.get('/items/:id', async () => ({ ok: true })), { prefix: '/v1' });
    await app.ready();
    const r1 = await app.inject({ method: 'POST', url: '/v1/keys/deliver', payload: { uid: 'zz' }, headers: { 'x-reader': '1' } }); // schema: 400
    const r2 = await app.inject({ method: 'POST', url: '/v1/keys/deliver', payload: {}, headers: { 'x-deny': '1' } }); // refused: 403
    const r3 = await app.inject({ method: 'GET', url: '/v1/items/7' });
    const r4 = await app.inject({ method: 'HEAD', url: '/v1/items/8' });
    const r5 = await app.inject({ method: 'GET', url: '/v1/nowhere' });
    const r6 = await app.inject({ method: 'HEAD', url: '/v1/jobs/job_abc' }); // the station's GET route's HEAD twin (no jobs here: 500)
    expect([r1.statusCode, r2.statusCode, r3.statusCode, r4.statusCode, r5.statusCode, r6.statusCode]).toEqual([400, 403, 200, 200, 404, 500]);
    // onResponse hooks run once the answer has gone: wait for the last one
    for (let i = 0; i < 1000 && seen.length < 6; i++) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(reads).toBe(0);
    expect(seen.map((o) => `${o.method} ${o.route} ${o.status}`)).toEqual([
      'POST /v1/keys/deliver 400',
      'POST /v1/keys/deliver 403',
      'GET /v1/items/:id 200',
      'HEAD /v1/items/:id 200',
      'GET unmatched 404',
      'HEAD /v1/jobs/:id 500',
    ]);
    expect(seen.every((o) => typeof o.seconds === 'number' && o.seconds >= 0)).toBe(true);
    expect(readers).toEqual(['rdr_x']);
    // station timings: the station's routes only, each answer once, keyed by method and pattern
    const snap = timings.snapshot();
    expect(Object.keys(snap).sort()).toEqual(['HEAD /v1/jobs/:id', 'POST /v1/keys/deliver']);
    expect(snap['POST /v1/keys/deliver']!.count).toBe(2);
    expect(snap['HEAD /v1/jobs/:id']!.count).toBe(1);
    await app.close();
  });
});

describe('prepared SQLite statements: rows as better-sqlite3 gives them', () => {
  let h: DatabaseHandle;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'dcms-hot-'));
    h = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'cms.sqlite') });
    await h.db.insertInto('meta_settings').values([{ name: 'a', value: 'x' }, { name: 'b', value: 'y' }]).execute();
  });
  afterAll(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('first/all: the same objects as the plain statement (text, integer, real, null, blob), outside and inside a transaction', async () => {
    const text = "select name, value, length(value) as n, 1.5 as r, null as z, x'00ff' as b from meta_settings where name >= ? order by name";
    const q = prepare<Database, [string], Record<string, unknown>>(h.db, 1, (from) => h.db.selectFrom('meta_settings').select(['name', 'value']).where('name', '>=', from!), h.sqlite);
    const plain = h.sqlite!.prepare(text);
    expect(await q.all('a')).toEqual([
      { name: 'a', value: 'x' },
      { name: 'b', value: 'y' },
    ]);
    expect(await q.first('b')).toEqual({ name: 'b', value: 'y' });
    expect(await q.first('c')).toBeUndefined();
    // every column type through the same path (a raw text statement is what prepare compiles to)
    const typed = prepare<Database, [string], Record<string, unknown>>(h.db, 1, (from) => ({ compile: () => ({ ...h.db.selectFrom('meta_settings').select('name').where('name', '>=', from!).compile(), sql: text }) }) as never, h.sqlite);
    expect(await typed.all('a')).toEqual(plain.all('a'));
    expect(Object.keys((await typed.first('a'))!)).toEqual(['name', 'value', 'n', 'r', 'z', 'b']);
    // inside an open transaction the read waits for Kysely's lock, and still gives objects
    let during: unknown;
    await withTransaction(h.db, async () => {
      during = q.first('a');
    });
    expect(await during).toEqual({ name: 'a', value: 'x' });
  });

  it('refuse a statement whose result columns share a name (a row object would lose one)', () => {
    const dup = "select name as v, value as v from meta_settings where name = ?";
    expect(() =>
      prepare<Database, [string], Record<string, unknown>>(h.db, 1, (n) => ({ compile: () => ({ ...h.db.selectFrom('meta_settings').select('name').where('name', '=', n!).compile(), sql: dup }) }) as never, h.sqlite),
    ).toThrow(/distinct/);
  });
});

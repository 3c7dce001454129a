// Serving the console (src/cms/api/console.ts) without a browser: the built files from memory with
// a strict CSP, client-side routes falling back to index.html, missing assets and encoded
// traversal answered 404, the verifier key, and 503 when the console was never built.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleRoutes } from '../../src/cms/api/console.js';
import { startHarness, type Harness } from '../cms/api-harness.js';
import { ensureConsoleBuilt } from './harness.js';

describe('console static serving', () => {
  let h: Harness;
  beforeAll(async () => {
    ensureConsoleBuilt();
    h = await startHarness();
  }, 180_000);
  afterAll(async () => h?.close());

  it('serves index.html and hashed assets with security headers; SPA paths fall back; misses are 404', async () => {
    const index = await fetch(`${h.url}/console/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toContain('text/html');
    expect(index.headers.get('content-security-policy')).toMatch(/default-src 'none'.*script-src 'self'.*frame-ancestors 'none'/);
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    const js = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(js).toBeDefined();
    const asset = await fetch(`${h.url}${js}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toContain('text/javascript');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect(await (await fetch(`${h.url}/console/cards`)).text()).toBe(html);
    expect((await fetch(`${h.url}/console`, { redirect: 'manual' })).headers.get('location')).toBe('/console/');
    const miss = await fetch(`${h.url}/console/assets/nope.js`);
    expect(miss.status).toBe(404);
    expect(((await miss.json()) as { error: { code: string } }).error.code).toBe('ERR_NOT_FOUND');
    expect((await fetch(`${h.url}/console/assets%2F..%2F..%2F..%2Fpackage.json`)).status).toBe(404);
    // no audit log configured: no verifier key
    expect((await fetch(`${h.url}/console/vkey`)).status).toBe(404);
    // not in the API description
    expect(JSON.stringify((await h.call('GET', '/docs/openapi.json')).body)).not.toContain('/console');
  });

  it('answers 503 ERR_CONSOLE_NOT_BUILT when there is no build, and serves a given vkey', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'console-empty-'));
    const app = Fastify();
    await app.register(consoleRoutes({ root: empty, vkey: 'test+01234567+AAAA' }));
    try {
      const r = await app.inject({ method: 'GET', url: '/console/' });
      expect([r.statusCode, r.json().error.code]).toEqual([503, 'ERR_CONSOLE_NOT_BUILT']);
      const v = await app.inject({ method: 'GET', url: '/console/vkey' });
      expect([v.statusCode, v.body]).toEqual([200, 'test+01234567+AAAA\n']);
    } finally {
      await app.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

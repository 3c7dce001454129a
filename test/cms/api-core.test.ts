import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from './api-harness.js';

let h: Harness;
let down = false;
beforeAll(async () => {
  h = await startHarness({}, [
    { name: 'database', check: async () => ({ ok: true }) },
    { name: 'custody', check: async () => (down ? { ok: false, reason: 'sealed' } : { ok: true }) },
  ]);
});
afterAll(async () => h?.close());

describe('API core', () => {
  it('health: /healthz alive, /readyz names each dependency down', async () => {
    expect((await h.call('GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await h.call('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks.map((c: { name: string }) => c.name)).toEqual(['database', 'custody']);
    down = true;
    const notReady = await h.call('GET', '/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.body.checks).toContainEqual({ name: 'custody', ok: false, reason: 'sealed' });
    down = false;
  });

  it('OpenAPI is served at /docs/openapi.json and /docs', async () => {
    const r = await h.call('GET', '/docs/openapi.json');
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.1.0');
    expect(Object.keys(r.body.paths)).toEqual(expect.arrayContaining(['/healthz', '/readyz', '/v1/tokens', '/v1/tokens/{id}']));
    const html = await h.call('GET', '/docs');
    expect(html.status).toBe(200);
    expect(html.text).toContain('/docs/openapi.json');
  });

  it('unknown routes → 404 with the error model; request id echoed', async () => {
    const r = await h.call('GET', '/nope', { headers: { 'x-request-id': 'abc-123' } });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('ERR_NOT_FOUND');
    expect(r.headers.get('x-request-id')).toBe('abc-123');
  });

  it('auth: none → 401, bad token → 401, wrong role → 403', async () => {
    expect((await h.call('GET', '/v1/tokens')).body.error.code).toBe('ERR_UNAUTHENTICATED');
    expect((await h.call('GET', '/v1/tokens')).status).toBe(401);
    const bad = await h.call('GET', '/v1/tokens', { token: 'dcms_' + 'A'.repeat(43) });
    expect([bad.status, bad.body.error.code]).toEqual([401, 'ERR_BAD_TOKEN']);
    const auditor = (await h.tokens.create({ label: 'a', roles: ['auditor'], tenants: ['*'], createdBy: null })).token;
    const r = await h.call('POST', '/v1/tokens', { token: auditor, body: { label: 'x', roles: ['auditor'], tenants: ['t1'] } });
    expect([r.status, r.body.error.code]).toEqual([403, 'ERR_FORBIDDEN']);
  });

  it('tokens: create (shown once), use, list in scope, revoke', async () => {
    const c = await h.call('POST', '/v1/tokens', { token: h.admin, body: { label: 'acme admin', roles: ['tenant_admin'], tenants: ['acme'] } });
    expect(c.status).toBe(201);
    expect(c.body.token).toMatch(/^dcms_[A-Za-z0-9_-]{43}$/);
    const acme = c.body.token as string;
    const self = await h.call('GET', '/v1/tokens/self', { token: acme });
    expect(self.body).toMatchObject({ id: c.body.record.id, roles: ['tenant_admin'], tenants: ['acme'] });
    // the tenant admin only sees tokens of its own tenant
    await h.call('POST', '/v1/tokens', { token: h.admin, body: { label: 'other', roles: ['tenant_admin'], tenants: ['other'] } });
    const list = await h.call('GET', '/v1/tokens', { token: acme });
    expect(list.body.tokens.map((t: { tenants: string[] }) => t.tenants)).toEqual([['acme']]);
    // stored hashed: the token string is nowhere in the database
    const rows = await h.db.db.selectFrom('api_tokens').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(acme.slice(5));
    // handler log lines name the caller by token id
    expect(h.logLines.some((l) => l.includes('operator token created') && /"actor":"operator:tok_/.test(l))).toBe(true);
    const rev = await h.call('DELETE', `/v1/tokens/${c.body.record.id}`, { token: h.admin });
    expect(rev.status).toBe(200);
    expect(rev.body.revokedAt).toBeTypeOf('number');
    expect((await h.call('GET', '/v1/tokens/self', { token: acme })).status).toBe(401);
  });

  it('bad input → 400 with the failing path, stable codes, no state change', async () => {
    const before = (await h.tokens.list()).length;
    const cases: [unknown, string][] = [
      [{ label: 'x', roles: ['root'], tenants: ['a'] }, '/body/roles/0'],
      [{ label: 'x', roles: ['auditor'] }, '/body/tenants'],
      [{ label: 'x', roles: ['auditor'], tenants: ['a'], extra: 1 }, '/body/extra'],
      [{ label: '', roles: ['auditor'], tenants: ['a'] }, '/body/label'],
    ];
    for (const [body, path] of cases) {
      const r = await h.call('POST', '/v1/tokens', { token: h.admin, body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.code).toBe('ERR_VALIDATION');
      expect(r.body.error.details[0].path).toBe(path);
    }
    const scope = await h.call('POST', '/v1/tokens', { token: h.admin, body: { label: 'x', roles: ['issuer_admin'], tenants: ['a'] } });
    expect([scope.status, scope.body.error.code]).toEqual([400, 'ERR_TOKEN_SCOPE']);
    const json = await h.call('POST', '/v1/tokens', { token: h.admin, raw: '{"label": ' });
    expect([json.status, json.body.error.code]).toEqual([400, 'ERR_BAD_JSON']);
    const media = await h.call('POST', '/v1/tokens', { token: h.admin, raw: 'x', contentType: 'application/octet-stream' });
    expect([media.status, media.body.error.code]).toEqual([415, 'ERR_UNSUPPORTED_MEDIA_TYPE']);
    const badId = await h.call('DELETE', '/v1/tokens/../../x', { token: h.admin });
    expect(badId.status).toBeLessThan(500);
    expect((await h.tokens.list()).length).toBe(before);
  });
});

describe('rate limits', () => {
  it('per token, and failed credentials per client address → 429 ERR_RATE_LIMITED', async () => {
    const l = await startHarness({ limits: { operatorRequests: 3, readerRequests: 3, anonymousRequests: 2, windowMs: 60_000 } });
    try {
      for (let i = 0; i < 3; i++) expect((await l.call('GET', '/v1/tokens/self', { token: l.admin })).status).toBe(200);
      const r = await l.call('GET', '/v1/tokens/self', { token: l.admin });
      expect([r.status, r.body.error.code]).toEqual([429, 'ERR_RATE_LIMITED']);
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      const bad = 'dcms_' + 'B'.repeat(43);
      expect((await l.call('GET', '/v1/tokens', { token: bad })).status).toBe(401);
      expect((await l.call('GET', '/v1/tokens', { token: bad })).status).toBe(401);
      expect((await l.call('GET', '/v1/tokens', { token: bad })).status).toBe(429);
      // health probes are never limited
      for (let i = 0; i < 5; i++) expect((await l.call('GET', '/healthz')).status).toBe(200);
    } finally {
      await l.close();
    }
  });
});

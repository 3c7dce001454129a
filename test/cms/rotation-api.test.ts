// The rotation / approvals / KEK / compromise routes over a real API (Fastify inject), real
// SQLite, real audit log, embedded custody: four-eyes start of a campaign over the threshold,
// errors with stable codes, progress, KEK census, reader key set.
import { afterAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/cms/api/build.js';
import { createLogger } from '../../src/cms/api/logging.js';
import { LocalRateLimiter } from '../../src/cms/api/ratelimit.js';
import { rotationModule } from '../../src/cms/api/routes/rotation.js';
import { OperatorTokens } from '../../src/cms/api/tokens/service.js';
import type { AuditLog } from '../../src/cms/audit/log.js';
import { DEFAULT_APPROVAL_POLICY } from '../../src/cms/approvals/policy.js';
import { openLog } from './audit-fixture.js';
import { AID, TENANT, makeFixture, type Fixture } from './rotation-fixture.js';

describe('rotation API', () => {
  let f: Fixture;
  let log: AuditLog;
  afterAll(async () => {
    await log?.close();
    await f?.close();
  });

  it('campaign over the threshold: request, four-eyes approval, start, progress; KEK census; reader keys', async () => {
    f = await makeFixture(30);
    log = (await openLog(f.handle)).log;
    const tokens = new OperatorTokens(f.handle.db);
    const tok = async (label: string, roles: ('issuer_admin' | 'auditor')[]) => (await tokens.create({ label, roles, tenants: ['*'], createdBy: null })).token;
    const [alice, bob, carol, audi] = [await tok('alice', ['issuer_admin']), await tok('bob', ['issuer_admin']), await tok('carol', ['issuer_admin']), await tok('audi', ['auditor'])];
    const app = await buildApi({
      logger: createLogger({ level: 'error' }),
      tokens,
      rateLimiter: new LocalRateLimiter(),
      limits: { operatorRequests: 10_000, readerRequests: 10_000, anonymousRequests: 10_000, windowMs: 60_000 },
      health: [],
      modules: [rotationModule({ db: f.handle.db, custody: f.custody, audit: log, policy: { ...DEFAULT_APPROVAL_POLICY, campaignCardThreshold: 10 } })],
    });
    const call = async (token: string, method: 'GET' | 'POST', url: string, payload?: unknown) => {
      const r = await app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
      return { status: r.statusCode, body: r.json() as Record<string, unknown> & { error?: { code: string } } };
    };
    try {
      let r = await call(alice, 'POST', '/v1/rotation/campaigns', { tenantId: TENANT, aid: AID, keyNo: 0, fromVersion: 1, target: { kind: 'all' }, batchSize: 10 });
      expect(r.status).toBe(201);
      const id = r.body.id as string;
      expect(r.body).toMatchObject({ state: 'awaiting_approval', cardCount: 30, toVersion: 2 });
      expect((await call(alice, 'POST', '/v1/rotation/campaigns', { tenantId: TENANT, aid: AID, keyNo: 0, target: { kind: 'nope' } })).status).toBe(400);
      r = await call(alice, 'POST', `/v1/rotation/campaigns/${id}/start`);
      expect([r.status, r.body.error?.code]).toEqual([428, 'ERR_APPROVAL_REQUIRED']);
      const approvalId = r.body.error ? ((await call(audi, 'GET', `/v1/rotation/campaigns/${id}`)).body.campaign as { approvalId: string }).approvalId : '';
      r = await call(bob, 'GET', `/v1/approvals/${approvalId}`);
      expect(r.body).toMatchObject({ kind: 'rotation_campaign', required: 2, payload: { campaignId: id, cardCount: 30 } });
      r = await call(alice, 'POST', `/v1/approvals/${approvalId}/approve`);
      expect([r.status, r.body.error?.code]).toEqual([403, 'ERR_APPROVAL_SELF']);
      r = await call(audi, 'POST', `/v1/approvals/${approvalId}/approve`);
      expect(r.status).toBe(403);
      expect((await call(bob, 'POST', `/v1/approvals/${approvalId}/approve`)).body).toMatchObject({ state: 'pending' });
      expect((await call(alice, 'POST', `/v1/rotation/campaigns/${id}/start`)).status).toBe(428);
      expect((await call(carol, 'POST', `/v1/approvals/${approvalId}/approve`)).body).toMatchObject({ state: 'approved' });
      r = await call(alice, 'POST', `/v1/rotation/campaigns/${id}/start`);
      expect([r.status, r.body.state]).toEqual([200, 'running']);
      r = await call(audi, 'GET', `/v1/key-versions/${TENANT}/${AID}/0`);
      expect(r.body.accepted).toEqual([2, 1]);
      r = await call(audi, 'GET', `/v1/rotation/campaigns/${id}`);
      expect(r.body.totals).toEqual({ done: 0, pending: 30, failed: 0, reverted: 0, cancelled: 0 });
      // an auditor of another tenant sees neither the campaign nor the key's versions
      const other = (await tokens.create({ label: 'other auditor', roles: ['auditor'], tenants: ['someone-else'], createdBy: null })).token;
      expect((await call(other, 'GET', '/v1/rotation/campaigns')).body.campaigns).toEqual([]);
      expect((await call(other, 'GET', `/v1/rotation/campaigns/${id}`)).status).toBe(404);
      expect((await call(other, 'GET', `/v1/key-versions/${TENANT}/${AID}/0`)).status).toBe(403);
      expect(((await call(audi, 'GET', '/v1/rotation/campaigns')).body.campaigns as { id: string }[]).map((c) => c.id)).toContain(id);
      expect(r.body.batches).toHaveLength(3);
      r = await call(alice, 'POST', `/v1/rotation/campaigns/${id}/complete`);
      expect([r.status, r.body.error?.code]).toEqual([409, 'ERR_ROTATION_STATE']);
      expect((await call(alice, 'POST', `/v1/rotation/campaigns/${id}/pause`)).body.state).toBe('paused');
      expect((await call(alice, 'POST', `/v1/rotation/campaigns/${id}/rollback`)).body.state).toBe('rolling_back');

      await f.custody.createKey({ actor: 't', purpose: 't', correlationId: 't' }, 'kek.acme', { purpose: 'wrap' });
      r = await call(audi, 'GET', '/v1/kek/kek.acme/census');
      expect(r.body).toEqual({ kek: 'kek.acme', latestVersion: 1, census: [], toRewrap: 0 });
      r = await call(alice, 'POST', '/v1/kek/kek.acme/rotate', { approvalId: 'none' });
      expect([r.status, r.body.error?.code]).toEqual([428, 'ERR_APPROVAL_REQUIRED']);
      r = await call(audi, 'GET', '/v1/compromise/readers/r-1/keys');
      expect(r.body).toEqual({ keys: [] });
      await log.drain();
      const ops = (await f.handle.db.selectFrom('audit_entries').select(['operation', 'result']).execute()).map((e) => `${e.operation}:${e.result}`);
      expect(ops).toEqual(expect.arrayContaining(['rotation.create:ok', 'approval.request:ok', 'approval.approve:denied', 'approval.approve:ok', 'rotation.start:denied', 'rotation.start:ok', 'rotation.rollback:ok', 'kek.rotate:denied']));
    } finally {
      await app.close();
    }
  });
});

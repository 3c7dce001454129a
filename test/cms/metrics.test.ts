// Metrics (src/cms/ops): the Prometheus registry fed by the hooks, the custody timer, the scrape
// sources, GET /v1/metrics on the real CMS (operator token) and the separate 127.0.0.1 listener.
import { describe, expect, it } from 'vitest';
import type { KeyCustody } from '../../src/custody/types.js';
import { timedCustody } from '../../src/cms/ops/custody-metrics.js';
import { keyReleaseOf, NO_METRICS, type CustodyObservation } from '../../src/cms/ops/metrics.js';
import { startMetricsListener } from '../../src/cms/ops/metrics-server.js';
import { PromMetrics } from '../../src/cms/ops/prometheus.js';
import type { AuditEntry } from '../../src/cms/audit/entry.js';
import { startCms } from './api-harness.js';

const entry = (o: Partial<AuditEntry>): AuditEntry => ({
  index: 0,
  time: 0,
  actor: null,
  readerId: null,
  cardUid: null,
  tenant: null,
  aid: null,
  keyNo: null,
  keyVersion: null,
  operation: 'x',
  result: 'ok',
  correlationId: null,
  details: {},
  ...o,
});

/** The value of one sample line `name{labels} value` (labels in any order given as a subset). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('PromMetrics', () => {
  it('counts key releases by tenant/AID/result from committed audit entries, and nothing else as a release', () => {
    expect(keyReleaseOf({ operation: 'custody.seal', result: 'ok' })).toBe('ok');
    expect(keyReleaseOf({ operation: 'custody.export_for_card', result: 'error' })).toBe('error');
    expect(keyReleaseOf({ operation: 'custody.seal', result: 'requested' })).toBeUndefined();
    expect(keyReleaseOf({ operation: 'cms.key_delivery', result: 'refused' })).toBe('refused');
    expect(keyReleaseOf({ operation: 'custody.wrap', result: 'ok' })).toBeUndefined();
    expect(keyReleaseOf({ operation: 'api.tenant.create', result: 'ok' })).toBeUndefined();
  });

  it('exposes every family with the labels operators query by', async () => {
    let now = 1_000_000;
    const m = new PromMetrics({ processMetrics: false, onlineWindowMs: 60_000, now: () => now });
    m.setSources({
      auditQueue: () => ({ queued: 7, treeSize: 42, ok: true }),
      custodySealed: () => false,
      campaignProgress: async () => [
        { campaign: 'c1', tenant: 'library', aid: 'A10001', campaignState: 'running', itemState: 'done', items: 3 },
        { campaign: 'c1', tenant: 'library', aid: 'A10001', campaignState: 'running', itemState: 'pending', items: 5 },
      ],
      activeReaders: async () => ['r1', 'r2', 'r3'],
    });
    m.httpRequest({ method: 'GET', route: '/v1/readers/:id', status: 200, seconds: 0.004 });
    m.httpRequest({ method: 'GET', route: '/v1/readers/:id', status: 200, seconds: 0.02 });
    m.httpRequest({ method: 'POST', route: '/v1/keys/deliver', status: 403, seconds: 0.01 });
    m.custodyOp({ backend: 'pkcs11', op: 'seal', result: 'ok', seconds: 0.003 });
    m.auditCommitted([
      entry({ operation: 'custody.seal', result: 'requested', tenant: 'library', aid: 'A10001' }),
      entry({ operation: 'custody.seal', result: 'ok', tenant: 'library', aid: 'A10001' }),
      entry({ operation: 'custody.seal', result: 'ok', tenant: 'library', aid: 'A10001' }),
      entry({ operation: 'cms.key_delivery', result: 'refused', tenant: 'transit', aid: 'B20002' }),
      // a station job's keys sealed in one batch: every key counts, under its own tenant and AID
      entry({ operation: 'custody.seal_batch', result: 'ok', tenant: null, aid: null, details: { seals: [
        { tenant: 'library', aid: 'A10001', uid: '04A1B2C3D4E5F6', keyNo: 0, version: 1 },
        { tenant: 'library', aid: 'A10001', uid: '04A1B2C3D4E5F6', keyNo: 1, version: 1 },
        { tenant: 'transit', aid: 'B20002', uid: '04A1B2C3D4E5F6', keyNo: 0, version: 1 },
      ] } }),
      entry({ operation: 'custody.seal_master', result: 'ok', tenant: 'transit', aid: 'B20002' }),
    ]);
    m.auditBatch(4, 3.5);
    m.alertRaised('delivery_refusals', 'warning');
    m.readerSeen('r1', now - 10_000);
    m.readerSeen('r2', now - 120_000); // outside the window
    const t = await m.text();
    expect(sample(t, 'desfire_cms_http_request_duration_seconds_count', { method: 'GET', route: '/v1/readers/:id', status: '200' })).toBe(2);
    expect(sample(t, 'desfire_cms_http_request_duration_seconds_count', { route: '/v1/keys/deliver', status: '403' })).toBe(1);
    expect(sample(t, 'desfire_cms_custody_operation_duration_seconds_count', { backend: 'pkcs11', op: 'seal', result: 'ok' })).toBe(1);
    expect(sample(t, 'desfire_cms_key_releases_total', { tenant: 'library', aid: 'A10001', result: 'ok' })).toBe(4);
    expect(sample(t, 'desfire_cms_key_releases_total', { tenant: 'transit', aid: 'B20002', result: 'ok' })).toBe(2);
    expect(sample(t, 'desfire_cms_key_releases_total', { tenant: 'transit', aid: 'B20002', result: 'refused' })).toBe(1);
    expect(sample(t, 'desfire_cms_audit_queue_depth')).toBe(7);
    expect(sample(t, 'desfire_cms_audit_tree_size')).toBe(42);
    expect(sample(t, 'desfire_cms_audit_commit_duration_seconds_count')).toBe(1);
    expect(sample(t, 'desfire_cms_audit_entries_total', { result: 'requested' })).toBe(1);
    expect(sample(t, 'desfire_cms_alerts_raised_total', { rule: 'delivery_refusals', severity: 'warning' })).toBe(1);
    expect(sample(t, 'desfire_cms_rotation_campaign_cards', { campaign: 'c1', item_state: 'pending' })).toBe(5);
    expect(sample(t, 'desfire_cms_rotation_campaign_cards', { campaign: 'c1', item_state: 'done', campaign_state: 'running' })).toBe(3);
    expect(sample(t, 'desfire_cms_readers', { presence: 'online' })).toBe(1);
    expect(sample(t, 'desfire_cms_readers', { presence: 'offline' })).toBe(2);
    expect(sample(t, 'desfire_cms_custody_sealed')).toBe(0);
    now += 60_000; // r1 goes quiet
    expect(sample(await m.text(), 'desfire_cms_readers', { presence: 'online' })).toBe(0);
  });

  it('a failing scrape source leaves the other families intact', async () => {
    const m = new PromMetrics({ processMetrics: false });
    m.setSources({ campaignProgress: async () => Promise.reject(new Error('db down')), activeReaders: async () => Promise.reject(new Error('db down')), auditQueue: () => ({ queued: 1, treeSize: 1, ok: false }) });
    const t = await m.text();
    expect(sample(t, 'desfire_cms_audit_writable')).toBe(0);
    expect(sample(t, 'desfire_cms_readers', { presence: 'online' })).toBeUndefined();
  });
});

describe('timedCustody', () => {
  it('times every call by backend/op/result and passes results and errors through unchanged', async () => {
    const seen: CustodyObservation[] = [];
    const err = Object.assign(new Error('nope'), { code: 'ERR_CUSTODY_UNKNOWN_KEY' });
    const inner = {
      secret: 1,
      getKey: async (_c: unknown, name: string) => ({ name }),
      listKeys: async () => {
        throw err;
      },
      close: async () => undefined,
    } as unknown as KeyCustody;
    const c = timedCustody(inner, 'embedded', { ...NO_METRICS, custodyOp: (o) => seen.push(o) });
    const ctx = { actor: 'a', purpose: 'p', correlationId: 'c' };
    expect(await c.getKey(ctx, 'k1')).toEqual({ name: 'k1' });
    await expect(c.listKeys(ctx)).rejects.toBe(err);
    await c.close();
    expect(seen.map((s) => [s.backend, s.op, s.result])).toEqual([
      ['embedded', 'getKey', 'ok'],
      ['embedded', 'listKeys', 'error'],
    ]);
    expect(seen.every((s) => s.seconds >= 0)).toBe(true);
    expect(c.getKey).toBe(c.getKey); // stable identity (bound once)
  });
});

describe('GET /v1/metrics and the metrics listener on the real CMS', () => {
  it('serves the families to an operator token only; the listener serves GET /metrics and nothing else', async () => {
    const h = await startCms();
    const listener = await startMetricsListener(h.cms.metrics, '127.0.0.1', 0);
    try {
      const created = await h.call('POST', '/v1/tenants', { token: h.admin, body: { id: 'metrics-t', name: 'Metrics' } });
      expect(created.status).toBeLessThan(300);
      expect((await h.call('GET', '/v1/metrics')).status).toBe(401);
      // the labels name every tenant: a tenant-scoped auditor is refused
      const scoped = (await h.cms.deps.tokens.create({ label: 'scoped auditor', roles: ['auditor'], tenants: ['metrics-t'], createdBy: null })).token;
      const refused = await h.call('GET', '/v1/metrics', { token: scoped });
      expect([refused.status, refused.body?.error?.code]).toEqual([403, 'ERR_FORBIDDEN_TENANT']);
      const r = await h.call('GET', '/v1/metrics', { token: h.admin });
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toMatch(/^text\/plain/);
      const t = r.text;
      expect(sample(t, 'desfire_cms_http_request_duration_seconds_count', { method: 'POST', route: '/v1/tenants', status: String(created.status) })).toBe(1);
      // start-up derived the CA protector key through custody: timed, and counted as a release
      expect(sample(t, 'desfire_cms_custody_operation_duration_seconds_count', { backend: 'embedded', op: 'exportForCard', result: 'ok' })).toBeGreaterThanOrEqual(1);
      expect(sample(t, 'desfire_cms_key_releases_total', { tenant: 'cms-internal', aid: '000000', result: 'ok' })).toBeGreaterThanOrEqual(1);
      expect(sample(t, 'desfire_cms_audit_queue_depth')).toBe(0);
      expect(sample(t, 'desfire_cms_audit_commit_duration_seconds_count')).toBeGreaterThanOrEqual(1);
      expect(sample(t, 'desfire_cms_readers', { presence: 'offline' })).toBe(0);
      expect(sample(t, 'desfire_cms_custody_sealed')).toBe(0);
      expect(t).toContain('desfire_cms_process_cpu_seconds_total');
      expect(t).not.toContain(h.admin);

      const l = await fetch(listener.url);
      expect(l.status).toBe(200);
      expect(await l.text()).toContain('desfire_cms_key_releases_total');
      expect((await fetch(listener.url, { method: 'POST' })).status).toBe(405);
      expect((await fetch(listener.url.replace('/metrics', '/v1/tenants'))).status).toBe(404);
    } finally {
      await listener.close();
      await h.close();
    }
  }, 180_000);
});

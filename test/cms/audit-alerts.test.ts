// Alert rules: each fires on its pattern and stays quiet on normal traffic; the engine stores
// alerts, lists them and delivers them to a webhook (retried) without blocking appends.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/cms/audit/entry.js';
import { AlertRules } from '../../src/cms/audit/alerts/rules.js';
import { AlertEngine } from '../../src/cms/audit/alerts/engine.js';
import { WebhookNotifier } from '../../src/cms/audit/alerts/webhook.js';
import { alertConfig } from '../../src/cms/audit/alerts/types.js';
import { SqlAuditStore } from '../../src/cms/audit/store.js';
import { type Backend, sqliteBackend } from './storage-backends.js';
import { openLog } from './audit-fixture.js';

let idx = 0;
const T0 = 1_760_000_000_000;
function entry(p: Partial<AuditEntry> & { t: number }): AuditEntry {
  const { t, ...rest } = p;
  return {
    index: idx++,
    time: T0 + t,
    actor: null,
    readerId: 'reader-1',
    cardUid: '04A1B2C3D4E5F6',
    tenant: 'tenant-a',
    aid: 'F00001',
    keyNo: 1,
    keyVersion: 1,
    operation: 'card.authenticate',
    result: 'ok',
    correlationId: null,
    details: { address: '10.0.0.1' },
    ...rest,
  };
}

const cfg = alertConfig({ massRelease: { minCount: 30, factor: 4, windowMs: 60_000 }, cooldownMs: 60_000 });

/** A day of normal traffic: 8 readers, steady releases, stable addresses, sequential batons, rare failures. */
function normalTraffic(): AuditEntry[] {
  const out: AuditEntry[] = [];
  const seq = new Map<string, number>();
  for (let s = 0; s < 2 * 3600; s += 3) {
    const r = `reader-${s % 8}`;
    const uid = '04A1B2C3D4' + (s % 997).toString(16).padStart(4, '0').toUpperCase();
    const ms = s * 1000;
    out.push(entry({ t: ms, readerId: r, cardUid: uid, details: { address: `10.0.${s % 8}.5` } }));
    out.push(entry({ t: ms + 10, readerId: r, cardUid: uid, operation: 'key.release', details: { address: `10.0.${s % 8}.5` } }));
    if (s % 97 === 0) out.push(entry({ t: ms + 20, readerId: r, cardUid: uid, result: 'error', details: { code: 'ERR_INTEGRITY' } }));
    if (s % 600 === 0) {
      const from = (seq.get(r) ?? -1) + 1;
      out.push(entry({ t: ms + 30, readerId: r, cardUid: null, operation: 'reader.baton', details: { seqFrom: from, seqTo: from + 49 } }));
      seq.set(r, from + 49);
    }
  }
  return out;
}

function run(entries: AuditEntry[], rules = new AlertRules(cfg)) {
  return entries.flatMap((e) => rules.observe(e));
}

describe('alert rules', () => {
  it('stay quiet on normal traffic', () => {
    const traffic = normalTraffic();
    expect(traffic.length).toBeGreaterThan(4000);
    expect(run(traffic)).toEqual([]);
  });

  it('failed-auth-card: repeated failures on one card', () => {
    const rules = new AlertRules(cfg);
    const a = run(Array.from({ length: 6 }, (_, i) => entry({ t: i * 1000, result: 'error', readerId: `reader-${i}` })), rules);
    expect(a.map((x) => x.rule)).toEqual(['failed-auth-card']);
    expect(a[0]!.subject).toBe('card:04A1B2C3D4E5F6');
    // spread over more than the window: quiet
    expect(run(Array.from({ length: 6 }, (_, i) => entry({ t: i * 10 * 60_000, result: 'error' })))).toEqual([]);
  });

  it('failed-auth-reader: repeated failures at one reader across cards', () => {
    const es = Array.from({ length: 25 }, (_, i) => entry({ t: i * 1000, result: 'denied', cardUid: '04A1B2C3D4' + String(1000 + i) }));
    const a = run(es);
    expect(a.map((x) => x.rule)).toEqual(['failed-auth-reader']);
    expect(a[0]!.subject).toBe('reader:reader-1');
  });

  it('mass-key-release: a burst far above the baseline (and not a steady high rate)', () => {
    const rules = new AlertRules(cfg);
    const steady: AuditEntry[] = [];
    for (let w = 0; w < 10; w++) for (let k = 0; k < 10; k++) steady.push(entry({ t: w * 60_000 + k * 5000, operation: 'key.release' }));
    expect(run(steady, rules)).toEqual([]);
    const burst = Array.from({ length: 60 }, (_, k) => entry({ t: 10 * 60_000 + k * 500, operation: 'key.release' }));
    const a = run(burst, rules);
    expect(a.map((x) => x.rule)).toEqual(['mass-key-release']);
    expect(a[0]!.details.baseline).toBeGreaterThan(5);
    // an operator (no reader) is a subject too
    const op = Array.from({ length: 40 }, (_, k) => entry({ t: k * 100, readerId: null, actor: 'op-7', operation: 'custody.seal' }));
    expect(run(op).map((x) => x.subject)).toEqual(['actor:op-7']);
    // a station's seal batches count every key they released: 8 batches x 5 keys > 30, 8 single seals are not
    const seals = Array.from({ length: 5 }, (_, n) => ({ tenant: 'tenant-a', aid: 'F00001', uid: '04A1B2C3D4E5F6', keyNo: n, version: 1 }));
    const batches = Array.from({ length: 8 }, (_, k) => entry({ t: k * 100, readerId: 'station-3', operation: 'custody.seal_batch', details: { seals } }));
    expect(run(batches).map((x) => [x.rule, x.subject])).toEqual([['mass-key-release', 'reader:station-3']]);
    expect(run(Array.from({ length: 8 }, (_, k) => entry({ t: k * 100, readerId: 'station-4', operation: 'custody.seal' })))).toEqual([]);
  });

  it('unexpected-address: configured allow-list and learned addresses', () => {
    const rules = new AlertRules(alertConfig({ address: { expected: { 'reader-9': ['192.168.1.'] }, learn: true } }));
    expect(run([entry({ t: 0, readerId: 'reader-9', details: { address: '192.168.1.20' } })], rules)).toEqual([]);
    expect(run([entry({ t: 1, readerId: 'reader-9', details: { address: '203.0.113.9' } })], rules).map((x) => x.rule)).toEqual(['unexpected-address']);
    expect(run([entry({ t: 2, readerId: 'reader-2', details: { address: '10.0.0.2' } })], rules)).toEqual([]);
    expect(run([entry({ t: 3, readerId: 'reader-2', details: { address: '10.0.0.2' } })], rules)).toEqual([]);
    const a = run([entry({ t: 4, readerId: 'reader-2', details: { address: '198.51.100.1' } })], rules);
    expect(a.map((x) => x.rule)).toEqual(['unexpected-address']);
  });

  it('baton-gap: skipped or repeated sequence numbers', () => {
    const rules = new AlertRules(cfg);
    const b = (t: number, f: number, to: number) => entry({ t, operation: 'reader.baton', details: { seqFrom: f, seqTo: to } });
    expect(run([b(0, 0, 9), b(1000, 10, 19)], rules)).toEqual([]);
    expect(run([b(2000, 25, 30)], rules).map((x) => x.details)).toEqual([{ expected: 20, got: 25 }]);
    const r2 = new AlertRules(cfg);
    expect(run([b(0, 0, 9), b(1000, 5, 12)], r2).map((x) => x.rule)).toEqual(['baton-gap']);
  });

  it('revoked-reader: attempts refused because the reader is revoked', () => {
    const a = run([entry({ t: 0, operation: 'key.request', result: 'denied', details: { code: 'ERR_READER_REVOKED' } })]);
    expect(a.map((x) => [x.rule, x.severity])).toEqual([['revoked-reader', 'critical']]);
    expect(run([entry({ t: 0, operation: 'key.request', result: 'denied', details: { code: 'ERR_FORBIDDEN' } })])).toEqual([]);
  });

  it('cooldown: one alert per (rule, subject) per cooldown', () => {
    const es = Array.from({ length: 30 }, (_, i) => entry({ t: i * 1000, result: 'error' }));
    expect(run(es).filter((x) => x.rule === 'failed-auth-card')).toHaveLength(1);
  });
});

describe('alert engine with the audit log (SQLite) and a webhook', () => {
  let backend: Backend;
  let server: ReturnType<typeof createServer>;
  const received: unknown[] = [];
  let failFirst = 2;
  let url = '';
  beforeAll(async () => {
    backend = sqliteBackend();
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (failFirst-- > 0) {
          res.statusCode = 503;
          res.end();
          return;
        }
        received.push(JSON.parse(body));
        res.statusCode = 204;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await backend.cleanup();
  });

  it('raises, stores, lists and delivers (retried) alerts from appended entries', async () => {
    const h = await backend.open();
    const webhook = new WebhookNotifier({ url, backoffMs: 10, attempts: 5 });
    const store = new SqlAuditStore(h);
    const engine = new AlertEngine({ store, config: cfg, webhook });
    const fx = await openLog(h, { store, onCommitted: (es) => engine.observe(es) });
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        fx.log.record({ time: T0 + i, readerId: 'reader-1', cardUid: '04A1B2C3D4E5F6', operation: 'card.authenticate', result: 'error' }),
      ),
    );
    await engine.flush();
    await webhook.idle();
    const list = await engine.list();
    expect(list.map((a) => a.rule)).toEqual(['failed-auth-card']);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ type: 'desfire-cms.alert', alert: { rule: 'failed-auth-card' } });
    const row = await h.db.selectFrom('audit_alerts').selectAll().executeTakeFirstOrThrow();
    expect(row).toMatchObject({ delivery: 1, delivery_attempts: 3 });
    await fx.log.close();
  });

  it('a dead webhook never blocks appends; the alert stays stored as undelivered', async () => {
    const h = await backend.open();
    const webhook = new WebhookNotifier({ url: 'http://127.0.0.1:1/none', backoffMs: 5, attempts: 2 });
    const store = new SqlAuditStore(h);
    const engine = new AlertEngine({ store, config: cfg, webhook });
    const fx = await openLog(h, { store, onCommitted: (es) => engine.observe(es) });
    const e = await fx.log.record({ time: T0 + 999_999, readerId: 'reader-5', operation: 'key.request', result: 'denied', details: { code: 'ERR_READER_REVOKED' } });
    expect(e.index).toBeGreaterThan(0);
    await engine.flush();
    await webhook.idle();
    const rows = await h.db.selectFrom('audit_alerts').selectAll().where('rule', '=', 'revoked-reader').execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ delivery: 2, delivery_attempts: 2 });
    await fx.log.close();
  });
});

// Fail closed without falling over: a failing or full audit store makes appends (and so key
// releases, through custody's AuditSink) fail, health says degraded, and both recover when the
// store does. Bad entries (key material) are refused and change nothing. Bounded queue.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { AuditEvent } from '../../src/custody/audit.js';
import type { DatabaseHandle } from '../../src/cms/storage/index.js';
import { SqlAuditStore, type AuditStore } from '../../src/cms/audit/store.js';
import { verifyDatabase } from '../../src/cms/audit/db-verify.js';
import { fromCustodyEvent } from '../../src/cms/audit/custody-event.js';
import { type AuditInput, normalizeInput } from '../../src/cms/audit/entry.js';
import { openDatabase } from '../../src/cms/storage/index.js';
import { testSchema } from '../helpers/pg-schema.js';
import { PG_URL } from '../helpers/system.js';
import { type Backend, postgresAvailable, sqliteBackend } from './storage-backends.js';
import { ORIGIN, openLog as openWith, sampleEntry } from './audit-fixture.js';
import { Ed25519CheckpointSigner } from '../../src/cms/audit/signer.js';

// one checkpoint key for the whole database (as in a deployment)
const signer = Ed25519CheckpointSigner.generate(ORIGIN);
const openLog = (h: DatabaseHandle, extra: Parameters<typeof openWith>[1] = {}) => openWith(h, extra, signer);

/** A store whose appends fail while `failing` is set, or wait while `gate` is pending. */
class FlakyStore implements AuditStore {
  failing = false;
  gate?: Promise<void>;
  constructor(private readonly inner: SqlAuditStore) {}
  calls = 0;
  async append(...a: Parameters<AuditStore['append']>) {
    this.calls++;
    if (this.gate) await this.gate;
    if (this.failing) throw new Error('injected: disk on fire');
    return this.inner.append(...a);
  }
  size = () => this.inner.size();
  leaves = (f: number, t: number) => this.inner.leaves(f, t);
  entries = (q: Parameters<AuditStore['entries']>[0]) => this.inner.entries(q);
  saveCheckpoint = (c: Parameters<AuditStore['saveCheckpoint']>[0]) => this.inner.saveCheckpoint(c);
  checkpoints = () => this.inner.checkpoints();
  latestCheckpoint = () => this.inner.latestCheckpoint();
  checkpointAt = (n: number) => this.inner.checkpointAt(n);
  pruneBodies = (b: number, o: number) => this.inner.pruneBodies(b, o);
  prunedBefore = () => this.inner.prunedBefore();
  saveAlert = (a: Parameters<AuditStore['saveAlert']>[0]) => this.inner.saveAlert(a);
  alerts = (q: Parameters<AuditStore['alerts']>[0]) => this.inner.alerts(q);
  markAlert = (i: string, d: number, n: number) => this.inner.markAlert(i, d, n);
}

const custodyEvent: AuditEvent = {
  time: '2026-11-27T03:00:00.000Z',
  source: 'custody',
  backend: 'embedded',
  op: 'seal',
  outcome: 'ok',
  actor: 'cms',
  purpose: 'key delivery',
  correlationId: 'c-1',
  key: 'tenant-a/master',
  keyVersion: 3,
  binding: { tenant: 'tenant-a', aid: 'F00001', uid: '04A1B2C3D4E5F6', keyNo: 1, version: 2 },
  recipient: 'reader-7',
  mode: 'ecdh-p256',
};

describe('audit fail-closed', () => {
  let backend: Backend;
  let h: DatabaseHandle;
  beforeAll(async () => {
    backend = sqliteBackend();
    h = await backend.open();
  });
  afterAll(async () => {
    await backend.cleanup();
  });

  it('an injected store failure rejects appends (and custody events), health degrades, then recovers', async () => {
    const flaky = new FlakyStore(new SqlAuditStore(h));
    const fx = await openLog(h, { store: flaky });
    await fx.log.append(custodyEvent);
    const before = fx.log.size;
    flaky.failing = true;
    await expect(fx.log.record(sampleEntry(1))).rejects.toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
    await expect(fx.log.append(custodyEvent)).rejects.toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
    const hd = fx.log.health();
    expect(hd.status).toBe('degraded');
    expect(hd.reason).toMatch(/disk on fire/);
    expect(fx.log.size).toBe(before);
    flaky.failing = false;
    const e = await fx.log.record(sampleEntry(2));
    expect(e.index).toBe(before);
    expect(fx.log.health().status).toBe('ok');
    await fx.log.checkpoint();
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
    await fx.log.close();
  });

  it('a full SQLite database (max_page_count reached) fails closed and recovers when space returns', async () => {
    const fx = await openLog(h);
    await fx.log.record(sampleEntry(3));
    const pages = Number((await sql<{ page_count: number }>`pragma page_count`.execute(h.db)).rows[0]!.page_count);
    await sql.raw(`pragma max_page_count = ${pages}`).execute(h.db);
    const size = fx.log.size;
    const results = await Promise.allSettled(Array.from({ length: 300 }, (_, i) => fx.log.record({ ...sampleEntry(i), details: { pad: 'x'.repeat(2000) } })));
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected.length).toBeGreaterThan(0);
    expect((rejected[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
    expect(fx.log.health().status).toBe('degraded');
    // whatever was acknowledged is in the tree, with no gap
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    expect(fx.log.size).toBe(size + ok);
    await sql.raw(`pragma max_page_count = 1073741823`).execute(h.db);
    await fx.log.record(sampleEntry(4));
    expect(fx.log.health().status).toBe('ok');
    await fx.log.checkpoint();
    const r = await verifyDatabase(h, fx.key);
    expect(r.failure).toBeUndefined();
    await fx.log.close();
  });

  it('bounded queue: beyond maxQueue appends are refused at once (backpressure)', async () => {
    const flaky = new FlakyStore(new SqlAuditStore(h));
    const fx = await openLog(h, { store: flaky, maxQueue: 5 });
    let open!: () => void;
    flaky.gate = new Promise<void>((r) => (open = r));
    const first = fx.log.record(sampleEntry(10)); // taken by the writer, waiting at the gate
    while (flaky.calls === 0) await new Promise((r) => setImmediate(r));
    const queued = Array.from({ length: 5 }, (_, i) => fx.log.record(sampleEntry(11 + i)));
    await expect(fx.log.record(sampleEntry(99))).rejects.toMatchObject({ code: 'ERR_AUDIT_BACKPRESSURE' });
    expect(fx.log.health()).toMatchObject({ status: 'degraded', queued: 5 });
    flaky.gate = undefined;
    open();
    const done = await Promise.all([first, ...queued]);
    expect(new Set(done.map((e) => e.index)).size).toBe(6);
    expect(fx.log.health().status).toBe('ok');
    await fx.log.close();
    await expect(fx.log.record(sampleEntry(100))).rejects.toMatchObject({ code: 'ERR_AUDIT_CLOSED' });
  });

  it('entries that carry key material are refused and change nothing', async () => {
    const fx = await openLog(h);
    const size = fx.log.size;
    const bad: Partial<AuditInput>[] = [
      { details: { sessionKey: 'abc' } },
      { details: { nested: { plaintext: 'x' } } },
      { details: { value: '00112233445566778899AABBCCDDEEFF' } }, // 16 bytes of hex
      { details: { value: 'ABEiM0RVZneImaq7zN3u/w==' } }, // 16 bytes of base64
      { details: { value: 'ABEiM0RVZneImaq7zN3u_w' } }, // 16 bytes of base64url
      { details: { blob: new Uint8Array(16) as never } },
      { actor: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' },
    ];
    for (const b of bad) {
      await expect(fx.log.record({ operation: 'key.release', result: 'ok', ...b })).rejects.toMatchObject({ code: 'ERR_AUDIT_KEY_MATERIAL' });
    }
    // identifiers that merely have a key's length are fine
    for (const code of ['ERR_READER_NOT_ALLOWED', 'ERR_CUSTODY_UNAVAILABLE_', 'tok_AbCdEfGhIjKl']) {
      await fx.log.record({ operation: 'x', result: 'error', details: { code } });
    }
    const kept = fx.log.size;
    await expect(fx.log.record({ operation: '', result: 'ok' })).rejects.toMatchObject({ code: 'ERR_AUDIT_INPUT' });
    await expect(fx.log.record({ operation: 'x', result: 'ok', aid: 'F0' })).rejects.toMatchObject({ code: 'ERR_AUDIT_INPUT' });
    await expect(fx.log.record({ operation: 'x', result: 'ok', keyNo: 300 })).rejects.toMatchObject({ code: 'ERR_AUDIT_INPUT' });
    expect(kept).toBe(size + 3);
    expect(fx.log.size).toBe(kept);
    expect(fx.log.health().status).toBe('ok');
    await fx.log.close();
  });

  it("custody events map to entries with identifiers only (the writer never receives key bytes)", () => {
    const input = fromCustodyEvent(custodyEvent);
    expect(input).toMatchObject({ operation: 'custody.seal', result: 'ok', readerId: 'reader-7', tenant: 'tenant-a', aid: 'F00001', keyNo: 1, keyVersion: 2 });
    expect(() => normalizeInput(input, 0)).not.toThrow();
    const json = JSON.stringify(input);
    expect(json).not.toMatch(/[0-9a-f]{32}/i);
  });
});

describe.skipIf(!(await postgresAvailable()))('audit fail-closed on PostgreSQL', () => {
  const schema = testSchema('afc');
  const app = `desfire-test-${schema}`;
  let h: DatabaseHandle;
  let admin: DatabaseHandle;
  beforeAll(async () => {
    h = await openDatabase({ kind: 'postgres', url: PG_URL, schema, poolSize: 4, applicationName: app });
    admin = await openDatabase({ kind: 'postgres', url: PG_URL, poolSize: 1 }, { migrate: false });
  });
  afterAll(async () => {
    await h?.close(); // the schema goes in the global teardown (test/helpers/pg-schema.ts)
    await admin?.close();
  });

  it('killed connections: every append either is durable or fails closed; the log recovers and verifies', async () => {
    const fx = await openLog(h);
    await fx.log.record(sampleEntry(0));
    const kill = () => sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${app}`.execute(admin.db);
    const settled = Promise.allSettled(Array.from({ length: 200 }, (_, i) => fx.log.record(sampleEntry(i + 1))));
    await kill();
    const results = await settled;
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
    const acknowledged = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<{ index: number }>).value.index);
    // the pool discards the dead connections (an append may still hit one and fail closed)
    // and reconnects: appends work again
    let after: { index: number } | undefined;
    for (let attempt = 0; attempt < 10 && !after; attempt++) {
      after = await fx.log.record(sampleEntry(999)).catch((e: { code?: string }) => {
        expect(e.code).toBe('ERR_AUDIT_UNAVAILABLE');
        return undefined;
      });
    }
    if (!after) throw new Error('the audit log did not recover after the connections were killed');
    expect(fx.log.health().status).toBe('ok');
    await fx.log.checkpoint();
    const rows = await h.db.selectFrom('audit_entries').select('idx').execute();
    const stored = new Set(rows.map((r) => r.idx));
    for (const i of [...acknowledged, after.index]) expect(stored.has(i)).toBe(true); // acknowledged ⇒ durable
    expect((await verifyDatabase(h, fx.key)).failure).toBeUndefined();
    await fx.log.close();
  }, 60_000);

  it('a broken table (renamed away) fails appends closed; renaming it back recovers', async () => {
    const fx = await openLog(h);
    await sql`alter table audit_leaves rename to audit_leaves_gone`.execute(h.db);
    try {
      await expect(fx.log.record(sampleEntry(5))).rejects.toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
      expect(fx.log.health()).toMatchObject({ status: 'degraded' });
    } finally {
      await sql`alter table audit_leaves_gone rename to audit_leaves`.execute(h.db);
    }
    await fx.log.record(sampleEntry(6));
    expect(fx.log.health().status).toBe('ok');
    await fx.log.checkpoint();
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
    await fx.log.close();
  });
});

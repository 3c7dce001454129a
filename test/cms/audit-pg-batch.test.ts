// The PostgreSQL audit batch with a guessed start (src/cms/audit/store.ts writeBatchPg, migration
// 0083): after a store's first batch, the next index is not read in a round trip of its own — the
// batch goes in one call that takes the writer lock, reads the next index itself and inserts only
// if it equals the guess, and commits. Pinned here: one statement per batch in one process (four
// for the first, which goes the locked way); a guess made wrong by another process, by a table
// shrunk under the store, or for a large batch never leaves a gap or a duplicate (indexes
// consecutive from the stored end, bodies and leaves in step, the whole log verifies); the call
// waits for the chain's writer lock held by any other writer (`withWriterLock(…, 'audit-append')`).
import { afterAll, describe, expect, it, vi } from 'vitest';
import { SqlAuditStore } from '../../src/cms/audit/store.js';
import { verifyDatabase } from '../../src/cms/audit/db-verify.js';
import type { AuditEntry } from '../../src/cms/audit/entry.js';
import type { DatabaseHandle } from '../../src/cms/storage/index.js';
import { openLog, sampleEntry } from './audit-fixture.js';
import { type Backend, postgresAvailable, postgresBackend } from './storage-backends.js';

const pgOk = await postgresAvailable();
const leafOf = (e: AuditEntry) => new Uint8Array(32).fill(e.index % 251);
const entry = (i: number) => ({ ...sampleEntry(i), details: {} }) as unknown as Omit<AuditEntry, 'index'>;

async function indexes(h: DatabaseHandle): Promise<{ leaves: number[]; bodies: number[] }> {
  const leaves = await h.db.selectFrom('audit_leaves').select('idx').orderBy('idx').execute();
  const bodies = await h.db.selectFrom('audit_entries').select('idx').orderBy('idx').execute();
  return { leaves: leaves.map((r) => Number(r.idx)), bodies: bodies.map((r) => Number(r.idx)) };
}
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i);

describe.skipIf(!pgOk)('audit batches on PostgreSQL: the guessed start', () => {
  // a schema per test: every test counts indexes from 0
  const backends: Backend[] = [];
  const fresh = (): Backend => {
    const b = postgresBackend();
    backends.push(b);
    return b;
  };

  afterAll(async () => {
    for (const b of backends) await b.cleanup();
  });

  it('one process: four statements for the first batch (the locked way), one for each next one', async () => {
    const h = await fresh().open();
    const s = new SqlAuditStore(h);
    const { Client } = (await import('pg')).default;
    const spy = vi.spyOn(Client.prototype, 'query');
    try {
      spy.mockClear();
      expect((await s.append([entry(0)], leafOf)).start).toBe(0);
      expect(spy.mock.calls.length).toBe(4);
      for (let k = 1; k <= 5; k++) {
        spy.mockClear();
        expect((await s.append([entry(k), entry(k + 100)], leafOf)).start).toBe(2 * k - 1);
        expect(spy.mock.calls.length).toBe(1);
      }
    } finally {
      spy.mockRestore();
    }
    expect(await indexes(h)).toEqual({ leaves: upTo(11), bodies: upTo(11) });
  }, 60_000);

  it('two processes alternating: every guess is wrong, nothing is lost or duplicated, the log verifies', async () => {
    const backend = fresh();
    const a = await backend.open();
    const b = await backend.open();
    const { log: la, key } = await openLog(a);
    const { log: lb } = await openLog(b);
    const got: number[] = [];
    for (let k = 0; k < 12; k++) {
      const log = k % 2 ? lb : la;
      const e = k % 3 === 0 ? await log.recordAll([sampleEntry(3 * k), sampleEntry(3 * k + 1), sampleEntry(3 * k + 2)]) : [await log.record(sampleEntry(3 * k))];
      got.push(...e.map((x) => x.index));
    }
    expect(got).toEqual(upTo(got.length));
    expect(await indexes(a)).toEqual({ leaves: upTo(got.length), bodies: upTo(got.length) });
    await la.sync();
    await la.checkpoint();
    const report = await verifyDatabase(a, key);
    expect(report.ok).toBe(true);
    expect(report.entries).toBe(got.length);
    await la.close();
    await lb.close();
  }, 60_000);

  it('a table shrunk under the store (a restore): the next batch goes at the stored end, no gap', async () => {
    const h = await fresh().open();
    const s = new SqlAuditStore(h);
    for (let k = 0; k < 4; k++) await s.append([entry(k)], leafOf);
    await h.db.deleteFrom('audit_leaves').where('idx', '>=', 2).execute();
    await h.db.deleteFrom('audit_entries').where('idx', '>=', 2).execute();
    expect((await s.append([entry(9)], leafOf)).start).toBe(2); // the guess (4) is refused inside the statement
    expect((await s.append([entry(10)], leafOf)).start).toBe(3);
    expect(await indexes(h)).toEqual({ leaves: upTo(4), bodies: upTo(4) });
  }, 60_000);

  it('large batches (over a thousand rows), guessed right and wrong, stay consecutive', async () => {
    const backend = fresh();
    const a = await backend.open();
    const b = await backend.open();
    const sa = new SqlAuditStore(a);
    const sb = new SqlAuditStore(b);
    const many = (base: number, n: number) => Array.from({ length: n }, (_, i) => entry(base + i));
    expect((await sa.append(many(0, 3), leafOf)).start).toBe(0);
    const right = await sa.append(many(10, 1_203), leafOf); // guessed right: one call
    expect(right.start).toBe(3);
    expect(right.leaves.every((l, i) => l[0] === (3 + i) % 251)).toBe(true);
    expect((await sb.append(many(5000, 2), leafOf)).start).toBe(1_206);
    const wrong = await sa.append(many(20_000, 1_001), leafOf); // guessed 1,206: refused, stored from 1,208
    expect(wrong.start).toBe(1_208);
    expect(wrong.leaves.every((l, i) => l[0] === (1_208 + i) % 251)).toBe(true);
    expect(await indexes(a)).toEqual({ leaves: upTo(2_209), bodies: upTo(2_209) });
  }, 60_000);

  it('the call waits for the writer lock held by another writer of the chain, then appends after it', async () => {
    const backend = fresh();
    const a = await backend.open();
    const b = await backend.open();
    const sa = new SqlAuditStore(a);
    expect((await sa.append([entry(0)], leafOf)).start).toBe(0);
    const { withWriterLock } = await import('../../src/cms/storage/tx.js');
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const lockTaken = new Promise<void>((r) => (locked = r));
    // another process's writer holds 'audit-append' and appends index 1 by hand before it commits
    const other = withWriterLock(b.db, 'postgres', 'audit-append', async (tx) => {
      locked();
      await held;
      const last = await tx.selectFrom('audit_entries').selectAll().where('idx', '=', 0).executeTakeFirstOrThrow();
      await tx.insertInto('audit_entries').values({ ...last, idx: 1 }).execute();
      await tx.insertInto('audit_leaves').values({ idx: 1, leaf_hash: Buffer.from(leafOf({ index: 1 } as AuditEntry)) }).execute();
    });
    await lockTaken;
    let settled = false;
    const mine = sa.append([entry(7)], leafOf).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(settled).toBe(false); // waiting for the lock, not appending at its guess (1)
    release();
    await other;
    expect((await mine).start).toBe(2);
    expect(await indexes(a)).toEqual({ leaves: upTo(3), bodies: upTo(3) });
  }, 60_000);
});

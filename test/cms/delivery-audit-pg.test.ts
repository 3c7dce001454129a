// The PostgreSQL audit batch (src/cms/audit/store.ts appendPostgres): one call per batch
// (migration 0083) that takes the writer lock, reads the max index after it, inserts and commits in
// its own transaction. Pinned here: two processes (two pools) appending many small batches at once
// get disjoint, consecutive index ranges (the lock serialises them and max is read after it); a
// batch that fails (before the call, or inside it) writes nothing and leaves no pooled connection
// inside a transaction.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlAuditStore } from '../../src/cms/audit/store.js';
import type { AuditEntry } from '../../src/cms/audit/entry.js';
import type { DatabaseHandle } from '../../src/cms/storage/index.js';
import { sampleEntry } from './audit-fixture.js';
import { type Backend, postgresAvailable, postgresBackend } from './storage-backends.js';

const pgOk = await postgresAvailable();
const leafOf = (e: AuditEntry) => new Uint8Array(32).fill(e.index % 251);
const entry = (i: number) => ({ ...sampleEntry(i), details: {} }) as unknown as Omit<AuditEntry, 'index'>;

describe.skipIf(!pgOk)('audit batches on PostgreSQL (delivery path)', () => {
  let backend: Backend;
  let a: DatabaseHandle;
  let b: DatabaseHandle;

  beforeAll(async () => {
    backend = postgresBackend();
    a = await backend.open();
    b = await backend.open();
  }, 60_000);

  afterAll(async () => {
    await backend?.cleanup();
  });

  it('two processes appending concurrently get disjoint consecutive ranges', async () => {
    const sa = new SqlAuditStore(a);
    const sb = new SqlAuditStore(b);
    const batches = Array.from({ length: 40 }, (_, k) => ({ store: k % 2 ? sb : sa, n: 1 + (k % 3) }));
    const got = await Promise.all(batches.map(({ store, n }, k) => store.append(Array.from({ length: n }, (_, i) => entry(k * 10 + i)), leafOf)));
    const ranges = got.map((g, k) => [g.start, g.start + batches[k]!.n] as const).sort((x, y) => x[0] - y[0]);
    let next = 0;
    for (const [s, e] of ranges) {
      expect(s).toBe(next);
      next = e;
    }
    const rows = await a.db.selectFrom('audit_leaves').select('idx').orderBy('idx').execute();
    expect(rows.map((r) => Number(r.idx))).toEqual(Array.from({ length: next }, (_, i) => i));
    expect(Number((await a.db.selectFrom('audit_entries').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n)).toBe(next);
  }, 60_000);

  it('a batch failing inside the transaction writes nothing and leaves the pool usable', async () => {
    const s = new SqlAuditStore(a);
    const before = Number((await a.db.selectFrom('audit_leaves').select((eb) => eb.fn.max('idx').as('m')).executeTakeFirstOrThrow()).m);
    // fails while the batch is hashed, before the call (more than once)
    for (let i = 0; i < 10; i++) {
      await expect(
        s.append([entry(1000 + i)], () => {
          throw new Error('leaf failure');
        }),
      ).rejects.toThrow('leaf failure');
    }
    // fails at the insert itself (a body for the next index already exists, written outside the chain)
    const last = await a.db.selectFrom('audit_entries').selectAll().where('idx', '=', before).executeTakeFirstOrThrow();
    await a.db.insertInto('audit_entries').values({ ...last, idx: before + 1 }).execute();
    await expect(s.append([entry(2000)], leafOf)).rejects.toThrow();
    expect(Number((await a.db.selectFrom('audit_leaves').select((eb) => eb.fn.max('idx').as('m')).executeTakeFirstOrThrow()).m)).toBe(before);
    await a.db.deleteFrom('audit_entries').where('idx', '=', before + 1).execute();
    // no connection was left in a transaction: appends and plain reads work, and commit for real
    const ok = await Promise.all(Array.from({ length: 6 }, (_, i) => s.append([entry(3000 + i)], leafOf)));
    expect(ok.map((r) => r.start).sort((x, y) => x - y)).toEqual(Array.from({ length: 6 }, (_, i) => before + 1 + i));
    const other = await backend.open();
    expect(Number((await other.db.selectFrom('audit_leaves').select((eb) => eb.fn.max('idx').as('m')).executeTakeFirstOrThrow()).m)).toBe(before + 6);
  }, 60_000);
});

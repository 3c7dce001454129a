// Group commit of station-job writes (src/cms/jobs/commit.ts): concurrent writes share one SQLite
// transaction, each in its own savepoint; a write that throws is rolled back alone; nobody is
// answered before COMMIT; a failed COMMIT rejects the whole batch and leaves nothing behind.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/cms/jobs/commit.js';
import { CoalescedSync } from '../../src/cms/storage/wal-sync.js';
import { type DatabaseHandle, openDatabase } from '../../src/cms/storage/index.js';

const row = (id: string, uid = '04A1B2C3D4E5F6') => ({ id, kind: 'install', reader_id: 'r1', uid, aid: 'A1C001', state: 'created', jti: `jti-${id}`, plan: '{}', outcome: null, created_at: 1, expires_at: 2, updated_at: 1 });

describe('GroupCommit on SQLite', () => {
  let h: DatabaseHandle;
  /** A second connection to the same file: it sees only what has been COMMITTED. */
  let other: BetterSqlite3.Database;
  beforeAll(async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'jobs-commit-')), 'cms.sqlite');
    h = await openDatabase({ kind: 'sqlite', file });
    const Sqlite = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
    other = new Sqlite(file, { readonly: true });
  });
  afterAll(async () => {
    other.close();
    await h.close();
  });
  const committed = () => (other.prepare('select id from station_jobs order by id').all() as { id: string }[]).map((r) => r.id);
  const ids = async () => (await h.db.selectFrom('station_jobs').select('id').orderBy('id').execute()).map((r) => r.id);

  it.each([
    ['through Kysely', false],
    ['native savepoints, off-loop fsync', true],
  ])('concurrent writes commit in one transaction (nothing visible outside before COMMIT); the one that throws is rolled back alone and gets its own error (%s)', async (_, native) => {
    const tag = native ? 'n' : 'k';
    const seenOutside: string[][] = [];
    const gc = new GroupCommit(h.db, native ? { native: h.sqlite! } : {});
    const results = await Promise.allSettled([
      gc.run(async (tx) => {
        await tx.insertInto('station_jobs').values(row(`a1${tag}`)).execute();
        return `a1${tag}`;
      }),
      gc.run(async (tx) => {
        await tx.insertInto('station_jobs').values(row(`b1${tag}`)).execute();
        // written, then refused: its row must not survive
        throw Object.assign(new Error('refused'), { code: 'ERR_TEST' });
      }),
      gc.run(async (tx) => {
        await tx.insertInto('station_jobs').values(row(`c1${tag}`)).execute();
        seenOutside.push(committed());
        return `c1${tag}`;
      }),
    ]);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as { code: string }).code))).toEqual([`a1${tag}`, 'ERR_TEST', `c1${tag}`]);
    expect(await ids()).toEqual(expect.arrayContaining([`a1${tag}`, `c1${tag}`]));
    expect(await ids()).not.toContain(`b1${tag}`);
    expect(committed()).toEqual(await ids());
    // while the third write ran, the first one was not committed yet: one transaction for all
    expect(seenOutside[0]).not.toContain(`a1${tag}`);
  });

  it('a write alone (no savepoint) that throws gets its own error and leaves nothing', async () => {
    const gc = new GroupCommit(h.db, { native: h.sqlite! });
    const e = await gc
      .run(async (tx) => {
        await tx.insertInto('station_jobs').values(row('s1')).execute();
        throw Object.assign(new Error('refused'), { code: 'ERR_TEST_ALONE' });
      })
      .catch((x: unknown) => x);
    expect((e as { code: string }).code).toBe('ERR_TEST_ALONE');
    expect(await ids()).not.toContain('s1');
    expect(committed()).not.toContain('s1');
  });

  it('a failed COMMIT rejects every write of the batch and leaves none of them', async () => {
    const gc = new GroupCommit(h.db);
    // a deferred foreign-key violation fails at COMMIT, not at the statement
    await sql`create table if not exists gc_parent (id text primary key)`.execute(h.db);
    await sql`create table if not exists gc_child (id text primary key, parent text references gc_parent(id) deferrable initially deferred)`.execute(h.db);
    const r = await Promise.allSettled([
      gc.run(async (tx) => {
        await tx.insertInto('station_jobs').values(row('d1')).execute();
      }),
      gc.run(async (tx) => {
        await sql`insert into gc_child (id, parent) values ('x', 'missing')`.execute(tx);
      }),
    ]);
    expect(r.map((x) => x.status)).toEqual(['rejected', 'rejected']);
    expect(await ids()).not.toContain('d1');
    // and the next batch works
    await gc.run(async (tx) => {
      await tx.insertInto('station_jobs').values(row('e1')).execute();
    });
    expect(await ids()).toContain('e1');
  });

  it('writes queued while a batch commits go into the next one, in order', async () => {
    const gc = new GroupCommit(h.db, { maxBatch: 2 });
    const order: string[] = [];
    await Promise.all(
      ['f1', 'f2', 'f3', 'f4', 'f5'].map((id) =>
        gc.run(async (tx) => {
          order.push(id);
          await tx.insertInto('station_jobs').values(row(id)).execute();
        }),
      ),
    );
    expect(order).toEqual(['f1', 'f2', 'f3', 'f4', 'f5']);
    expect(await ids()).toEqual(expect.arrayContaining(['f1', 'f2', 'f3', 'f4', 'f5']));
  });

  it('off the event loop: COMMIT without the inline fsync, then the WAL fsynced before anyone is answered; synchronous restored', async () => {
    const events: string[] = [];
    let release!: () => void;
    const gc = new GroupCommit(h.db, {
      native: h.sqlite!,
      walSync: async (file) => {
        expect(file).toBe(`${h.sqlite!.name}-wal`);
        // the batch is committed (visible to another connection) when its fsync starts
        events.push(`fsync start, committed: ${committed().includes('g1')}`);
        await new Promise<void>((r) => (release = r));
        events.push('fsync done');
      },
    });
    const p = gc.run(async (tx) => {
      await tx.insertInto('station_jobs').values(row('g1')).execute();
      // inside the batch's transaction the connection runs with synchronous=NORMAL (1)
      events.push(`sync in tx: ${(await sql<{ synchronous: number }>`pragma synchronous`.execute(tx)).rows[0]!.synchronous}`);
    });
    void p.then(() => events.push('answered'));
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toEqual(['sync in tx: 1', 'fsync start, committed: true']);
    release();
    await p;
    expect(events).toEqual(['sync in tx: 1', 'fsync start, committed: true', 'fsync done', 'answered']);
    expect(Number(h.sqlite!.pragma('synchronous', { simple: true }))).toBe(2);
  });

  it('deferSync: a batch of deferred writes commits without the WAL sync; durable() syncs once for them, and not when a later batch\'s sync already covered them', async () => {
    const syncs: number[] = [];
    let release: (() => void) | undefined;
    const gc = new GroupCommit(h.db, {
      native: h.sqlite!,
      walSync: async () => {
        syncs.push(syncs.length);
        await new Promise<void>((r) => (release = r));
      },
    });
    await gc.durable(); // nothing deferred: no sync
    await gc.run(async (tx) => tx.insertInto('station_jobs').values(row('d1')).execute(), { deferSync: true });
    await gc.run(async (tx) => tx.insertInto('station_jobs').values(row('d2')).execute(), { deferSync: true });
    expect(committed()).toEqual(expect.arrayContaining(['d1', 'd2'])); // committed ...
    expect(syncs).toEqual([]); // ... without a sync
    expect(Number(h.sqlite!.pragma('synchronous', { simple: true }))).toBe(2);
    let durable = false;
    const p = gc.durable().then(() => (durable = true));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(syncs).toEqual([0]);
    expect(durable).toBe(false); // not before the sync completed
    release!();
    await p;
    await gc.durable(); // covered: no second sync
    expect(syncs).toEqual([0]);
    // a deferred write, then a durable one: the durable batch's sync covers both
    await gc.run(async (tx) => tx.insertInto('station_jobs').values(row('d3')).execute(), { deferSync: true });
    const q = gc.run(async (tx) => tx.insertInto('station_jobs').values(row('d4')).execute());
    for (let i = 0; i < 50 && syncs.length < 2; i++) await new Promise((r) => setImmediate(r));
    expect(syncs).toEqual([0, 1]);
    release!();
    await q;
    await gc.durable();
    expect(syncs).toEqual([0, 1]);
    // a batch holding a deferred write and a durable one is durable (synced before either is answered)
    const both = Promise.all([gc.run(async (tx) => tx.insertInto('station_jobs').values(row('d5')).execute(), { deferSync: true }), gc.run(async (tx) => tx.insertInto('station_jobs').values(row('d6')).execute())]);
    for (let i = 0; i < 50 && syncs.length < 3; i++) await new Promise((r) => setImmediate(r));
    expect(syncs).toEqual([0, 1, 2]);
    release!();
    await both;
  });

  it('a failed WAL fsync rejects the whole batch (fail closed: nobody is told it is durable)', async () => {
    const gc = new GroupCommit(h.db, { native: h.sqlite!, walSync: async () => Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' })) });
    const r = await Promise.allSettled([1, 2].map((i) => gc.run(async (tx) => tx.insertInto('station_jobs').values(row(`h${i}`)).execute())));
    expect(r.map((x) => (x.status === 'rejected' ? (x.reason as { code: string }).code : 'ok'))).toEqual(['EIO', 'EIO']);
  });
});

describe('CoalescedSync (the WAL syncs of the group commit)', () => {
  it('one fsync at a time; callers during one share the NEXT one (it may have started before their commit)', async () => {
    const started: number[] = [];
    const done: (() => void)[] = [];
    const w = new CoalescedSync(async () => {
      started.push(started.length);
      await new Promise<void>((r) => done.push(r));
    });
    const order: string[] = [];
    const a = w.sync().then(() => order.push('a'));
    const b = w.sync().then(() => order.push('b'));
    const c = w.sync().then(() => order.push('c'));
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0]);
    done[0]!();
    await a;
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['a']); // b and c wait for a second fsync
    expect(started).toEqual([0, 1]);
    done[1]!();
    await Promise.all([b, c]);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(started).toEqual([0, 1]);
  });
});

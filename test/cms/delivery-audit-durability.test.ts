// The audit guarantee of key delivery on SQLite: a release is durably audited before the sealed
// key is returned. The group-commit writer commits each batch without the inline fsync and then
// fsyncs the WAL off the event loop (src/cms/audit/store.ts); these tests pin the ordering (an
// append resolves only after the WAL fsync of its batch), fail-closed on a failed fsync, that the
// connection's synchronous setting is restored around the batch, and that nothing changes when
// the database is not configured for per-commit durability. A lone entry commits with the inline
// fsync after a quiet spell instead (inlineSyncEntries, default 1); the off-loop tests set it to 0.
import { mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/cms/audit/db-verify.js';
import { fsyncFile, SqlAuditStore, type SqlAuditStoreOptions, type WalSync } from '../../src/cms/audit/store.js';
import { openDatabase, type DatabaseHandle } from '../../src/cms/storage/index.js';
import { openLog, sampleEntry } from './audit-fixture.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function sqliteFile(synchronous?: 'FULL' | 'NORMAL'): Promise<{ h: DatabaseHandle; file: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'dcms-audit-dur-'));
  const file = path.join(dir, 'cms.sqlite');
  const h = await openDatabase({ kind: 'sqlite', file, ...(synchronous ? { synchronous } : {}) });
  cleanups.push(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { h, file };
}

/** A WAL sync that waits for the test to release it, recording what it was asked to sync. */
function gatedSync() {
  const calls: string[] = [];
  const waiting: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const sync: WalSync = (p) => {
    calls.push(p);
    return new Promise<void>((resolve, reject) => waiting.push({ resolve, reject }));
  };
  return { sync, calls, waiting };
}

/** A log over a fresh SQLite file whose WAL syncs wait for the test (by default every batch syncs off the loop). */
async function gatedLog(options: Omit<SqlAuditStoreOptions, 'walSync'> = { inlineSyncEntries: 0 }) {
  const { h, file } = await sqliteFile();
  const g = gatedSync();
  const fx = await openLog(h, { store: new SqlAuditStore(h, { walSync: g.sync, ...options }) });
  cleanups.push(() => {
    for (const w of g.waiting.splice(0)) w.resolve();
    return fx.log.close();
  });
  /** Wait until a batch has committed and asked for its WAL fsync. */
  const fsyncRequested = async () => {
    for (let i = 0; i < 200 && g.waiting.length === 0; i++) await turns(1);
    expect(g.waiting.length).toBeGreaterThan(0);
  };
  return { h, file, g, fx, fsyncRequested };
}

const committedRows = (h: DatabaseHandle) => (h.sqlite!.prepare('select count(*) as n from audit_leaves').get() as { n: number }).n;
const synchronous = (h: DatabaseHandle) => Number(h.sqlite!.pragma('synchronous', { simple: true }));
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('audit group commit on SQLite: WAL fsync off the event loop', () => {
  it('an append resolves only after the WAL fsync of its batch; synchronous is FULL again around it', async () => {
    const { h, file, g, fx, fsyncRequested } = await gatedLog();
    expect(synchronous(h)).toBe(2);
    let resolved = false;
    const p = fx.log.record(sampleEntry(0)).then((e) => ((resolved = true), e));
    await fsyncRequested();
    expect(g.calls).toEqual([`${file}-wal`]);
    expect(committedRows(h)).toBe(1); // committed (readers on this connection see it) ...
    await turns(20);
    expect(resolved).toBe(false); // ... but not acknowledged before the fsync completes
    expect(synchronous(h)).toBe(2); // NORMAL only inside the batch's own transaction
    g.waiting.shift()!.resolve();
    const e = await p;
    expect(e.index).toBe(0);
    expect(resolved).toBe(true);
  });

  it('appends that arrive during an fsync form the next batch (group commit), each acknowledged after its own fsync', async () => {
    const { h, g, fx, fsyncRequested } = await gatedLog();
    const done: number[] = [];
    const first = fx.log.record(sampleEntry(0)).then((e) => done.push(e.index));
    await fsyncRequested();
    const more = Array.from({ length: 10 }, (_, i) => fx.log.record(sampleEntry(i + 1)).then((e) => done.push(e.index)));
    await turns(20);
    expect(done).toEqual([]);
    g.waiting.shift()!.resolve(); // batch 1 durable
    await first;
    await fsyncRequested();
    expect(done).toEqual([0]);
    expect(committedRows(h)).toBe(11); // the 10 waiting entries committed as ONE batch
    g.waiting.shift()!.resolve();
    await Promise.all(more);
    expect(done.slice(1).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(g.calls).toHaveLength(2);
    await fx.log.checkpoint();
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
  });

  it('record(…, { deferSync }): committed without a sync of its own; the next durable record\'s one sync covers it; a batch with any durable entry syncs', async () => {
    const { h, g, fx, fsyncRequested } = await gatedLog();
    // deferred entries alone: committed and resolved, no WAL sync asked for
    const a = await fx.log.record(sampleEntry(0), { deferSync: true });
    const b = await fx.log.record(sampleEntry(1), { deferSync: true });
    expect([a.index, b.index]).toEqual([0, 1]);
    expect(committedRows(h)).toBe(2);
    expect(g.calls).toEqual([]);
    expect(synchronous(h)).toBe(2); // relaxed only inside the batch's own transaction
    // a durable record: ONE sync, started after its commit (so after the deferred ones': the WAL is written in order)
    let resolved = false;
    const c = fx.log.record(sampleEntry(2)).then((e) => ((resolved = true), e));
    await fsyncRequested();
    expect(g.calls).toHaveLength(1);
    expect(committedRows(h)).toBe(3);
    await turns(20);
    expect(resolved).toBe(false);
    g.waiting.shift()!.resolve();
    expect((await c).index).toBe(2);
    // deferred and durable entries in one batch: the batch is durable (synced before either resolves)
    const done: number[] = [];
    const d = fx.log.record(sampleEntry(3), { deferSync: true }).then((e) => done.push(e.index));
    const e = fx.log.record(sampleEntry(4)).then((x) => done.push(x.index));
    await fsyncRequested();
    await turns(20);
    expect(done).toEqual([]);
    g.waiting.shift()!.resolve();
    await Promise.all([d, e]);
    expect(done.sort()).toEqual([3, 4]);
    expect(g.calls).toHaveLength(2);
    await fx.log.checkpoint();
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
  });

  it('a failed WAL fsync fails the append closed (ERR_AUDIT_UNAVAILABLE, degraded); the log recovers and verifies', async () => {
    const { h, g, fx, fsyncRequested } = await gatedLog();
    const p = fx.log.record(sampleEntry(0));
    await fsyncRequested();
    g.waiting.shift()!.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
    await expect(p).rejects.toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
    expect(fx.log.health().status).toBe('degraded');
    expect(synchronous(h)).toBe(2);
    const q = fx.log.record(sampleEntry(1));
    await fsyncRequested();
    g.waiting.shift()!.resolve();
    const e = await q;
    expect(e.index).toBe(1); // the unacknowledged entry 0 is in the store; the tree caught up
    expect(fx.log.health().status).toBe('ok');
    await fx.log.checkpoint();
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
  });

  it('the durability mode is read under the connection lock (not while another writer has synchronous relaxed)', async () => {
    const { h, g, fx, fsyncRequested } = await gatedLog();
    // another writer (like the station jobs' group commit) holds the connection with synchronous relaxed
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let relaxed!: () => void;
    const isRelaxed = new Promise<void>((r) => (relaxed = r));
    const other = h.db.connection().execute(async () => {
      h.sqlite!.pragma('synchronous = NORMAL');
      relaxed();
      await gate;
      h.sqlite!.pragma('synchronous = FULL');
    });
    await isRelaxed;
    const p = fx.log.record(sampleEntry(0)); // the store's first append: it sets itself up now
    await turns(20);
    release();
    await other;
    await fsyncRequested(); // the configured FULL was seen: the WAL is fsynced before the ack
    g.waiting.shift()!.resolve();
    expect((await p).index).toBe(0);
    expect(synchronous(h)).toBe(2);
  });

  it('no WAL fsync when per-commit durability is off by configuration (NORMAL) or the inline fsync is chosen', async () => {
    const normal = await sqliteFile('NORMAL');
    const g1 = gatedSync();
    const a = await openLog(normal.h, { store: new SqlAuditStore(normal.h, { walSync: g1.sync }) });
    cleanups.push(() => a.log.close());
    await a.log.record(sampleEntry(0));
    expect(g1.calls).toEqual([]);
    expect(synchronous(normal.h)).toBe(1);

    const inline = await sqliteFile();
    const g2 = gatedSync();
    const b = await openLog(inline.h, { store: new SqlAuditStore(inline.h, { offloopSync: false, walSync: g2.sync }) });
    cleanups.push(() => b.log.close());
    await b.log.record(sampleEntry(0));
    expect(g2.calls).toEqual([]);
    expect(synchronous(inline.h)).toBe(2);
  });

  it('a lone entry after a quiet spell commits with the inline fsync (configured FULL, no off-loop sync); a batch of two, a lone entry right after another batch, or one while other requests are in flight goes off the loop', async () => {
    // a quiet spell of a minute: only the very first batch comes after one
    const { h, file, g, fx } = await gatedLog({ inlineSyncQuietMs: 60_000 });
    const offLoop = async <T,>(p: Promise<T>): Promise<T> => {
      let resolved = false;
      void p.then(() => (resolved = true));
      for (let i = 0; i < 200 && g.waiting.length === 0; i++) await turns(1);
      expect(g.waiting.length).toBe(1);
      await turns(20);
      expect(resolved).toBe(false); // waits for its off-loop sync
      g.waiting.shift()!.resolve();
      return p;
    };
    expect((await fx.log.record(sampleEntry(0))).index).toBe(0); // acknowledged with no off-loop sync asked
    expect(g.calls).toEqual([]);
    expect(synchronous(h)).toBe(2);
    expect((await offLoop(fx.log.record(sampleEntry(1)))).index).toBe(1); // lone, but not after a quiet spell
    expect(g.calls).toEqual([`${file}-wal`]);
    expect((await offLoop(Promise.all([fx.log.record(sampleEntry(2)), fx.log.record(sampleEntry(3))]))).map((e) => e.index)).toEqual([2, 3]);
    expect(synchronous(h)).toBe(2);
    await fx.log.checkpoint();
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
    // the default quiet spell (1 ms): lone entries a few ms apart each commit inline
    const { g: g2, fx: fx2 } = await gatedLog({});
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 5));
      await fx2.log.record(sampleEntry(i));
    }
    expect(g2.calls).toEqual([]);
    // other requests in flight (the API's gauge): a lone entry after a quiet spell goes off the loop
    let others = true;
    const { file: file3, g: g3, fx: fx3, fsyncRequested } = await gatedLog({ othersActive: () => others });
    const busy = fx3.log.record(sampleEntry(0));
    await fsyncRequested();
    expect(g3.calls).toEqual([`${file3}-wal`]);
    g3.waiting.shift()!.resolve();
    await busy;
    others = false;
    await new Promise((r) => setTimeout(r, 5));
    await fx3.log.record(sampleEntry(1));
    expect(g3.calls).toHaveLength(1); // alone again: inline
  });

  it('the default WAL sync fsyncs the real file; a missing file is an error', async () => {
    const { h } = await sqliteFile();
    const fx = await openLog(h);
    cleanups.push(() => fx.log.close());
    for (let i = 0; i < 5; i++) await fx.log.record(sampleEntry(i));
    await fx.log.checkpoint();
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
    const dir = mkdtempSync(path.join(tmpdir(), 'dcms-fsync-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'f'), 'x');
    await expect(fsyncFile(path.join(dir, 'f'))).resolves.toBeUndefined();
    await expect(fsyncFile(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('batches of every shape (1, a partial chunk, a full 64-row chunk, chunks plus a remainder) store every entry in order with its own index and body; the log verifies', async () => {
    const { h } = await sqliteFile();
    const fx = await openLog(h);
    cleanups.push(() => fx.log.close());
    let i = 0;
    const expected: number[] = [];
    for (const size of [1, 2, 7, 63, 64, 65, 130, 3]) {
      const got = await Promise.all(Array.from({ length: size }, () => fx.log.record(sampleEntry(i++))));
      expected.push(...got.map((e) => e.index));
    }
    expect(expected).toEqual(Array.from({ length: i }, (_, k) => k));
    const rows = h.sqlite!.prepare('select e.idx, e.time, e.reader_id, l.idx as leaf from audit_entries e join audit_leaves l on l.idx = e.idx order by e.idx').all() as { idx: number; time: number; reader_id: string; leaf: number }[];
    expect(rows.map((r) => r.idx)).toEqual(expected);
    // each entry landed in its own row: the body is the one recorded with that index
    expect(rows.map((r) => [r.time, r.reader_id])).toEqual(Array.from({ length: i }, (_, k) => [sampleEntry(k).time, sampleEntry(k).readerId]));
    await fx.log.checkpoint();
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
  });

  it('WAL checkpoints run in a worker thread, not inside a commit on the event loop; closing the log gives the connection its automatic checkpoint back', async () => {
    const { h, file } = await sqliteFile();
    const auto = () => Number(h.sqlite!.pragma('wal_autocheckpoint', { simple: true }));
    expect(auto()).toBe(1000);
    h.sqlite!.pragma('wal_checkpoint(TRUNCATE)');
    const dbBytes = statSync(file).size;
    const fx = await openLog(h, { store: new SqlAuditStore(h, { checkpointIntervalMs: 20 }) });
    for (let b = 0; b < 10; b++) await Promise.all(Array.from({ length: 50 }, (_, k) => fx.log.record(sampleEntry(b * 50 + k))));
    expect(auto()).toBe(0); // this connection never checkpoints inside a commit
    // the database file grows only by a checkpoint, and this connection runs none: the worker did
    for (let i = 0; i < 200 && statSync(file).size <= dbBytes; i++) await new Promise((r) => setTimeout(r, 20));
    expect(statSync(file).size).toBeGreaterThan(dbBytes);
    await fx.log.checkpoint();
    await fx.log.close();
    expect(auto()).toBe(1000);
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
  });

  it('the default WAL sync holds ONE handle on the WAL file across batches, released by close; a WAL file gone from its path fails the append closed (no fsync of a stale inode)', async () => {
    const { h, file } = await sqliteFile();
    const handles = () => readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${file}-wal`);
      } catch {
        return false;
      }
    }).length;
    // (no checkpointer thread here: its connection holds the WAL file open too)
    const fx = await openLog(h, { store: new SqlAuditStore(h, { checkpointIntervalMs: 0, inlineSyncEntries: 0 }) });
    for (let i = 0; i < 3; i++) await fx.log.record(sampleEntry(i));
    const held = handles(); // better-sqlite3's own and the store's
    expect(held).toBeGreaterThanOrEqual(1);
    for (let i = 3; i < 6; i++) await fx.log.record(sampleEntry(i));
    expect(handles()).toBe(held); // the same handle, not one per batch
    await fx.log.close();
    expect(handles()).toBe(held - 1);
    // the WAL file's path no longer names it (nlink 0): the held handle is not trusted
    const again = await openLog(h, { store: new SqlAuditStore(h, { checkpointIntervalMs: 0, inlineSyncEntries: 0 }) });
    cleanups.push(() => again.log.close());
    await again.log.record(sampleEntry(6));
    const moved = `${file}-moved`;
    renameSync(`${file}-wal`, moved);
    rmSync(moved);
    await expect(again.log.record(sampleEntry(7))).rejects.toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
    expect(again.log.health().status).toBe('degraded');
  });
});

// The SQLite audit batch (src/cms/audit/store.ts appendSqlite) and the other writers of the same
// file. The batch is one BEGIN IMMEDIATE transaction on the shared native connection; pinned here:
// - a writer in ANOTHER thread/process holding the database's write lock (with an entry of its
//   own) makes the append wait, and the append's index is read after that writer committed (no
//   duplicate, no gap; BEGIN IMMEDIATE is the lock — there is no separate lock statement);
// - a Kysely transaction open on the shared connection (awaiting between its statements) is never
//   joined: the append waits for it, and its rollback does not take the audit entry with it;
// - with no transaction open, the append commits without waiting for Kysely's connection lock;
// - two logs on two connections to one file (two processes' writers) interleave batches with
//   consecutive indexes (the next index is read from the file, never kept in memory);
// - under a steady stream of commits the checkpointer thread restarts the WAL (it stays bounded).
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/cms/audit/db-verify.js';
import { canonicalEntry, normalizeInput, withIndex } from '../../src/cms/audit/entry.js';
import { leafHashOfText } from '../../src/cms/audit/merkle.js';
import { nodeAuditCrypto } from '../../src/cms/audit/node-crypto.js';
import { SqlAuditStore } from '../../src/cms/audit/store.js';
import { openDatabase, type DatabaseHandle } from '../../src/cms/storage/index.js';
import { openLog, sampleEntry } from './audit-fixture.js';
import { tempSqliteFile } from './sqlite-file.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sqliteFile = () => tempSqliteFile('dcms-audit-writers-', cleanups);

const rows = (h: DatabaseHandle) => (h.sqlite!.prepare('select count(*) as n from audit_leaves').get() as { n: number }).n;

/** A thread that takes the write lock (BEGIN IMMEDIATE), writes one entry, holds the lock `holdMs`, commits. */
const FOREIGN_WRITER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.lib);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 5000');
db.prepare('BEGIN IMMEDIATE').run();
const e = workerData.row;
db.prepare('insert into audit_entries (idx, time, actor, reader_id, card_uid, tenant, aid, key_no, key_version, operation, result, correlation_id, details) values (?,?,?,?,?,?,?,?,?,?,?,?,?)')
  .run(e.idx, e.time, e.actor, e.readerId, e.cardUid, e.tenant, e.aid, e.keyNo, e.keyVersion, e.operation, e.result, e.correlationId, e.details);
db.prepare('insert into audit_leaves (idx, leaf_hash) values (?, ?)').run(e.idx, Buffer.from(workerData.leaf));
parentPort.postMessage('locked');
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.holdMs);
db.prepare('COMMIT').run();
db.close();
parentPort.postMessage('committed');
`;

describe('SQLite audit batches and the other writers of the file', () => {
  it("an append waits for another thread's writer holding the write lock and takes the index after its entry", async () => {
    const { h, file } = await sqliteFile();
    const fx = await openLog(h);
    cleanups.push(() => fx.log.close());
    for (let i = 0; i < 3; i++) await fx.log.record(sampleEntry(i));
    // the other writer appends entry 3 (a valid entry: the log must verify with it)
    const foreign = withIndex(normalizeInput(sampleEntry(100), 0), 3);
    const leaf = leafHashOfText(nodeAuditCrypto, canonicalEntry(foreign));
    const w = new Worker(FOREIGN_WRITER, {
      eval: true,
      workerData: { lib: createRequire(import.meta.url).resolve('better-sqlite3'), file, holdMs: 300, leaf, row: { ...foreign, idx: 3, details: JSON.stringify(foreign.details) } },
    });
    const seen: string[] = [];
    const committed = new Promise<void>((resolve, reject) => {
      w.on('message', (m: string) => {
        seen.push(m);
        if (m === 'committed') resolve();
      });
      w.once('error', reject);
    });
    await new Promise<void>((resolve) => w.once('message', () => resolve()));
    expect(seen).toEqual(['locked']);
    const t0 = performance.now();
    const e = await fx.log.record(sampleEntry(4));
    await committed;
    expect(performance.now() - t0).toBeGreaterThan(100); // it waited for the lock
    expect(e.index).toBe(4); // after the other writer's entry 3: no duplicate, no gap
    expect(rows(h)).toBe(5);
    await fx.log.checkpoint();
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
    expect(fx.log.size).toBe(5);
  });

  it('an append never joins a Kysely transaction open on the connection: it waits, and that rollback leaves the entry', async () => {
    const { h } = await sqliteFile();
    const fx = await openLog(h);
    cleanups.push(() => fx.log.close());
    await fx.log.record(sampleEntry(0));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let opened!: () => void;
    const isOpen = new Promise<void>((r) => (opened = r));
    const other = h.db
      .transaction()
      .execute(async (tx) => {
        await sql`insert into meta_settings (name, value) values ('test:other', 'x')`.execute(tx);
        opened();
        await gate;
        throw new Error('roll back');
      })
      .catch((e: Error) => e.message);
    await isOpen;
    expect(h.sqlite!.inTransaction).toBe(true);
    let acked = false;
    const p = fx.log.record(sampleEntry(1)).then((e) => ((acked = true), e));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(acked).toBe(false);
    expect((h.sqlite!.prepare('select count(*) as n from audit_leaves').get() as { n: number }).n).toBe(1); // (read inside the open transaction)
    release();
    expect(await other).toBe('roll back');
    expect((await p).index).toBe(1);
    expect(rows(h)).toBe(2); // the entry was committed in its own transaction
    expect(h.sqlite!.prepare("select count(*) as n from meta_settings where name = 'test:other'").get()).toEqual({ n: 0 });
    await fx.log.checkpoint();
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
  });

  it("with no transaction open the batch commits without a turn through Kysely's connection lock", async () => {
    const { h } = await sqliteFile();
    const fx = await openLog(h);
    cleanups.push(() => fx.log.close());
    await fx.log.record(sampleEntry(0)); // (the first append sets the store up under the lock)
    const real = h.db.connection.bind(h.db);
    let asked = 0;
    h.db.connection = (() => {
      asked++;
      return real();
    }) as typeof h.db.connection;
    try {
      for (let i = 1; i < 4; i++) await fx.log.record(sampleEntry(i));
    } finally {
      h.db.connection = real;
    }
    expect(asked).toBe(0);
    expect(rows(h)).toBe(4);
  });

  it('under back-to-back commits the checkpointer restarts the WAL from its beginning: the file stays bounded; nothing is lost', async () => {
    const { h, file } = await sqliteFile();
    // an instant WAL sync: commits follow each other as fast as the event loop turns, so a
    // PASSIVE checkpoint alone never finds the WAL fully copied at the start of a commit
    const fx = await openLog(h, { store: new SqlAuditStore(h, { checkpointIntervalMs: 10, walRestartFrames: 200, walSync: async () => undefined }) });
    cleanups.push(() => fx.log.close());
    const frames = () => statSync(`${file}-wal`).size / 4120;
    // the WAL header's checkpoint sequence number (big-endian u32 at byte 12) counts the WAL's
    // restarts: observed, not timed, so a starved checkpointer thread (a loaded machine) makes the
    // loop longer, not the test flaky
    const restarts = () => {
      const b = Buffer.alloc(16);
      const fd = openSync(`${file}-wal`, 'r');
      try {
        readSync(fd, b, 0, 16, 0);
      } finally {
        closeSync(fd);
      }
      return b.readUInt32BE(12);
    };
    for (let i = 0; i < 100; i++) await fx.log.record(sampleEntry(i));
    await new Promise((r) => setTimeout(r, 300)); // the checkpointer thread is up and has caught up
    const seq0 = restarts();
    let n = 100;
    const deadline = Date.now() + 60_000;
    // each lone commit writes several 4 KB pages (entry, its indexes, leaf): never restarted, the
    // WAL file would hold all of them (~3 per commit) and never get below one frame per commit;
    // restarted, later commits overwrite it from its beginning and it stays the size of the longest
    // run between two restarts. Back-to-back commits until the WAL has been restarted three times
    // and is smaller than that (a minute at most: a starved thread makes the loop longer)
    const bounded = () => restarts() - seq0 >= 3 && frames() < n;
    while (!bounded() && Date.now() < deadline) for (let j = 0; j < 100; j++) await fx.log.record(sampleEntry(n++));
    expect(restarts() - seq0).toBeGreaterThanOrEqual(3);
    expect(frames()).toBeLessThan(n);
    expect(rows(h)).toBe(n);
    await fx.log.checkpoint();
    expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
  });

  it("a Kysely transaction that reads, then writes, is never refused SQLITE_BUSY while the checkpointer restarts the WAL", async () => {
    // (found by the 1,000-card benchmark: a station job's transaction read first, the worker's
    // RESTART checkpoint took the write lock in between, and the upgrade to a writer failed at
    // once — SQLite never runs the busy handler for a read transaction that wants to write)
    const { h } = await sqliteFile();
    const fx = await openLog(h, { store: new SqlAuditStore(h, { checkpointIntervalMs: 2, walRestartFrames: 8, walSync: async () => undefined }) });
    cleanups.push(() => fx.log.close());
    for (let i = 0; i < 20; i++) await fx.log.record(sampleEntry(i));
    await new Promise((r) => setTimeout(r, 100)); // the checkpointer thread is up
    const errors: string[] = [];
    let writes = 0;
    const stop = performance.now() + 1500;
    const writer = (async () => {
      for (let i = 0; performance.now() < stop; i++) {
        try {
          await h.db.transaction().execute(async (tx) => {
            await sql`select count(*) from meta_settings`.execute(tx); // a read first: a read transaction
            await new Promise((r) => setTimeout(r, 1)); // across an await, as a handler's would be
            await sql`insert into meta_settings (name, value) values (${'test:w' + i}, 'x')`.execute(tx);
          });
          writes++;
        } catch (e) {
          errors.push((e as Error).message);
        }
      }
    })();
    let n = 20;
    while (performance.now() < stop) await fx.log.record(sampleEntry(n++)); // keeps the WAL growing: RESTART after RESTART
    await writer;
    expect(errors).toEqual([]);
    expect(writes).toBeGreaterThan(10);
    expect(h.sqlite!.prepare("select count(*) as n from meta_settings where name like 'test:w%'").get()).toEqual({ n: writes });
  });

  it('two logs on two connections to one file interleave batches with consecutive indexes; both verify', async () => {
    const { h, file } = await sqliteFile();
    const h2 = await openDatabase({ kind: 'sqlite', file });
    cleanups.push(() => h2.close());
    const a = await openLog(h, { store: new SqlAuditStore(h, { checkpointIntervalMs: 0 }) });
    const b = await openLog(h2, { store: new SqlAuditStore(h2, { checkpointIntervalMs: 0 }) }, a.signer);
    cleanups.push(() => a.log.close());
    cleanups.push(() => b.log.close());
    const got: number[] = [];
    for (let i = 0; i < 12; i++) {
      const log = i % 3 === 0 ? b.log : a.log;
      const batch = await Promise.all(Array.from({ length: 1 + (i % 4) }, (_, k) => log.record(sampleEntry(i * 10 + k))));
      got.push(...batch.map((e) => e.index));
    }
    expect(got).toEqual(Array.from({ length: got.length }, (_, k) => k));
    await a.log.checkpoint();
    expect((await verifyDatabase(h, a.key)).ok).toBe(true);
    await b.log.sync();
    expect(b.log.size).toBe(got.length);
    expect(Buffer.from(b.log.root())).toEqual(Buffer.from(a.log.root()));
  });
});

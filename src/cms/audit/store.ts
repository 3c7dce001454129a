// Where the audit log lives: a small interface (so tests can inject a failing store) and its
// SQL implementation over the shared Kysely database (SQLite or PostgreSQL).
import { close as fsClose, fsync, open as fsOpen } from 'node:fs';
import type BetterSqlite3 from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import { type CheckpointerLease, type Database, type DatabaseHandle, type WalSyncer, leaseWalCheckpointer, walRestartGate, walSyncerOf } from '../storage/index.js';
import { CompiledQuery, type Kysely, sql } from 'kysely';
import { getSetting, setSetting, withTransaction, withWriterLock } from '../storage/tx.js';
import { type AuditEntry, type Json, withIndex } from './entry.js';
import type { AuditAlertTable, AuditEntryTable } from './tables.js';

/** The writer lock of the audit chain (`withWriterLock` name; SQLite: its meta_settings row). */
const AUDIT_LOCK = 'audit-append';

export interface StoredCheckpoint {
  size: number;
  root: Uint8Array;
  note: string;
  createdAt: number;
}

export interface EntryQuery {
  /** First index (inclusive). */
  from?: number;
  /** Last index (exclusive). */
  to?: number;
  limit?: number;
  tenant?: string;
  aids?: string[];
  cardUid?: string;
  readerId?: string;
}

export type AlertRow = AuditAlertTable;

export interface AppendOptions {
  /**
   * The batch may be committed without waiting for the disk: on return it is committed (visible,
   * indexed) and it becomes durable at the latest when a later append of the same store without
   * `deferSync` returns (one database file: its WAL is written and synced in order, so that
   * append's sync covers this batch's frames). A crash in between may lose the batch, never
   * reorder or corrupt the log. For a caller that makes one durable append after several (an
   * upload's audit chunks, src/cms/baton/service.ts) and acknowledges nothing before it. A hint:
   * a store may make the batch durable all the same (the PostgreSQL store does: its commits
   * from the pool run side by side, none waits behind another's flush).
   */
  deferSync?: boolean;
}

export interface AuditStore {
  /**
   * Append entries atomically: assign consecutive indexes after the current end (serialised
   * across processes), store bodies and leaf hashes in ONE transaction, durable on return —
   * unless `deferSync` (see AppendOptions).
   */
  append(entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array, opts?: AppendOptions): Promise<{ start: number; leaves: Uint8Array[] }>;
  size(): Promise<number>;
  /** Leaf hashes of [from, to) in index order. */
  leaves(from: number, to: number): Promise<{ idx: number; leaf: Uint8Array }[]>;
  entries(q: EntryQuery): Promise<AuditEntry[]>;
  saveCheckpoint(cp: StoredCheckpoint): Promise<void>;
  checkpoints(): Promise<StoredCheckpoint[]>;
  latestCheckpoint(): Promise<StoredCheckpoint | undefined>;
  checkpointAt(size: number): Promise<StoredCheckpoint | undefined>;
  /**
   * Delete entry bodies with idx < beforeIndex and time < olderThan; leaf hashes stay. Records
   * the retention watermark (a missing body at or above it is a deletion, not retention).
   */
  pruneBodies(beforeIndex: number, olderThan: number): Promise<number>;
  /** Indexes below this may have had their bodies pruned by retention. */
  prunedBefore(): Promise<number>;
  saveAlert(a: AlertRow): Promise<void>;
  alerts(q: { since?: number; limit?: number; rule?: string; undelivered?: boolean }): Promise<AlertRow[]>;
  markAlert(id: string, delivery: number, attempts: number): Promise<void>;
  /** Release what the store holds besides the database (called by AuditLog.close). */
  close?(): void | Promise<void>;
}

const CHUNK = 500;
const PRUNED = 'audit.pruned_before';


function toRow(e: AuditEntry): AuditEntryTable {
  return {
    idx: e.index,
    time: e.time,
    actor: e.actor,
    reader_id: e.readerId,
    card_uid: e.cardUid,
    tenant: e.tenant,
    aid: e.aid,
    key_no: e.keyNo,
    key_version: e.keyVersion,
    operation: e.operation,
    result: e.result,
    correlation_id: e.correlationId,
    details: JSON.stringify(e.details),
  };
}

export function fromRow(r: AuditEntryTable): AuditEntry {
  return {
    index: Number(r.idx),
    time: Number(r.time),
    actor: r.actor,
    readerId: r.reader_id,
    cardUid: r.card_uid,
    tenant: r.tenant,
    aid: r.aid,
    keyNo: r.key_no === null ? null : Number(r.key_no),
    keyVersion: r.key_version === null ? null : Number(r.key_version),
    operation: r.operation,
    result: r.result,
    correlationId: r.correlation_id,
    details: JSON.parse(r.details) as Record<string, Json>,
  };
}

/**
 * Makes a committed WAL frame durable: fsync of the `-wal` file, in libuv's thread pool (off the
 * event loop). Opened read-write without create/truncate ('r+'): some platforms (Windows'
 * FlushFileBuffers) refuse to flush a read-only handle. Injectable for tests (ordering, failure).
 */
export type WalSync = (walPath: string) => Promise<void>;

export const fsyncFile: WalSync = (path) =>
  new Promise<void>((resolve, reject) => {
    fsOpen(path, 'r+', (err, fd) => {
      if (err) return reject(err);
      fsync(fd, (e1) => fsClose(fd, (e2) => (e1 || e2 ? reject(e1 ?? e2) : resolve())));
    });
  });

export interface SqlAuditStoreOptions {
  /**
   * SQLite file in WAL mode: WAL checkpoints in a worker thread every this many ms instead of
   * SQLite's automatic checkpoint inside a commit on the event loop (the file's shared
   * checkpointer, src/cms/storage/checkpointer.ts; the first lease of the file sets its options).
   * Default 1000; 0 leaves SQLite's automatic checkpoint on.
   */
  checkpointIntervalMs?: number;
  /** With the checkpointer: restart the WAL from its beginning once it holds this many frames (src/cms/storage/checkpointer.ts). */
  walRestartFrames?: number;
  /**
   * SQLite in WAL mode with synchronous=FULL: commit each batch without the inline fsync
   * (synchronous=NORMAL for that one transaction, on this connection only) and then fsync the
   * WAL file off the event loop before `append` resolves — the same durability as FULL (an
   * acknowledged entry is on disk), but the event loop keeps serving requests during the fsync.
   * Default true; false commits with the inline fsync (the event loop waits for the disk).
   */
  offloopSync?: boolean;
  /**
   * With `offloopSync`: a batch of at most this many entries (default 1; 0: every batch off the
   * loop) while nothing else is going on — no other client active (`othersActive`), no batch of
   * this store committed in the last `inlineSyncQuietMs` (default 1) and no sync of the WAL file
   * in flight — commits with the inline fsync all the same. Such an entry (one key
   * delivery's) waits for its sync either way, and the off-loop sync adds two thread hops — to the
   * thread pool and back to the event loop — each a wake-up that waits for a core when the machine
   * is busy: measured with one reader transacting back to back, a lone batch's append took p99
   * 4.0 ms off the loop, 2.4 ms inline (the sync itself: p50 ~0.15 ms). Under load (other
   * requests in flight, batches every turn, syncs in flight) every batch stays off the loop, where
   * the loop serves the next requests during the sync. (PostgreSQL's commit_siblings makes the
   * same call the other way round: it delays a commit to share its flush only when other
   * transactions are active.)
   */
  inlineSyncEntries?: number;
  inlineSyncQuietMs?: number;
  /**
   * Whether clients other than the one appending are active. The composition root (src/cms/app.ts)
   * answers from the API's request activity: another request in flight, or one on another
   * connection in the last 20 ms.
   */
  othersActive?: () => boolean;
  /** The WAL fsync (default: fsync of the file in the thread pool). */
  walSync?: WalSync;
}

/**
 * Inside a transaction that holds the audit writer lock: the next index, then the bodies and leaf
 * hashes in ONE statement per chunk (a data-modifying CTE).
 */
async function writeBatch(db: Kysely<Database>, entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array): Promise<{ start: number; leaves: Uint8Array[] }> {
  const row = await db
    .selectFrom('audit_leaves')
    .select((eb) => eb.fn.max('idx').as('m'))
    .executeTakeFirst();
  const start = row?.m === null || row?.m === undefined ? 0 : Number(row.m) + 1;
  const full = entries.map((e, i) => withIndex(e, start + i));
  const leaves = full.map(leafOf);
  for (let i = 0; i < full.length; i += CHUNK) {
    const part = full.slice(i, i + CHUNK);
    await db
      .with('e', (d) => d.insertInto('audit_entries').values(part.map(toRow)).returning('idx'))
      .insertInto('audit_leaves')
      .values(part.map((e, j) => ({ idx: e.index, leaf_hash: leaves[i + j]! })))
      .execute();
  }
  return { start, leaves };
}

const ENTRY_COLS = ['idx', 'time', 'actor', 'reader_id', 'card_uid', 'tenant', 'aid', 'key_no', 'key_version', 'operation', 'result', 'correlation_id', 'details'] as const;
const PG_MAX = 'select max("idx") as "m" from "audit_leaves"';
/** PostgreSQL types of ENTRY_COLS (the column arrays of the append statement). */
const ENTRY_TYPES = ['bigint', 'bigint', 'text', 'text', 'text', 'text', 'text', 'integer', 'integer', 'text', 'text', 'text', 'text'] as const;
const COLUMN_LIST = ENTRY_COLS.map((c) => `"${c}"`).join(', ');

/**
 * The PostgreSQL append call (migration 0083, desfire_audit_append): $1-$13 the bodies' columns as
 * arrays, $14 the leaf hashes, $15 the index the first row must get. Under the chain's writer lock
 * it reads the next index and inserts bodies and leaves only if it equals $15; it returns that
 * index and the rows inserted, committed (autocommit: the call's own transaction) before it
 * answers. Named (pg's `{ name, text }` form, as src/cms/delivery/prepared.ts): each pooled
 * connection parses and plans it once.
 */
const PG_APPEND = {
  name: 'desfire_audit_append_2',
  text: `select "s", "ne", "nl" from desfire_audit_append(${ENTRY_TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ')}, $14::bytea[], $15::bigint)`,
};
/**
 * The same append as one statement (data-modifying CTEs over the column arrays, the same
 * parameters and answer), for the locked way inside a transaction that already holds the writer
 * lock — so a database not yet migrated to 0083 still takes audit entries, one round trip more.
 */
const PG_APPEND_INLINE = {
  name: 'desfire_audit_append_1',
  text:
    `with "g" as (select coalesce(max("idx") + 1, 0) as "s" from "audit_leaves"), ` +
    `"e" as (insert into "audit_entries" (${COLUMN_LIST}) select * from unnest(${ENTRY_TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ')}) where (select "s" from "g") = $15::bigint returning "idx"), ` +
    `"l" as (insert into "audit_leaves" ("idx", "leaf_hash") select * from unnest($1::bigint[], $14::bytea[]) where (select "s" from "g") = $15::bigint returning "idx") ` +
    `select (select "s" from "g") as "s", (select count(*) from "e") as "ne", (select count(*) from "l") as "nl"`,
};
/** PostgreSQL's undefined_function: the schema predates migration 0083. */
const PG_UNDEFINED_FUNCTION = '42883';

/** The append call's parameters for `entries` stored from index `start`; fills `leaves`. */
function pgParams(entries: Omit<AuditEntry, 'index'>[], start: number, leafOf: (e: AuditEntry) => Uint8Array, leaves: Uint8Array[]): unknown[] {
  const n = entries.length;
  const cols: unknown[][] = ENTRY_COLS.map(() => new Array<unknown>(n));
  const hashes: Buffer[] = new Array<Buffer>(n);
  for (let j = 0; j < n; j++) {
    const full = withIndex(entries[j]!, start + j);
    const l = leafOf(full);
    leaves[j] = l;
    hashes[j] = Buffer.isBuffer(l) ? l : Buffer.from(l.buffer, l.byteOffset, l.byteLength);
    const r = toRow(full);
    for (let c = 0; c < ENTRY_COLS.length; c++) cols[c]![j] = r[ENTRY_COLS[c]!];
  }
  return [...cols, hashes, start];
}

type PgAnswer = { s: string | number; ne: string | number; nl: string | number };

/** One append (`stmt`) of `entries` hashed for `start`: the index it found (nothing inserted when it is not `start`). */
async function callAppend(db: Kysely<Database>, stmt: { name: string; text: string }, entries: Omit<AuditEntry, 'index'>[], start: number, leafOf: (e: AuditEntry) => Uint8Array, leaves: Uint8Array[]): Promise<number> {
  const r = (await db.executeQuery<PgAnswer>(CompiledQuery.raw(stmt as unknown as string, pgParams(entries, start, leafOf, leaves)))).rows[0]!;
  const s = Number(r.s);
  if (s === start && (Number(r.ne) !== entries.length || Number(r.nl) !== entries.length)) throw new Error(`audit batch: the append stored ${String(r.ne)}/${String(r.nl)} of ${entries.length} rows`);
  return s;
}

/**
 * The batch on PostgreSQL. With `guess` (the index after this store's previous batch): one append
 * call, in its own transaction (one round trip). The guess is never trusted, only compared inside
 * the call under the lock; when it is wrong (another process appended, the table changed under us,
 * or several batches of this store raced), nothing was inserted and the batch goes the locked way:
 * BEGIN + the writer lock (one round trip), the max index read under it, the call hashed for that
 * index (the call takes the same lock again: advisory locks are re-entrant in a transaction, so it
 * cannot miss), COMMIT — four round trips, as for a store's first batch (no guess). Indexes stay
 * consecutive from the stored end either way, and no batch is refused for contention. The locked
 * way appends with the one-statement form (PG_APPEND_INLINE), so it does not need migration 0083;
 * `fn.missing` is set (and the call no longer tried) once the server says the function does not
 * exist.
 */
async function writeBatchPg(db: Kysely<Database>, entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array, guess: number | undefined, fn: { missing: boolean }): Promise<{ start: number; leaves: Uint8Array[] }> {
  const leaves: Uint8Array[] = new Array<Uint8Array>(entries.length);
  if (guess !== undefined && !fn.missing) {
    try {
      if ((await callAppend(db, PG_APPEND, entries, guess, leafOf, leaves)) === guess) return { start: guess, leaves };
    } catch (e) {
      if ((e as { code?: unknown }).code !== PG_UNDEFINED_FUNCTION) throw e;
      fn.missing = true;
    }
  }
  return db.connection().execute(async (conn) => {
    try {
      await sql.raw(`begin; select pg_advisory_xact_lock(hashtext('${AUDIT_LOCK}'))`).execute(conn);
      const row = (await conn.executeQuery<{ m: string | number | null }>(CompiledQuery.raw(PG_MAX, []))).rows[0];
      const start = row?.m === null || row?.m === undefined ? 0 : Number(row.m) + 1;
      const s = await callAppend(conn, PG_APPEND_INLINE, entries, start, leafOf, leaves);
      if (s !== start) throw new Error(`audit batch: the next index moved from ${start} to ${s} under the writer lock`);
      const done = await sql<{ command?: string }>`commit`.execute(conn);
      // a COMMIT of an aborted transaction answers ROLLBACK instead of failing
      if (done.rows[0]?.command === 'ROLLBACK') throw new Error('audit batch rolled back at commit');
      return { start, leaves };
    } catch (e) {
      await sql`rollback`.execute(conn).catch(() => undefined);
      throw e;
    }
  });
}

export class SqlAuditStore implements AuditStore {
  private native?: {
    max: Statement;
    entry: Statement;
    leaf: Statement;
    batch: BetterSqlite3.Transaction<(entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array) => { start: number; leaves: Uint8Array[] }>;
    relax?: Statement;
    restore?: Statement;
  };
  /** The WAL file to fsync after each commit, or null (inline fsync, or not durable by configuration). */
  private wal?: string | null;
  /**
   * The database's shared WAL syncer (default sync, no `walSync` given: src/cms/storage/wal-sync.ts):
   * one held handle on the `-wal` file, fdatasync, and syncs SHARED with the file's other writers
   * (the station jobs' group commit) — answered by the first sync that started after the commit.
   */
  private walSyncer?: WalSyncer;
  /** performance.now() when this store's last batch committed (inlineSyncQuietMs). */
  private lastCommit = -Infinity;
  /** This store's lease on the file's checkpointer thread (src/cms/storage/checkpointer.ts). */
  private checkpointer?: CheckpointerLease;
  /** While the file's checkpointer restarts the WAL: its end (the gate every SQLite writer of the file passes). */
  private restartGate?: () => Promise<unknown> | undefined;
  /** PostgreSQL: the index after this store's last committed batch (writeBatchPg's guess); unset after a failure. */
  private pgNext?: number;
  /** PostgreSQL: whether the schema lacks the append function (migration 0083; see writeBatchPg). */
  private readonly pgFn = { missing: false };

  constructor(
    private readonly h: DatabaseHandle,
    private readonly so: SqlAuditStoreOptions = {},
  ) {}

  async append(entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array, opts: AppendOptions = {}): Promise<{ start: number; leaves: Uint8Array[] }> {
    if (this.h.sqlite) return this.appendSqlite(entries, leafOf, opts.deferSync === true);
    if (this.h.dialect === 'postgres') return this.appendPostgres(entries, leafOf);
    return withWriterLock(this.h.db, this.h.dialect, AUDIT_LOCK, (tx) => writeBatch(tx, entries, leafOf));
  }

  /**
   * PostgreSQL: ONE round trip per batch in the usual case — the append call (writeBatchPg,
   * migration 0083) takes the writer lock, checks the start, inserts and commits in its own
   * transaction; the lock is never held while the answer travels back or this event loop is busy
   * elsewhere. (Before: three — BEGIN + lock, the append, COMMIT — with the lock held across them.)
   * A store's first batch, a batch after another process appended, and every batch on a schema
   * before migration 0083 go the locked way (four round trips, see writeBatchPg). The lock is the
   * one `withWriterLock(…, 'audit-append')` takes (same key), so every other writer of the chain
   * is still serialised with this one, in this process and in others. A call that fails (a
   * constraint, a lost connection) rolls back with its transaction: nothing written.
   */
  private async appendPostgres(entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array): Promise<{ start: number; leaves: Uint8Array[] }> {
    const guess = this.pgNext;
    this.pgNext = undefined;
    const r = await writeBatchPg(this.h.db, entries, leafOf, guess, this.pgFn);
    this.pgNext = r.start + entries.length;
    return r;
  }

  private prepareNative(n: NonNullable<DatabaseHandle['sqlite']>): void {
    if (this.native) return;
    const cols = '(idx, time, actor, reader_id, card_uid, tenant, aid, key_no, key_version, operation, result, correlation_id, details)';
    const row = '(?,?,?,?,?,?,?,?,?,?,?,?,?)';
    const st = {
      max: n.prepare('select max(idx) as m from audit_leaves'),
      entry: n.prepare(`insert into audit_entries ${cols} values ${row}`),
      leaf: n.prepare('insert into audit_leaves (idx, leaf_hash) values (?, ?)'),
    };
    this.native = { ...st, batch: n.transaction((entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array) => SqlAuditStore.writeNative(st, entries, leafOf)) };
    const sync = Number(n.pragma('synchronous', { simple: true }));
    const wal = String(n.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal';
    // FULL (2) or EXTRA (3) in WAL mode on a file: fsync off the event loop; otherwise as configured
    if ((this.so.offloopSync ?? true) && wal && sync >= 2 && !n.memory && n.name) {
      this.wal = `${n.name}-wal`;
      if (!this.so.walSync) this.walSyncer = walSyncerOf(n);
      this.native.relax = n.prepare('pragma synchronous = NORMAL');
      this.native.restore = n.prepare(`pragma synchronous = ${sync}`);
    } else this.wal = null;
    const every = this.so.checkpointIntervalMs ?? 1000;
    if (every > 0 && wal && !n.memory && n.name) this.checkpointer = leaseWalCheckpointer(n, { intervalMs: every, restartFrames: this.so.walRestartFrames ?? 16_384 });
    this.restartGate = walRestartGate(n);
  }

  /**
   * SQLite hot path: prepared statements on the native connection, in one BEGIN IMMEDIATE
   * transaction. BEGIN IMMEDIATE takes the database's write lock (RESERVED) before the max index
   * is read, so writers in this and other processes are serialised by SQLite itself (a waiting
   * writer waits up to busy_timeout); the no-op `update meta_settings` that `withWriterLock` adds
   * for deferred transactions took a lock already held, and is not run here. No Kysely
   * transaction interleaves: the whole transaction (and the synchronous relax/restore around it)
   * is one synchronous stretch; when the connection HAS a transaction open (a Kysely transaction
   * awaiting between its statements) it runs under Kysely's connection lock, after that
   * transaction; when it has none, nothing can begin one while this runs, so it runs at once
   * (the lock's promise round is skipped, as for the delivery lookups, delivery/prepared.ts).
   * Durability: with synchronous=FULL the commit fsyncs inline and blocks the event loop for the
   * length of the fsync (a few ms per batch, every request waits behind it). Instead, in WAL mode
   * the batch commits with synchronous=NORMAL (set and restored around this one transaction, in
   * the same synchronous stretch, so no other statement on the connection runs with it), and the
   * WAL file is fsynced in the thread pool before the promise resolves: an entry is acknowledged
   * only once it is on disk, exactly as with FULL. If the fsync fails, the append rejects (the
   * operation is refused; the committed rows are caught up by the tree at the next sync).
   */
  private async appendSqlite(entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array, deferSync: boolean): Promise<{ start: number; leaves: Uint8Array[] }> {
    const n = this.h.sqlite!;
    // Statements and the durability mode are set up under Kysely's connection lock: another writer
    // (the station jobs' group commit) may hold the connection with synchronous relaxed for its own
    // transaction, and the setting read here must be the configured one.
    if (!this.native) await this.h.db.connection().execute(async () => this.prepareNative(n));
    const st = this.native!;
    // the file's checkpointer thread is restarting the WAL (it holds the write lock): wait here, not
    // in SQLite's busy handler on the event loop (the native path bypasses the Kysely dialect's gate)
    const restart = this.restartGate?.();
    if (restart) await restart;
    // a small batch while nothing else is going on commits with the configured synchronous=FULL (inline fsync): see inlineSyncEntries
    // a deferred batch (AppendOptions.deferSync) commits relaxed and is not synced here
    const quiet = !deferSync && entries.length <= (this.so.inlineSyncEntries ?? 1) && performance.now() - this.lastCommit >= (this.so.inlineSyncQuietMs ?? 1) && !this.walSyncer?.busy && !this.so.othersActive?.();
    const wal = quiet ? null : this.wal;
    const commit = wal
      ? () => {
          st.relax!.run();
          try {
            return st.batch.immediate(entries, leafOf);
          } finally {
            st.restore!.run();
          }
        }
      : () => st.batch.immediate(entries, leafOf);
    const out = n.inTransaction
      ? await this.h.db.connection().execute(async () => {
          // after the open transaction: a RESTART may have begun meanwhile
          const again = this.restartGate?.();
          if (again) await again;
          return commit();
        })
      : commit();
    this.lastCommit = performance.now();
    if (!wal || deferSync) return out;
    // the sync starts after this batch's COMMIT (the syncer answers with the first sync that started
    // after the call), so it covers the batch's frames; a failed sync rejects the batch (fail closed)
    if (this.walSyncer) await this.walSyncer.sync();
    else await (this.so.walSync ?? fsyncFile)(wal);
    return out;
  }

  /** The batch's transaction body (wrapped once by better-sqlite3's `transaction`: BEGIN IMMEDIATE … COMMIT). */
  private static writeNative(st: { max: Statement; entry: Statement; leaf: Statement }, entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array): { start: number; leaves: Uint8Array[] } {
    const m = (st.max.get() as { m: number | null }).m;
    const start = m === null ? 0 : m + 1;
    const leaves: Uint8Array[] = new Array<Uint8Array>(entries.length);
    // one single-row execution per table and entry, arguments bound directly: measured cheaper
    // than multi-row VALUES statements (CPU per entry, batches of 20: ~57 vs ~68-93 us; of 128:
    // ~26-31 vs ~35-38 us), which bind one long array and compile to a larger program
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const idx = start + i;
      const l = leafOf(withIndex(e, idx));
      leaves[i] = l;
      st.entry.run(idx, e.time, e.actor, e.readerId, e.cardUid, e.tenant, e.aid, e.keyNo, e.keyVersion, e.operation, e.result, e.correlationId, JSON.stringify(e.details));
      st.leaf.run(idx, l);
    }
    return { start, leaves };
  }

  /** Release the WAL file's handle (the database handle is closed separately; the shared syncer reopens it if another writer syncs). */
  async close(): Promise<void> {
    this.walSyncer?.drop();
    const c = this.checkpointer;
    this.checkpointer = undefined;
    await c?.release();
  }

  async size(): Promise<number> {
    const row = await this.h.db
      .selectFrom('audit_leaves')
      .select((eb) => eb.fn.max('idx').as('m'))
      .executeTakeFirst();
    return row?.m === null || row?.m === undefined ? 0 : Number(row.m) + 1;
  }

  async leaves(from: number, to: number): Promise<{ idx: number; leaf: Uint8Array }[]> {
    const rows = await this.h.db.selectFrom('audit_leaves').selectAll().where('idx', '>=', from).where('idx', '<', to).orderBy('idx').execute();
    return rows.map((r) => ({ idx: Number(r.idx), leaf: new Uint8Array(r.leaf_hash) }));
  }

  async entries(q: EntryQuery): Promise<AuditEntry[]> {
    let s = this.h.db.selectFrom('audit_entries').selectAll();
    if (q.from !== undefined) s = s.where('idx', '>=', q.from);
    if (q.to !== undefined) s = s.where('idx', '<', q.to);
    if (q.tenant !== undefined && q.aids?.length) {
      const { tenant, aids } = q;
      s = s.where((eb) => eb.or([eb('tenant', '=', tenant), eb('aid', 'in', aids)]));
    } else if (q.tenant !== undefined) s = s.where('tenant', '=', q.tenant);
    else if (q.aids?.length) s = s.where('aid', 'in', q.aids);
    if (q.cardUid !== undefined) s = s.where('card_uid', '=', q.cardUid);
    if (q.readerId !== undefined) s = s.where('reader_id', '=', q.readerId);
    const rows = await s.orderBy('idx').limit(q.limit ?? 1000).execute();
    return rows.map(fromRow);
  }

  async saveCheckpoint(cp: StoredCheckpoint): Promise<void> {
    await this.h.db
      .insertInto('audit_checkpoints')
      .values({ tree_size: cp.size, root_hash: cp.root, note: cp.note, created_at: cp.createdAt })
      .onConflict((oc) => oc.column('tree_size').doNothing())
      .execute();
  }

  async checkpoints(): Promise<StoredCheckpoint[]> {
    const rows = await this.h.db.selectFrom('audit_checkpoints').selectAll().orderBy('tree_size').execute();
    return rows.map((r) => ({ size: Number(r.tree_size), root: new Uint8Array(r.root_hash), note: r.note, createdAt: Number(r.created_at) }));
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const r = await this.h.db.selectFrom('audit_checkpoints').selectAll().orderBy('tree_size', 'desc').limit(1).executeTakeFirst();
    return r && { size: Number(r.tree_size), root: new Uint8Array(r.root_hash), note: r.note, createdAt: Number(r.created_at) };
  }

  async checkpointAt(size: number): Promise<StoredCheckpoint | undefined> {
    const r = await this.h.db.selectFrom('audit_checkpoints').selectAll().where('tree_size', '=', size).executeTakeFirst();
    return r && { size: Number(r.tree_size), root: new Uint8Array(r.root_hash), note: r.note, createdAt: Number(r.created_at) };
  }

  async pruneBodies(beforeIndex: number, olderThan: number): Promise<number> {
    return withTransaction(this.h.db, async (tx) => {
      const top = await tx
        .selectFrom('audit_entries')
        .select((eb) => eb.fn.max('idx').as('m'))
        .where('idx', '<', beforeIndex)
        .where('time', '<', olderThan)
        .executeTakeFirst();
      const res = await tx.deleteFrom('audit_entries').where('idx', '<', beforeIndex).where('time', '<', olderThan).executeTakeFirst();
      const prev = Number((await getSetting(tx, PRUNED)) ?? 0);
      const mark = top?.m === null || top?.m === undefined ? 0 : Number(top.m) + 1;
      if (mark > prev) await setSetting(tx, PRUNED, String(mark));
      return Number(res.numDeletedRows);
    });
  }

  async prunedBefore(): Promise<number> {
    return Number((await getSetting(this.h.db, PRUNED)) ?? 0);
  }

  async saveAlert(a: AlertRow): Promise<void> {
    await this.h.db.insertInto('audit_alerts').values(a).execute();
  }

  async alerts(q: { since?: number; limit?: number; rule?: string; undelivered?: boolean }): Promise<AlertRow[]> {
    let s = this.h.db.selectFrom('audit_alerts').selectAll();
    if (q.since !== undefined) s = s.where('time', '>=', q.since);
    if (q.rule !== undefined) s = s.where('rule', '=', q.rule);
    if (q.undelivered) s = s.where('delivery', '=', 0);
    const rows = await s.orderBy('time').orderBy('id').limit(q.limit ?? 1000).execute();
    return rows.map((r) => ({ ...r, time: Number(r.time), entry_idx: r.entry_idx === null ? null : Number(r.entry_idx) }));
  }

  async markAlert(id: string, delivery: number, attempts: number): Promise<void> {
    await this.h.db.updateTable('audit_alerts').set({ delivery, delivery_attempts: attempts }).where('id', '=', id).execute();
  }
}

// Group commit of station-job writes. On SQLite every COMMIT fsyncs the WAL (synchronous=FULL),
// and that fsync was the largest single cost of an installation (each application is three
// requests that each write: create, claim, receipt). Writes of concurrent requests are therefore
// queued and run in ONE transaction, each in its own SAVEPOINT: a write that throws is rolled back
// alone (its caller gets its error), the others commit together, and nobody is answered before
// the COMMIT returned — each caller sees exactly the durability of a transaction of its own.
// A failed COMMIT rejects every write of the batch (nothing of it is durable).
//
// Given the native connection of a WAL-mode file database with synchronous=FULL, the batch commits
// without the inline fsync (synchronous=NORMAL for that one transaction, set and restored under
// Kysely's connection lock so no other statement runs with it) and the WAL file is fsynced in the
// thread pool before anyone is answered — the same durability as FULL (as the audit log's store,
// src/cms/audit/store.ts), but the event loop serves other requests during the fsync, and
// concurrent requests for a sync share one: the database's shared WAL syncer
// (src/cms/storage/wal-sync.ts: held handle, fdatasync, shared with the file's other writers).
// PostgreSQL commits concurrently from a pool: there each write is simply its own transaction.
//
// `run(fn, { deferSync: true })` (off-loop mode only): a batch of such writes only commits without
// waiting for the sync; it is durable once a later batch's sync or `durable()` has returned. For
// a caller that writes in several transactions and answers after the last, synced, one (a baton
// upload's parts, src/cms/baton/service.ts). Elsewhere every commit is durable as before.
import type BetterSqlite3 from 'better-sqlite3';
import { type Kysely, type Transaction, sql } from 'kysely';
import { type Database, dialectOf, walRestartGate, walSyncerOf } from '../storage/index.js';
import { CoalescedSync } from '../storage/wal-sync.js';

type Tx = Transaction<Database>;

export interface RunOptions {
  /** Commit without waiting for the WAL sync (see the file's comment); ignored where commits are durable by themselves. */
  deferSync?: boolean;
}

interface Queued {
  deferSync?: boolean;
  fn: (tx: Tx) => Promise<unknown>;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export class GroupCommit {
  private readonly queue: Queued[] = [];
  private flushing = false;
  private readonly sqlite: boolean;
  /** Off-loop durability (WAL file on disk, synchronous=FULL): relax/restore the setting around each commit. */
  private readonly offloop?: { wal: { sync(): Promise<void> }; relax: () => void; restore: () => void; restarting?: () => Promise<unknown> | undefined };

  constructor(
    private readonly db: Kysely<Database>,
    opts: { maxBatch?: number; native?: BetterSqlite3.Database; walSync?: (file: string) => Promise<void> } = {},
  ) {
    this.sqlite = dialectOf(db) === 'sqlite';
    this.maxBatch = opts.maxBatch ?? 64;
    const n = opts.native;
    if (this.sqlite && n) this.sp = { open: n.prepare('savepoint job_write'), release: n.prepare('release savepoint job_write'), rollback: n.prepare('rollback to savepoint job_write') };
    if (this.sqlite && n && !n.memory && n.name && String(n.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal') {
      const sync = Number(n.pragma('synchronous', { simple: true }));
      // FULL (2) or EXTRA (3): the fsync moves off the event loop; otherwise commits stay as configured
      // (not as statements prepared once: SQLite applies this pragma when it is COMPILED)
      // the WAL synced by the database's shared syncer (held handle, fdatasync, syncs shared with
      // the file's other writers), or by an injected function (tests: ordering, failure)
      // the checkpointer's WAL restart is waited for BEFORE the relax (the dialect's BEGIN would
      // wait for it after, src/cms/storage/open.ts, and a native writer running meanwhile — the
      // audit store — would restore the configured setting under this batch)
      if (sync >= 2) this.offloop = { wal: opts.walSync ? new CoalescedSync(() => opts.walSync!(`${n.name}-wal`)) : walSyncerOf(n), relax: () => n.pragma('synchronous = NORMAL'), restore: () => n.pragma(`synchronous = ${sync}`), restarting: walRestartGate(n) };
    }
  }

  private readonly maxBatch: number;
  /** SAVEPOINT statements prepared once on the native connection (the batch's transaction is on it). */
  private readonly sp?: Record<'open' | 'release' | 'rollback', BetterSqlite3.Statement>;

  private async savepoint(tx: Tx, op: 'open' | 'release' | 'rollback'): Promise<void> {
    if (this.sp) this.sp[op].run();
    else if (op === 'open') await sql`savepoint job_write`.execute(tx);
    else if (op === 'release') await sql`release savepoint job_write`.execute(tx);
    else await sql`rollback to savepoint job_write`.execute(tx);
  }

  /** Deferred batches committed so far, and how many of them a finished sync is known to cover (durable()). */
  private deferred = 0;
  private synced = 0;

  /** Run `fn` in a transaction (shared with concurrent callers on SQLite); resolves after COMMIT (and its sync, unless `deferSync`). */
  run<T>(fn: (tx: Tx) => Promise<T>, opts: RunOptions = {}): Promise<T> {
    if (!this.sqlite) return this.db.transaction().execute(fn);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject, ...(opts.deferSync ? { deferSync: true } : {}) });
      if (!this.flushing) {
        this.flushing = true;
        // one turn of the event loop lets concurrent requests join the batch
        setImmediate(() => void this.flush());
      }
    });
  }

  /**
   * Resolves once every batch committed before the call is durable: at once when no deferred
   * batch is waiting for a sync (or commits are durable by themselves), else after a WAL sync.
   * Rejects when that sync fails.
   */
  async durable(): Promise<void> {
    if (this.offloop && this.synced < this.deferred) await this.syncWal(this.offloop.wal);
  }

  /** A WAL sync started now: it covers every deferred batch committed before this call. */
  private async syncWal(wal: { sync(): Promise<void> }): Promise<void> {
    const mark = this.deferred;
    await wal.sync();
    this.synced = Math.max(this.synced, mark);
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.maxBatch);
        const outcomes: ({ ok: true; v: unknown } | { ok: false; e: unknown })[] = [];
        const writeAll = async (tx: Tx) => {
          // one write alone needs no savepoint: its error rolls the whole transaction back
          if (batch.length === 1) {
            outcomes.push({ ok: true, v: await batch[0]!.fn(tx) });
            return;
          }
          for (const q of batch) {
            await this.savepoint(tx, 'open');
            try {
              const v = await q.fn(tx);
              await this.savepoint(tx, 'release');
              outcomes.push({ ok: true, v });
            } catch (e) {
              await this.savepoint(tx, 'rollback');
              await this.savepoint(tx, 'release');
              outcomes.push({ ok: false, e });
            }
          }
        };
        try {
          const o = this.offloop;
          if (o) {
            await this.db.connection().execute(async (conn) => {
              const restart = o.restarting?.();
              if (restart) await restart;
              o.relax();
              try {
                await conn.transaction().execute(writeAll);
              } finally {
                o.restore();
              }
            });
            // the sync starts after this COMMIT, so it covers this batch and the deferred ones before it
            if (batch.every((q) => q.deferSync === true)) this.deferred++;
            else await this.syncWal(o.wal);
          } else await this.db.transaction().execute(writeAll);
        } catch (e) {
          // a failed COMMIT or fsync (or the single write's own error): nobody of the batch is durable
          for (const q of batch) q.reject(e);
          continue;
        }
        batch.forEach((q, i) => {
          const o = outcomes[i]!;
          if (o.ok) q.resolve(o.v);
          else q.reject(o.e);
        });
      }
    } finally {
      this.flushing = false;
    }
  }
}

// Group commit of station-job writes. On SQLite every COMMIT fsyncs the WAL (synchronous=FULL),
// and that fsync was the largest single cost of an installation (each application is three
// requests that each write: create, claim, receipt). Writes of concurrent requests are therefore
// queued and run in ONE transaction, each in its own SAVEPOINT: a write that throws is rolled back
// alone (its caller gets its error), the others commit together, and nobody is answered before
// the COMMIT returned — each caller sees exactly the durability of a transaction of its own.
// A failed COMMIT rejects every write of the batch (nothing of it is durable).
// PostgreSQL commits concurrently from a pool: there each write is simply its own transaction.
import { type Kysely, type Transaction, sql } from 'kysely';
import { type Database, dialectOf } from '../storage/index.js';

type Tx = Transaction<Database>;

interface Queued {
  fn: (tx: Tx) => Promise<unknown>;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export class GroupCommit {
  private readonly queue: Queued[] = [];
  private flushing = false;
  private readonly sqlite: boolean;

  constructor(
    private readonly db: Kysely<Database>,
    /** Writes per transaction at most. */
    private readonly maxBatch = 64,
  ) {
    this.sqlite = dialectOf(db) === 'sqlite';
  }

  /** Run `fn` in a transaction (shared with concurrent callers on SQLite); resolves after COMMIT. */
  run<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    if (!this.sqlite) return this.db.transaction().execute(fn);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushing) {
        this.flushing = true;
        // one turn of the event loop lets concurrent requests join the batch
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.maxBatch);
        const outcomes: ({ ok: true; v: unknown } | { ok: false; e: unknown })[] = [];
        try {
          await this.db.transaction().execute(async (tx) => {
            for (const q of batch) {
              await sql`savepoint job_write`.execute(tx);
              try {
                const v = await q.fn(tx);
                await sql`release savepoint job_write`.execute(tx);
                outcomes.push({ ok: true, v });
              } catch (e) {
                await sql`rollback to savepoint job_write`.execute(tx);
                await sql`release savepoint job_write`.execute(tx);
                outcomes.push({ ok: false, e });
              }
            }
          });
        } catch (e) {
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

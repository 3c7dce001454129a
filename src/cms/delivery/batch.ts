// Coalescing of the lookups made during one turn of the event loop into one call (DataLoader
// style). On PostgreSQL every key delivery's lookup was its own statement: one round trip, one
// pooled-connection checkout, one socket write and one parse of the answer per request — under
// load the CMS's main cost after the TLS records. The deliveries whose handlers run in the same
// turn of the event loop (the rate-limit answers of one Redis reply, the requests of one poll
// phase) now share ONE statement: the keys are collected until the loop's check phase
// (`setImmediate`, after every I/O callback of the turn and every microtask they queued), then
// handed to `run` together, at most `maxBatch` per call. Nothing is cached: every key is read by
// the call that follows its `load`, so every request still reads the database after it arrived
// (a change committed before a request is seen by that request). A call's failure (or an answer
// of the wrong length) rejects every waiter of that call, and no other.

type Waiter<K, R> = { key: K; resolve: (row: R | undefined) => void; reject: (e: unknown) => void };

export class Coalescer<K, R> {
  private queue: Waiter<K, R>[] = [];
  private scheduled = false;

  /**
   * `run(keys)` answers one entry per key, in the keys' order (undefined: nothing found).
   * `onBatch`, if given, is told the size of every call (counters for the benchmark / tests).
   */
  constructor(
    private readonly run: (keys: readonly K[]) => Promise<readonly (R | undefined)[]>,
    private readonly maxBatch = 128,
    private readonly onBatch?: (size: number) => void,
  ) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError('maxBatch must be a positive integer');
  }

  /** The entry for `key`, read by the next call (this turn's). */
  load(key: K): Promise<R | undefined> {
    return new Promise<R | undefined>((resolve, reject) => {
      this.queue.push({ key, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const all = this.queue;
    this.queue = [];
    if (all.length <= this.maxBatch) return this.dispatch(all);
    for (let i = 0; i < all.length; i += this.maxBatch) this.dispatch(all.slice(i, i + this.maxBatch));
  };

  private dispatch(waiters: Waiter<K, R>[]): void {
    this.onBatch?.(waiters.length);
    let p: Promise<readonly (R | undefined)[]>;
    try {
      p = this.run(waiters.map((w) => w.key));
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (rows) => {
        if (rows.length !== waiters.length) {
          const e = new Error(`batched lookup answered ${rows.length} entries for ${waiters.length} keys`);
          for (const w of waiters) w.reject(e);
          return;
        }
        for (let i = 0; i < waiters.length; i++) waiters[i]!.resolve(rows[i]);
      },
      (e: unknown) => {
        for (const w of waiters) w.reject(e);
      },
    );
  }
}

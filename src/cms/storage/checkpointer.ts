// WAL checkpoints off the event loop: ONE checkpointer thread per SQLite file in this process,
// whoever asks (as the WAL syncer of ./wal-sync.ts), and the one question every writer of the file
// asks before it takes the write lock: is the thread restarting the WAL right now?
//
// SQLite runs an automatic checkpoint inside the commit that takes the WAL past 1,000 pages — on
// the committing thread, i.e. the event loop: it copies ~4 MB of pages into the database file and
// fsyncs the WAL and the database (measured on this machine under load: commits of 10 rows p99.9
// 22 ms, max 168 ms with it; p99.9 4.4 ms without). Every request in flight waits behind such a
// commit. Here the automatic checkpoint of each connection that holds a lease is turned off and a
// worker thread with its own connection checkpoints every `intervalMs`:
// - a PASSIVE checkpoint copies the WAL's pages into the database without blocking anyone;
// - once the WAL holds `restartFrames` frames (default 16,384: 64 MB of 4 KB pages), a RESTART
//   checkpoint, which takes the write lock, copies what was committed during the PASSIVE one
//   (little), syncs, and waits for readers, so that the next commit writes the WAL from its
//   beginning again — over the blocks already allocated (the file keeps its size). PASSIVE alone
//   never let it restart under steady traffic: a restart needs a commit to find the WAL fully
//   copied, and a commit always came during the copy — the WAL grew without bound (100+ MB within
//   seconds of sequential deliveries), every commit appended to a growing file (block allocation;
//   each fdatasync then journals the new size), ~25% more CPU per lone audit batch than with
//   SQLite's own checkpoint. A RESTART holds the write lock for a copy and two syncs (a few ms),
//   so it runs once per `restartFrames`, not at every interval.
// While the worker holds (or waits for) the write lock, a flag in shared memory says so, and
// `walRestarting(file)` gives a promise of its end: writers wait for it asynchronously instead of
// in SQLite's busy handler, which would block the event loop. Every Kysely write on a SQLite
// connection asks it (src/cms/storage/open.ts: the BEGIN IMMEDIATE of each transaction and any
// write outside one), and so do the native batch paths (the audit store). The RESTART gives up
// after `restartWaitMs` (default 50 ms: its busy timeout, e.g. a transaction open on a connection
// across awaits) and is tried again at the next interval.
// The worker uses the `synchronous` setting of the connection that started it, so a checkpoint is
// as durable as before. If the worker fails or exits, the automatic checkpoint of every connection
// holding a lease is restored (and the next lease asked for starts a new thread).
import { createRequire } from 'node:module';
import { resolve as resolvePath } from 'node:path';
import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';

/** SQLite's default auto-checkpoint threshold (pages), restored when the checkpointer stops. */
export const AUTOCHECKPOINT_PAGES = 1000;

/** The checkpointer thread: its own connection to the file, a PASSIVE checkpoint every interval. */
const CHECKPOINTER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.lib);
const db = new Database(workerData.file, { fileMustExist: true });
const flag = new Int32Array(workerData.flag);
db.pragma('busy_timeout = ' + workerData.restartWaitMs);
db.pragma('synchronous = ' + workerData.sync);
db.pragma('wal_autocheckpoint = 0');
const ck = db.prepare('pragma wal_checkpoint(PASSIVE)');
const rs = db.prepare('pragma wal_checkpoint(RESTART)');
const timer = setInterval(() => {
  try {
    if (ck.get().log >= workerData.restartFrames) {
      Atomics.store(flag, 0, 1);
      try { rs.get(); } finally { Atomics.store(flag, 0, 0); Atomics.notify(flag, 0); }
    }
  } catch (e) { parentPort.postMessage({ error: String(e && e.message) }); }
}, workerData.intervalMs);
parentPort.on('message', () => { clearInterval(timer); db.close(); parentPort.close(); });
`;

export interface CheckpointerOptions {
  /** A PASSIVE checkpoint every this many ms. */
  intervalMs: number;
  /** Restart the WAL from its beginning once it holds this many frames (default 16,384). */
  restartFrames?: number;
  /** How long a RESTART waits for the write lock and for readers before it gives up until the next interval (default 50 ms). */
  restartWaitMs?: number;
}

/** A holder's share of its file's checkpointer. */
export interface CheckpointerLease {
  /** While the thread restarts the WAL: resolves when it is done (at most ~1 s); otherwise undefined. */
  restarting(): Promise<unknown> | undefined;
  /**
   * Give the lease back (idempotent): the last one stops the thread; a connection without a lease
   * checkpoints itself again. Resolves once the thread has closed its connection to the file when
   * this release stopped it (so the file can be removed or copied), at once otherwise.
   */
  release(): Promise<void>;
}

// Atomics.waitAsync (Node >= 16; typed from lib ES2024, this project compiles against ES2023)
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, ms: number): { async: boolean; value: unknown } }).waitAsync;

class FileCheckpointer {
  private readonly worker: Worker;
  stopped = false;
  /** [0] = 1 while the worker's RESTART checkpoint holds (or waits for) the write lock. */
  readonly flag = new Int32Array(new SharedArrayBuffer(4));
  /** The connections whose automatic checkpoint is off, with their number of leases. */
  private readonly owners = new Map<BetterSqlite3.Database, number>();
  /** Resolves when the thread has exited (its connection closed). */
  readonly exited: Promise<void>;

  constructor(
    readonly file: string,
    sync: number,
    o: CheckpointerOptions,
    private readonly onStop: () => void,
  ) {
    this.worker = new Worker(CHECKPOINTER, {
      eval: true,
      workerData: {
        lib: createRequire(import.meta.url).resolve('better-sqlite3'),
        file,
        sync,
        intervalMs: o.intervalMs,
        restartFrames: o.restartFrames ?? 16_384,
        flag: this.flag.buffer,
        restartWaitMs: o.restartWaitMs ?? 50,
      },
    });
    this.worker.unref();
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    const fallBack = () => this.stop();
    this.worker.once('error', fallBack);
    this.worker.once('exit', fallBack);
    this.worker.on('message', fallBack); // a failed checkpoint: the connections checkpoint themselves again
  }

  restarting(): Promise<unknown> | undefined {
    if (this.stopped || Atomics.load(this.flag, 0) === 0) return undefined;
    const w = waitAsync(this.flag, 0, 1, 1000);
    return w.async ? (w.value as Promise<unknown>) : undefined;
  }

  lease(native: BetterSqlite3.Database): CheckpointerLease {
    native.pragma('wal_autocheckpoint = 0');
    this.owners.set(native, (this.owners.get(native) ?? 0) + 1);
    let held = true;
    return {
      restarting: () => this.restarting(),
      release: async () => {
        if (!held) return;
        held = false;
        const n = (this.owners.get(native) ?? 1) - 1;
        if (n > 0) {
          this.owners.set(native, n);
          return;
        }
        this.owners.delete(native);
        autocheckpoint(native);
        if (this.owners.size === 0) {
          this.stop();
          await this.exited;
        }
      },
    };
  }

  /** Stop the thread (it closes its connection); every connection with a lease checkpoints itself again. */
  private stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.onStop();
    for (const n of this.owners.keys()) autocheckpoint(n);
    // referenced from here on: a release awaiting `exited` keeps the process alive until the thread
    // is gone (an unreferenced thread would let the event loop empty under that await)
    this.worker.ref();
    try {
      this.worker.postMessage('close');
    } catch {
      /* already gone */
    }
  }
}

function autocheckpoint(native: BetterSqlite3.Database): void {
  if (native.open) native.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
}

const running = new Map<string, FileCheckpointer>();

const fileOf = (native: BetterSqlite3.Database) => resolvePath(native.name);

/**
 * A lease on the checkpointer thread of `native`'s file (a file database in WAL mode), started by
 * the first lease asked for (with its options and the connection's `synchronous` setting); this
 * connection's automatic checkpoint is off until the lease is released or the thread fails.
 */
export function leaseWalCheckpointer(native: BetterSqlite3.Database, o: CheckpointerOptions): CheckpointerLease {
  if (native.memory || !native.name) throw new Error('leaseWalCheckpointer: a file database is required');
  const file = fileOf(native);
  let c = running.get(file);
  if (!c) {
    const sync = Number(native.pragma('synchronous', { simple: true }));
    const created: FileCheckpointer = new FileCheckpointer(file, sync, o, () => {
      if (running.get(file) === created) running.delete(file);
    });
    c = created;
    running.set(file, c);
  }
  return c.lease(native);
}

/**
 * The question every writer of a SQLite file asks before it takes the write lock (undefined for an
 * in-memory database): a promise while this process's checkpointer thread of the file is
 * restarting the WAL (wait for it, not in SQLite's busy handler on the event loop), else undefined.
 */
export function walRestartGate(native: BetterSqlite3.Database): (() => Promise<unknown> | undefined) | undefined {
  if (native.memory || !native.name) return undefined;
  const file = fileOf(native);
  return () => running.get(file)?.restarting();
}

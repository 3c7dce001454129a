// One coalescing syncer per SQLite `-wal` file, shared by every writer of that database in this
// process (the station jobs' group commit, src/cms/jobs/commit.ts, and the audit store,
// src/cms/audit/store.ts). Writers that commit with synchronous relaxed to NORMAL make their frames durable
// before answering anyone by syncing the WAL file here, off the event loop (libuv's thread pool):
//
// - the file is opened ONCE ('r+': some platforms refuse to flush a read-only handle) and held;
//   before each sync `fstat` checks it was not unlinked (nlink 0: reopened by path, so a sync never
//   goes to a stale inode); a failed sync drops the handle (the next one reopens). The handle is
//   closed once the database's connections are closed, or after a while without syncs;
// - `fdatasync`: the written frames and the metadata needed to read them back (the size when the
//   WAL grew), not a timestamp-only inode change (the WAL is overwritten in place after each checkpoint;
//   PostgreSQL's default wal_sync_method on Linux);
// - coalesced: a caller is answered by the first sync that STARTED after it asked — one in flight
//   at a time, everyone who asks meanwhile shares the next one. Its frames were written before it
//   asked, so that sync covers them. Two writers of one file (the jobs' commit and the audit log's)
//   thus share syncs instead of each syncing the same file on its own.
//
// Each sync costs process CPU (kernel time in the thread pool counts, ~0.2 ms here), and the open +
// close of a per-sync handle two more thread-pool round trips.
import type BetterSqlite3 from 'better-sqlite3';
import { close as fsClose, closeSync, fdatasync, fstatSync, open as fsOpen } from 'node:fs';
import { resolve as resolvePath } from 'node:path';

/** How often an idle syncer checks whether to close its handle, and after how long idle it does. */
const CHECK_MS = 1_000;
const IDLE_MS = 10_000;

export interface WalSyncer {
  /** The `-wal` file synced. */
  readonly file: string;
  /** Resolves once a sync that started after this call has completed (rejects if that sync failed). */
  sync(): Promise<void>;
  /** Whether a sync is in flight (for any writer of the file). */
  readonly busy: boolean;
  /** Close the held handle now (the next sync reopens it), e.g. when a store closes. */
  drop(): void;
}

/**
 * `run` coalesced: a caller is answered by the first run that STARTED after it asked (one in flight
 * at a time; everyone who asks meanwhile shares the next one).
 */
export class CoalescedSync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly run: () => Promise<void>) {}

  /** Whether a run is in flight. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  sync(): Promise<void> {
    if (!this.running) return this.start();
    // one in flight: it may have started before the caller's commit; then one more (shared)
    this.next ??= this.running.then(
      () => this.start(),
      () => this.start(),
    );
    return this.next;
  }

  private start(): Promise<void> {
    this.next = undefined;
    const p = this.run();
    this.running = p;
    const clear = () => {
      if (this.running === p) this.running = undefined;
    };
    p.then(clear, clear);
    return p;
  }
}

class SharedWalSyncer implements WalSyncer {
  private fd: number | undefined;
  private readonly coalesced = new CoalescedSync(() => this.syncNow());
  private lastUse = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The connections of the database (the handle is closed when none is open). */
  readonly owners = new Set<BetterSqlite3.Database>();

  constructor(
    readonly file: string,
    private readonly onDrop: () => void,
  ) {}

  get busy(): boolean {
    return this.coalesced.busy;
  }

  sync(): Promise<void> {
    return this.coalesced.sync();
  }

  private async syncNow(): Promise<void> {
    this.lastUse = Date.now();
    let fd = this.fd;
    if (fd !== undefined && fstatSync(fd).nlink === 0) {
      this.closeFd();
      fd = undefined;
    }
    if (fd === undefined) {
      fd = await new Promise<number>((resolve, reject) => fsOpen(this.file, 'r+', (err, f) => (err ? reject(err) : resolve(f))));
      // syncs never overlap (one in flight), but be safe
      if (this.fd !== undefined) fsClose(fd, () => undefined);
      else this.fd = fd;
      fd = this.fd;
      this.watch();
    }
    const held = fd;
    await new Promise<void>((resolve, reject) =>
      fdatasync(held, (e) => {
        if (!e) return resolve();
        if (this.fd === held) this.closeFd();
        reject(e);
      }),
    );
  }

  /** While the handle is held: close it when the database is closed or the syncer is idle. */
  private watch(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const n of this.owners) if (!n.open) this.owners.delete(n);
      if (this.coalesced.busy) return;
      if (this.owners.size === 0 || Date.now() - this.lastUse > IDLE_MS) this.drop();
    }, CHECK_MS);
    this.timer.unref();
  }

  private closeFd(): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return;
    try {
      closeSync(fd);
    } catch {
      /* already invalid */
    }
  }

  /** Close the handle now (the next sync reopens it); forgotten by the registry when no connection is left. */
  drop(): void {
    this.closeFd();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.owners.size === 0) this.onDrop();
  }
}

const syncers = new Map<string, SharedWalSyncer>();

/**
 * The syncer of the `-wal` file of `native`'s database (a file database in WAL mode): one per file
 * in this process, whoever asks. Every writer that relaxes synchronous for its commits and syncs
 * the WAL itself uses it (the station jobs' group commit and the audit store), so their commits of
 * the same moment share one sync.
 */
export function walSyncerOf(native: BetterSqlite3.Database): WalSyncer {
  if (native.memory || !native.name) throw new Error('walSyncerOf: a file database is required');
  const file = `${resolvePath(native.name)}-wal`;
  let s = syncers.get(file);
  if (!s) {
    const created: SharedWalSyncer = new SharedWalSyncer(file, () => {
      if (syncers.get(file) === created) syncers.delete(file);
    });
    s = created;
    syncers.set(file, s);
  }
  s.owners.add(native);
  return s;
}

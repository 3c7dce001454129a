// The audit log service: a group-commit writer (bounded queue, one transaction per batch,
// append() resolves only once the entry is durable, fails closed), the in-memory Merkle tree
// over the stored leaf hashes, signed checkpoints (on a schedule and on demand), proofs and
// per-tenant views. It implements custody's AuditSink (appendAll: several events in one
// transaction, all or none — recordAll).
import type { AuditEvent, AuditSink } from '../../custody/audit.js';
import { type Checkpoint, checkpointBody, signedNote } from './checkpoint.js';
import { hex, utf8 } from './crypto.js';
import { fromCustodyEvent } from './custody-event.js';
import { type AuditEntry, AuditError, type AuditInput, canonicalEntry, normalizeInput, withIndex } from './entry.js';
import { leafHashOfText } from './merkle.js';
import { nodeAuditCrypto } from './node-crypto.js';
import type { CheckpointSigner } from './signer.js';
import type { AppendOptions, AuditStore, EntryQuery, StoredCheckpoint } from './store.js';
import { MerkleTree } from './tree.js';

export interface AuditLogOptions {
  store: AuditStore;
  signer: CheckpointSigner;
  /** Checkpoint origin line, e.g. "cms.example.org/audit". */
  origin: string;
  /** Entries waiting at most (default 10,000); beyond it append() rejects (backpressure). */
  maxQueue?: number;
  /** Entries per transaction at most (default 2,000). */
  maxBatch?: number;
  /** Sign a checkpoint every so often when the log has grown (0 = only on demand). */
  checkpointIntervalMs?: number;
  /** Called after every committed batch (alerts); never awaited, never blocks appends. */
  onCommitted?: (entries: AuditEntry[]) => void;
  /** Called after every batch commit with its size and duration (metrics); must not throw. */
  onBatch?: (entries: number, ms: number) => void;
  now?: () => number;
}

export interface AuditHealth {
  status: 'ok' | 'degraded';
  reason?: string;
  queued: number;
  treeSize: number;
  lastCommitAt?: number;
  lastCheckpointSize?: number;
}

export interface InclusionProof {
  index: number;
  treeSize: number;
  hashes: string[];
}

export interface ViewEntry {
  entry: AuditEntry;
  leafHash: string;
  proof: InclusionProof;
}

interface Pending {
  e: Omit<AuditEntry, 'index'>;
  resolve(e: AuditEntry): void;
  reject(err: Error): void;
  /** Set on every entry of a recordAll unit (the same object): the flush never splits one across batches. */
  unit?: object;
  /** record(…, { deferSync: true }): a batch of such entries only is appended with AppendOptions.deferSync. */
  deferSync?: boolean;
}

export interface RecordOptions {
  /**
   * Resolve once the entry is committed (indexed, in the tree), not yet necessarily durable: it
   * becomes durable at the latest when a later record() without this option resolves (the
   * store's AppendOptions.deferSync). For a caller that records several chunks and acknowledges
   * nothing before its last, durable, record resolved (src/cms/baton/service.ts): one sync for
   * the whole instead of one per chunk. A batch that holds any other entry is durable as usual.
   */
  deferSync?: boolean;
}

function nothing(): void {}

const DEFER_SYNC: AppendOptions = { deferSync: true };

export class AuditLog implements AuditSink {
  private readonly tree = new MerkleTree(nodeAuditCrypto);
  private readonly queue: Pending[] = [];
  private flushing = false;
  private closed = false;
  private failure?: string;
  private lastCommitAt?: number;
  private lastCheckpoint?: StoredCheckpoint;
  private timer?: NodeJS.Timeout;
  private treeChain: Promise<unknown> = Promise.resolve();
  /** Tree operations queued or running under withTree (0: the tree is idle). */
  private treeBusy = 0;
  private idle: (() => void)[] = [];
  private readonly maxQueue: number;
  private readonly maxBatch: number;
  private readonly now: () => number;

  private constructor(private readonly o: AuditLogOptions) {
    this.maxQueue = o.maxQueue ?? 10_000;
    this.maxBatch = o.maxBatch ?? 2_000;
    this.now = o.now ?? Date.now;
  }

  /** Open the log: load the leaf hashes into the tree, start the checkpoint schedule. */
  static async open(options: AuditLogOptions): Promise<AuditLog> {
    if (!options.origin || /\n/.test(options.origin)) throw new AuditError('ERR_AUDIT_INPUT', 'origin must be one non-empty line');
    const log = new AuditLog(options);
    await log.sync();
    log.lastCheckpoint = await options.store.latestCheckpoint();
    if (options.checkpointIntervalMs && options.checkpointIntervalMs > 0) {
      log.timer = setInterval(() => {
        if (log.lastCheckpoint?.size !== log.tree.size || log.tree.size === 0) log.checkpoint().catch(() => undefined);
      }, options.checkpointIntervalMs);
      log.timer.unref();
    }
    return log;
  }

  get origin(): string {
    return this.o.origin;
  }

  get vkey(): string {
    return this.o.signer.vkey;
  }

  /** Number of leaves this process knows of (call sync() to catch up with other processes). */
  get size(): number {
    return this.tree.size;
  }

  /** custody's AuditSink: durable when it resolves; rejects (fail closed) otherwise. */
  async append(event: AuditEvent): Promise<void> {
    await this.record(fromCustodyEvent(event));
  }

  /** custody's AuditSink, all or nothing: every event durable (one transaction) when it resolves, none when it rejects. */
  appendAll(events: AuditEvent[]): Promise<void> {
    // one event (every key delivery's custody.seal): a unit of one entry is a plain record() —
    // the same checks, the same queue, never split — without recordAll's per-unit closures and arrays
    if (Array.isArray(events) && events.length === 1 && this.maxQueue >= 1) {
      let input: AuditInput;
      try {
        input = fromCustodyEvent(events[0]!);
      } catch (err) {
        return Promise.reject(new AuditError('ERR_AUDIT_INPUT', `custody event could not be converted: ${(err as Error).message}`));
      }
      return this.record(input).then(nothing);
    }
    return this.appendUnit(events);
  }

  private async appendUnit(events: AuditEvent[]): Promise<void> {
    let inputs: AuditInput[];
    try {
      inputs = events.map(fromCustodyEvent);
    } catch (err) {
      throw new AuditError('ERR_AUDIT_INPUT', `custody event could not be converted: ${(err as Error).message}`);
    }
    await this.recordAll(inputs);
  }

  /**
   * Append one entry. Resolves with the stored entry (its index) once it is durable (see
   * RecordOptions.deferSync for the exception a caller may ask for); rejects
   * with ERR_AUDIT_INPUT / ERR_AUDIT_KEY_MATERIAL (bad input, nothing written),
   * ERR_AUDIT_BACKPRESSURE (queue full), ERR_AUDIT_UNAVAILABLE (the store failed) or
   * ERR_AUDIT_CLOSED.
   */
  record(input: AuditInput, opts?: RecordOptions): Promise<AuditEntry> {
    if (this.closed) return Promise.reject(new AuditError('ERR_AUDIT_CLOSED', 'the audit log is closed'));
    let e: Omit<AuditEntry, 'index'>;
    try {
      e = normalizeInput(input, this.now());
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(new AuditError('ERR_AUDIT_BACKPRESSURE', `audit queue full (${this.maxQueue} entries waiting)`));
    }
    return new Promise<AuditEntry>((resolve, reject) => {
      this.queue.push(opts?.deferSync ? { e, resolve, reject, deferSync: true } : { e, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /**
   * Append several entries as ONE unit: all committed in one transaction (consecutive indexes,
   * never split across group-commit batches; a unit larger than maxBatch is a batch of its own),
   * or none. Every input is validated first and the queue's capacity checked for all of them: bad
   * input (ERR_AUDIT_INPUT / ERR_AUDIT_KEY_MATERIAL) or a full queue (ERR_AUDIT_BACKPRESSURE)
   * rejects the whole unit with nothing queued. Resolves with the stored entries in input order;
   * a store failure rejects the unit (ERR_AUDIT_UNAVAILABLE) and none of it is stored.
   */
  recordAll(inputs: readonly AuditInput[]): Promise<AuditEntry[]> {
    if (this.closed) return Promise.reject(new AuditError('ERR_AUDIT_CLOSED', 'the audit log is closed'));
    if (!Array.isArray(inputs)) return Promise.reject(new AuditError('ERR_AUDIT_INPUT', 'recordAll takes an array of entries'));
    const n = inputs.length;
    if (n === 0) return Promise.resolve([]);
    if (n > this.maxQueue) return Promise.reject(new AuditError('ERR_AUDIT_INPUT', `a unit of ${n} entries exceeds the audit queue (${this.maxQueue})`));
    const es: Omit<AuditEntry, 'index'>[] = new Array(n);
    const now = this.now();
    try {
      for (let i = 0; i < n; i++) es[i] = normalizeInput(inputs[i]!, now);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (this.queue.length + n > this.maxQueue) {
      return Promise.reject(new AuditError('ERR_AUDIT_BACKPRESSURE', `audit queue full (${this.queue.length} entries waiting, ${n} more asked, ${this.maxQueue} at most)`));
    }
    return new Promise<AuditEntry[]>((resolve, reject) => {
      const out: AuditEntry[] = new Array(n);
      let done = 0;
      let failed = false;
      const unit = {};
      const fail = (err: Error) => {
        if (failed) return;
        failed = true;
        reject(err);
      };
      for (let i = 0; i < n; i++) {
        this.queue.push({
          e: es[i]!,
          unit,
          resolve: (e) => {
            out[i] = e;
            if (++done === n && !failed) resolve(out);
          },
          reject: fail,
        });
      }
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** How many queued entries the next batch takes: up to maxBatch, never splitting a unit (a unit larger than maxBatch alone). */
  private batchCut(): number {
    const q = this.queue;
    let k = Math.min(q.length, this.maxBatch);
    const u = q[k - 1]!.unit;
    if (u === undefined || k === q.length || q[k]!.unit !== u) return k; // no unit straddles the cut
    while (k > 0 && q[k - 1]!.unit === u) k--; // back to the unit's first entry
    if (k > 0) return k; // the unit goes in the next batch
    k = this.maxBatch; // the unit starts the queue and is larger than maxBatch: all of it, alone
    while (k < q.length && q[k]!.unit === u) k++;
    return k;
  }

  private async flush(): Promise<void> {
    try {
      // the first batch: flush() itself was started from setImmediate, so every append of the
      // event-loop turn that queued it has joined (one turn, not two, before a lone entry commits)
      let first = true;
      while (this.queue.length) {
        // Yield to the event loop between batches: with a synchronous driver (better-sqlite3)
        // the whole commit path is microtasks, and a busy writer would otherwise starve timers
        // and I/O. It also lets more appenders join the next batch (group commit).
        if (!first) await new Promise<void>((r) => setImmediate(r));
        first = false;
        const batch = this.queue.splice(0, this.batchCut());
        let start: number;
        let leaves: Uint8Array[];
        const t0 = performance.now();
        try {
          ({ start, leaves } = await this.o.store.append(
            batch.map((b) => b.e),
            (full) => leafHashOfText(nodeAuditCrypto, canonicalEntry(full)),
            batch.every((b) => b.deferSync === true) ? DEFER_SYNC : undefined,
          ));
        } catch (err) {
          this.failure = `audit store failed: ${(err as Error).message}`;
          const e = new AuditError('ERR_AUDIT_UNAVAILABLE', 'audit entry could not be made durable (operation refused)', { cause: err });
          for (const b of batch) b.reject(e);
          continue;
        }
        this.failure = undefined;
        this.lastCommitAt = this.now();
        try {
          this.o.onBatch?.(batch.length, performance.now() - t0);
        } catch {
          /* metrics never fail an append */
        }
        if (this.treeBusy === 0 && start === this.tree.size) {
          // no tree operation queued or running (each runs under withTree): appending here, in one
          // synchronous stretch, is what withTree would run next — without its promise round trip
          try {
            for (const l of leaves) this.tree.append(l);
          } catch {
            // as below: the entries are durable, the tree catches up at the next sync()
          }
        } else {
          try {
            await this.withTree(async () => {
              if (start === this.tree.size) for (const l of leaves) this.tree.append(l);
              else await this.syncUnlocked();
            });
          } catch {
            // the entries ARE durable; the in-memory tree catches up at the next sync()
          }
        }
        const stored = batch.map((b, i) => withIndex(b.e, start + i));
        batch.forEach((b, i) => b.resolve(stored[i]!));
        if (this.o.onCommitted) {
          try {
            this.o.onCommitted(stored);
          } catch {
            /* alerting never blocks or fails an append */
          }
        }
      }
    } finally {
      this.flushing = false;
      const waiters = this.idle.splice(0);
      for (const w of waiters) w();
    }
  }

  private withTree<T>(fn: () => Promise<T>): Promise<T> {
    this.treeBusy++;
    const p = this.treeChain.then(fn, fn);
    this.treeChain = p.catch(() => undefined).finally(() => this.treeBusy--);
    return p;
  }

  private async syncUnlocked(): Promise<void> {
    const end = await this.o.store.size();
    const PAGE = 50_000;
    for (let from = this.tree.size; from < end; from += PAGE) {
      const rows = await this.o.store.leaves(from, Math.min(end, from + PAGE));
      for (const r of rows) {
        if (r.idx !== this.tree.size) throw new AuditError('ERR_AUDIT_UNAVAILABLE', `leaf ${this.tree.size} is missing from the store`);
        this.tree.append(r.leaf);
      }
    }
  }

  /** Catch up with entries other processes appended. */
  sync(): Promise<void> {
    return this.withTree(() => this.syncUnlocked());
  }

  /** Resolves when everything queued so far has been committed or rejected. */
  async drain(): Promise<void> {
    if (!this.flushing && this.queue.length === 0) return;
    await new Promise<void>((r) => this.idle.push(r));
  }

  health(): AuditHealth {
    const base = {
      queued: this.queue.length,
      treeSize: this.tree.size,
      ...(this.lastCommitAt !== undefined ? { lastCommitAt: this.lastCommitAt } : {}),
      ...(this.lastCheckpoint ? { lastCheckpointSize: this.lastCheckpoint.size } : {}),
    };
    if (this.closed) return { status: 'degraded', reason: 'closed', ...base };
    if (this.failure) return { status: 'degraded', reason: this.failure, ...base };
    if (this.queue.length >= this.maxQueue * 0.8) return { status: 'degraded', reason: `queue ${this.queue.length}/${this.maxQueue}`, ...base };
    return { status: 'ok', ...base };
  }

  /** Sign (or return the existing) checkpoint for the current tree size. */
  async checkpoint(): Promise<StoredCheckpoint> {
    return this.withTree(async () => {
      await this.syncUnlocked();
      const size = this.tree.size;
      const latest = await this.o.store.latestCheckpoint();
      if (latest && latest.size === size) return (this.lastCheckpoint = latest);
      const cp: Checkpoint = { origin: this.o.origin, size, root: this.tree.root(size) };
      const body = checkpointBody(cp);
      const sig = await this.o.signer.sign(utf8.encode(body));
      const note = signedNote(body, this.o.signer.name, this.o.signer.keyHash, sig);
      await this.o.store.saveCheckpoint({ size, root: cp.root, note, createdAt: this.now() });
      const saved = (await this.o.store.checkpointAt(size))!;
      return (this.lastCheckpoint = saved);
    });
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    return this.o.store.latestCheckpoint();
  }

  checkpoints(): Promise<StoredCheckpoint[]> {
    return this.o.store.checkpoints();
  }

  /** Inclusion proof of entry `index` in the tree of `treeSize` leaves (default: latest checkpoint). */
  async inclusionProof(index: number, treeSize?: number): Promise<InclusionProof> {
    const size = treeSize ?? (await this.latestCheckpoint())?.size;
    if (size === undefined) throw new AuditError('ERR_AUDIT_PROOF', 'no checkpoint yet');
    if (size > this.tree.size) await this.sync();
    try {
      return { index, treeSize: size, hashes: this.tree.inclusionProof(index, size).map(hex) };
    } catch (e) {
      throw new AuditError('ERR_AUDIT_PROOF', (e as Error).message);
    }
  }

  /** Consistency proof between tree sizes `from` and `to`. */
  async consistencyProof(from: number, to: number): Promise<string[]> {
    if (to > this.tree.size) await this.sync();
    try {
      return this.tree.consistencyProof(from, to).map(hex);
    } catch (e) {
      throw new AuditError('ERR_AUDIT_PROOF', (e as Error).message);
    }
  }

  /** Root hash of the first `size` leaves. */
  root(size = this.tree.size): Uint8Array {
    return this.tree.root(size);
  }

  leafHash(index: number): Uint8Array {
    return this.tree.leaf(index);
  }

  /** Entries matching `q` (bodies only). */
  entries(q: EntryQuery): Promise<AuditEntry[]> {
    return this.o.store.entries(q);
  }

  /**
   * A tenant's view: its entries (by tenant and/or AIDs), each with its inclusion proof
   * against `checkpoint` (default: the latest, signed now if the log has grown).
   */
  async view(q: { tenant?: string; aids?: string[]; from?: number; limit?: number }, checkpoint?: StoredCheckpoint): Promise<{ checkpoint: StoredCheckpoint; entries: ViewEntry[] }> {
    if (q.tenant === undefined && !q.aids?.length) throw new AuditError('ERR_AUDIT_INPUT', 'a view needs a tenant or AIDs');
    const cp = checkpoint ?? (await this.checkpoint());
    if (cp.size > this.tree.size) await this.sync();
    const rows = await this.o.store.entries({ ...q, to: cp.size });
    return {
      checkpoint: cp,
      entries: rows.map((entry) => ({
        entry,
        leafHash: hex(this.tree.leaf(entry.index)),
        proof: { index: entry.index, treeSize: cp.size, hashes: this.tree.inclusionProof(entry.index, cp.size).map(hex) },
      })),
    };
  }

  /** Stop accepting entries, commit what is queued, stop the schedule. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.closed = true;
    await this.drain();
    await this.o.store.close?.();
  }
}

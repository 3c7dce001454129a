// The audit baton: the reader's local, append-only, hash-chained log of every operation.
//
// - One JSON line per entry in `<dir>/baton.log`; each entry's `hash` = SHA-256 over a fixed
//   serialisation of its fields and the previous entry's hash (`prev`; the first entry's prev is
//   64 zeros). The CMS recomputes the same hash (src/cms/baton/chain.ts, same vector).
// - `append` write()s the whole line (synchronously, to the OS page cache) BEFORE it returns: an
//   operation is reported done only once its entry is in the file. A process crash (kill -9) loses
//   nothing that was write()n. Flushing to the device (fdatasync) depends on the durability mode:
//     'always'  fdatasync inside every append (strict; the pre-2026-11 behaviour, 1.5-5 ms each on
//               a virtual disk)
//     'group'   (default) fdatasync group-committed in the background (libuv thread pool): at most
//               `groupMs` (50 ms) after the first unflushed entry, or at once after `groupEntries`
//               (64) unflushed entries; `flush()` makes everything written so far durable (the agent
//               calls it before every upload to the CMS), `close()` flushes synchronously. A POWER
//               LOSS can lose at most the last window of entries; none of them was ever uploaded.
//     'never'   no fdatasync at all (benchmarks of the rest only; not a durable mode)
//   A crash mid-write leaves at most a torn last line, which was never reported; `open` drops it.
// - Unclean shutdown: `<dir>/baton.open` exists while a baton is open and is removed by `close()`;
//   `open` reports `uncleanShutdown` when it finds it (the runtime then records it in the chain, so
//   the CMS sees every restart that may have lost a group-commit window).
// - Sync state: `<dir>/baton.ack` holds the highest sequence number the CMS has acknowledged
//   (written to a temporary file, fsync'd, renamed). A crash after the CMS stored a batch but
//   before the ack was written only means the batch is sent again; the CMS is idempotent by
//   sequence number (same seq + same hash = already stored), so nothing is lost or doubled.
// - Memory: only entries the CMS has not acknowledged stay in memory (plus the hash of the last
//   acknowledged one); `all()` reads the file. A reader running for months holds its unsent tail,
//   not every operation it ever did (the heap, and with it every major GC pause, stays small).
import { promises as fsp } from 'node:fs';
import { closeSync, existsSync, fdatasync, fdatasyncSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '../core/crypto/hash.js';
import { ReaderError } from './errors.js';

export const GENESIS = '0'.repeat(64);
const DOMAIN = 'dcms-baton-v1\n';

/** What an entry records (the fields the CMS verifies). */
export interface BatonFields {
  /** Unix milliseconds. */
  time: number;
  readerId: string;
  /** Upper-case hex, '' when no card is involved (e.g. a sync). */
  cardUid: string;
  /** 6 hex digits, '' when none. */
  aid: string;
  /** -1 when no key is involved. */
  keyNo: number;
  /** -1 when unknown. */
  keyVersion: number;
  /** e.g. 'access-check', 'purse-debit', 'library-loan', 'job:install'. */
  op: string;
  /** e.g. 'granted', 'denied:expired', 'ok', 'error:ERR_…'. */
  result: string;
}

export interface BatonEntry extends BatonFields {
  seq: number;
  prev: string;
  hash: string;
}

/** The chain hash of an entry (hex). Same definition as src/cms/baton/chain.ts. */
export function batonHash(seq: number, f: BatonFields, prev: string): string {
  return sha256Hex(DOMAIN + JSON.stringify([seq, f.time, f.readerId, f.cardUid, f.aid, f.keyNo, f.keyVersion, f.op, f.result, prev]));
}

function checkFields(f: BatonFields): void {
  const ok =
    Number.isSafeInteger(f.time) &&
    typeof f.readerId === 'string' &&
    typeof f.cardUid === 'string' &&
    /^([0-9A-F]{2})*$/.test(f.cardUid) &&
    /^([0-9A-F]{6})?$/.test(f.aid) &&
    Number.isInteger(f.keyNo) &&
    f.keyNo >= -1 &&
    f.keyNo <= 13 &&
    Number.isInteger(f.keyVersion) &&
    f.keyVersion >= -1 &&
    f.keyVersion <= 255 &&
    typeof f.op === 'string' &&
    f.op.length > 0 &&
    f.op.length <= 64 &&
    typeof f.result === 'string' &&
    f.result.length > 0 &&
    f.result.length <= 128;
  if (!ok) throw new ReaderError('ERR_READER_CONFIG', 'malformed baton entry fields');
}

function parseEntry(line: string): BatonEntry | undefined {
  try {
    const e = JSON.parse(line) as BatonEntry;
    if (typeof e !== 'object' || e === null || !Number.isSafeInteger(e.seq) || typeof e.prev !== 'string' || typeof e.hash !== 'string') return undefined;
    return e;
  } catch {
    return undefined;
  }
}

/** How appends reach the device; see the header. */
export type FsyncMode = 'always' | 'group' | 'never';
export const FSYNC_MODES: readonly FsyncMode[] = ['always', 'group', 'never'];
export const DEFAULT_FSYNC_MODE: FsyncMode = 'group';

export interface BatonOptions {
  /** Durability mode (default 'group'); `true` = 'always', `false` = 'never' (older callers). */
  fsync?: FsyncMode | boolean;
  /** Group commit: the longest an entry stays un-fdatasync'd (default 50 ms). */
  groupMs?: number;
  /** Group commit: fdatasync at once after this many unflushed entries (default 64). */
  groupEntries?: number;
}

/**
 * The clean-shutdown marker: absent (the last holder closed cleanly), 'live' (held by another
 * running process, e.g. `reader status` while `reader run` runs: not ours to judge or remove), or
 * 'stale' (its holder is gone, or it is this process's own from a baton never closed).
 */
function markerState(marker: string): 'absent' | 'live' | 'stale' {
  if (!existsSync(marker)) return 'absent';
  const pid = Number.parseInt(readFileSync(marker, 'utf8'), 10);
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return 'stale';
  try {
    process.kill(pid, 0);
    return 'live';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? 'live' : 'stale';
  }
}

export class AuditBaton {
  private fd: number;
  /** The entries after `base` (the not yet acknowledged ones, once trimmed): entries[i].seq = base + i + 1. */
  private entries: BatonEntry[];
  private base = 0;
  private baseHash = GENESIS;
  private ackSeq: number;
  /** The hash of entry `ackSeq` (GENESIS for 0). */
  private ackHash: string;
  /** The acknowledgement the baton.ack file holds, and the background writer of newer ones. */
  private ackOnDisk: number;
  private ackWriting: Promise<void> | undefined;
  readonly mode: FsyncMode;
  private readonly groupMs: number;
  private readonly groupEntries: number;
  /** Highest seq known to be on the device (fdatasync'd) — or, in 'never' mode, written. */
  private durableSeq: number;
  /** A background fdatasync in flight (it covers every entry up to `target`). */
  private inflight: { target: number; done: Promise<void> } | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** A background fdatasync failed: durability is unknown; appends and flushes refuse. */
  private syncError: unknown;
  /** close() was called while a background fdatasync was in flight: its callback closes `closeFd`. */
  private closeFd = -1;
  /** The previous process did not close the baton (crash or power loss). */
  readonly uncleanShutdown: boolean;

  private constructor(
    readonly dir: string,
    fd: number,
    entries: BatonEntry[],
    ackSeq: number,
    opts: BatonOptions,
    unclean: boolean,
    private readonly ownsMarker: boolean,
  ) {
    this.fd = fd;
    this.entries = entries;
    this.ackSeq = ackSeq;
    this.ackHash = ackSeq > 0 ? entries[ackSeq - 1]!.hash : GENESIS;
    this.ackOnDisk = ackSeq;
    this.mode = opts.fsync === undefined ? DEFAULT_FSYNC_MODE : opts.fsync === true ? 'always' : opts.fsync === false ? 'never' : opts.fsync;
    if (!FSYNC_MODES.includes(this.mode)) throw new ReaderError('ERR_READER_CONFIG', `baton fsync mode must be one of ${FSYNC_MODES.join(', ')}`);
    this.groupMs = opts.groupMs ?? 50;
    this.groupEntries = opts.groupEntries ?? 64;
    if (!(this.groupMs >= 0 && this.groupMs <= 10_000) || !(Number.isInteger(this.groupEntries) && this.groupEntries >= 1)) throw new ReaderError('ERR_READER_CONFIG', 'baton group commit: groupMs 0..10000, groupEntries >= 1');
    this.durableSeq = entries.length;
    this.uncleanShutdown = unclean;
    this.trim();
  }

  /** Drop acknowledged entries from memory (the file keeps them). */
  private trim(): void {
    const n = this.ackSeq - this.base;
    if (n <= 0) return;
    this.entries.splice(0, n);
    this.base = this.ackSeq;
    this.baseHash = this.ackHash;
  }

  /** Open (or create) the baton in `dir`: verify the chain, drop a torn last line. */
  static open(dir: string, opts: BatonOptions = {}): AuditBaton {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, 'baton.log');
    const fd = openSync(file, 'a+', 0o600); // O_APPEND: every write goes to the end
    try {
      const text = readFileSync(file, 'utf8');
      const lines = text.split('\n');
      const entries: BatonEntry[] = [];
      let goodBytes = 0;
      let prev = GENESIS;
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!;
        const last = i === lines.length - 1;
        if (last) {
          // After the final '\n' there is '' — or a torn line that was never fsync'd and reported.
          break;
        }
        const e = parseEntry(line);
        if (!e) throw new ReaderError('ERR_BATON_CORRUPT', `baton line ${i + 1} is not a valid entry`);
        const want = entries.length + 1;
        if (e.seq !== want || e.prev !== prev || batonHash(e.seq, e, e.prev) !== e.hash)
          throw new ReaderError('ERR_BATON_CORRUPT', `baton entry ${e.seq} breaks the chain (line ${i + 1})`);
        entries.push(e);
        prev = e.hash;
        goodBytes += Buffer.byteLength(line, 'utf8') + 1;
      }
      if (goodBytes !== Buffer.byteLength(text, 'utf8')) {
        ftruncateSync(fd, goodBytes);
        fsyncSync(fd);
      }
      let ackSeq = 0;
      const ackFile = join(dir, 'baton.ack');
      if (existsSync(ackFile)) {
        const a = JSON.parse(readFileSync(ackFile, 'utf8')) as { seq: number; hash: string };
        if (!Number.isSafeInteger(a.seq) || a.seq < 0 || a.seq > entries.length || (a.seq > 0 && entries[a.seq - 1]!.hash !== a.hash))
          throw new ReaderError('ERR_BATON_CORRUPT', 'baton acknowledgement does not match the log');
        ackSeq = a.seq;
      }
      const marker = join(dir, 'baton.open');
      const m = markerState(marker);
      const unclean = m === 'stale';
      // what the crashed process had written may still be only in the page cache: make it durable
      // now, before anything of it is uploaded
      if (unclean && goodBytes > 0) fdatasyncSync(fd);
      const b = new AuditBaton(dir, fd, entries, ackSeq, opts, unclean, m !== 'live');
      if (m !== 'live') writeFileSync(marker, `${process.pid}\n`, { mode: 0o600 });
      return b;
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  get length(): number {
    return this.base + this.entries.length;
  }

  get head(): { seq: number; hash: string } {
    const last = this.entries[this.entries.length - 1];
    return last ? { seq: last.seq, hash: last.hash } : { seq: this.base, hash: this.baseHash };
  }

  get acknowledged(): number {
    return this.ackSeq;
  }

  /** Highest sequence number known to be on the device ('never' mode: written). */
  get durable(): number {
    return this.durableSeq;
  }

  /**
   * Append one entry: written to the file (the OS) before it returns — a process crash loses
   * nothing from here on. 'always': also fdatasync'd before it returns; 'group': fdatasync'd in
   * the background within `groupMs` (or at once after `groupEntries`), see `flush()`.
   */
  append(f: BatonFields): BatonEntry {
    checkFields(f);
    if (this.fd < 0) throw new ReaderError('ERR_BATON_IO', 'baton is closed');
    this.throwIfSyncFailed();
    const { seq: lastSeq, hash: prev } = this.head;
    const seq = lastSeq + 1;
    const e: BatonEntry = { seq, time: f.time, readerId: f.readerId, cardUid: f.cardUid, aid: f.aid, keyNo: f.keyNo, keyVersion: f.keyVersion, op: f.op, result: f.result, prev, hash: '' };
    e.hash = batonHash(seq, e, prev);
    const text = JSON.stringify(e) + '\n';
    try {
      // the string goes to the file as is (no Buffer per entry); a short write (disk full, a
      // signal) is completed from a Buffer of the rest
      const bytes = Buffer.byteLength(text, 'utf8');
      let off = writeSync(this.fd, text, null, 'utf8');
      if (off < bytes) {
        const line = Buffer.from(text, 'utf8');
        while (off < line.length) off += writeSync(this.fd, line, off, line.length - off, null);
      }
      if (this.mode === 'always') fdatasyncSync(this.fd); // data + the size needed to read it back (an append)
    } catch (err) {
      throw new ReaderError('ERR_BATON_IO', `baton write failed: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
    }
    this.entries.push(e);
    if (this.mode !== 'group') this.durableSeq = seq;
    else if (seq - this.durableSeq >= this.groupEntries && !this.inflight) void this.flush().catch(() => undefined);
    else if (!this.timer && !this.inflight) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush().catch(() => undefined);
      }, this.groupMs);
      this.timer.unref();
    }
    return e;
  }

  private throwIfSyncFailed(): void {
    if (this.syncError !== undefined)
      throw new ReaderError('ERR_BATON_IO', `baton fdatasync failed: ${(this.syncError as NodeJS.ErrnoException).code ?? 'error'}; durability unknown`, { cause: this.syncError });
  }

  /**
   * Make every entry appended so far durable (group mode: one fdatasync in the thread pool shared
   * by every caller waiting at the time; 'always'/'never': nothing to do). Rejects with
   * ERR_BATON_IO when the fdatasync fails.
   */
  async flush(): Promise<void> {
    for (;;) {
      this.throwIfSyncFailed();
      const target = this.length;
      if (this.durableSeq >= target) return;
      if (this.fd < 0) throw new ReaderError('ERR_BATON_IO', 'baton is closed');
      if (this.inflight) {
        const cur = this.inflight;
        await cur.done;
        continue; // it may not have covered everything written meanwhile
      }
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      const fd = this.fd;
      const done = new Promise<void>((resolve) => {
        fdatasync(fd, (err) => {
          this.inflight = undefined;
          if (err) this.syncError = err;
          else if (target > this.durableSeq) this.durableSeq = target;
          if (this.closeFd === fd) {
            this.closeFd = -1;
            closeSync(fd);
          } else if (!err && this.fd >= 0 && this.length - this.durableSeq >= this.groupEntries) {
            // a full group was appended while this flush ran: flush it now
            void this.flush().catch(() => undefined);
          } else if (!err && this.fd >= 0 && this.length > this.durableSeq && !this.timer) {
            // entries appended while this flush ran: they get their own window
            this.timer = setTimeout(() => {
              this.timer = undefined;
              void this.flush().catch(() => undefined);
            }, this.groupMs);
            this.timer.unref();
          }
          resolve();
        });
      });
      this.inflight = { target, done };
      await done;
    }
  }

  /** Make every entry appended so far durable, synchronously (shutdown). */
  flushSync(): void {
    if (this.fd < 0 || this.durableSeq >= this.length) return;
    this.throwIfSyncFailed();
    try {
      fdatasyncSync(this.fd);
    } catch (err) {
      this.syncError = err;
      this.throwIfSyncFailed();
    }
    this.durableSeq = this.length;
  }

  /** Entries not yet acknowledged by the CMS (oldest first), at most `max`. */
  pending(max = 500): BatonEntry[] {
    const from = this.ackSeq - this.base;
    return this.entries.slice(from, from + max);
  }

  /** Every entry, acknowledged ones included (read from the file: diagnostics, tests). */
  all(): BatonEntry[] {
    const out: BatonEntry[] = [];
    for (const line of readFileSync(join(this.dir, 'baton.log'), 'utf8').split('\n')) {
      if (out.length === this.length) break;
      const e = line ? parseEntry(line) : undefined;
      if (e) out.push(e);
    }
    return out;
  }

  /**
   * Record that the CMS holds every entry up to `seq`. In memory at once (the next upload starts
   * after it); on disk (tmp file, fsync, rename, directory fsync) in the background, off the event
   * loop — the synchronous fsyncs here used to stall the transaction in flight when a sync
   * answered (online p99). Losing the newest acknowledgement in a crash is harmless: the reader
   * re-sends those entries, and the CMS counts entries it already holds as duplicates.
   * `close()` writes the last one synchronously.
   */
  acknowledge(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq < this.ackSeq || seq > this.length) throw new ReaderError('ERR_BATON_CORRUPT', `acknowledgement ${seq} outside the log (acked ${this.ackSeq}, head ${this.length})`);
    if (seq === this.ackSeq) return;
    this.ackHash = this.entries[seq - this.base - 1]!.hash;
    this.ackSeq = seq;
    this.trim();
    if (!this.ackWriting) this.ackWriting = this.writeAcks().finally(() => (this.ackWriting = undefined));
  }

  /** Wait until the acknowledgement file holds the latest acknowledgement (tests, shutdown paths). */
  async ackDurable(): Promise<void> {
    while (this.ackWriting) await this.ackWriting;
  }

  /** The acknowledgement file's content for the current acknowledgement. */
  private ackBody(): { seq: number; body: string } {
    return { seq: this.ackSeq, body: JSON.stringify({ seq: this.ackSeq, hash: this.ackHash }) };
  }

  /** Write acknowledgements until the file holds the latest (one at a time; intermediate ones are skipped). */
  private async writeAcks(): Promise<void> {
    const file = join(this.dir, 'baton.ack');
    const tmp = file + '.tmp';
    while (this.ackOnDisk < this.ackSeq) {
      const { seq, body } = this.ackBody();
      try {
        const fh = await fsp.open(tmp, 'w', 0o600);
        try {
          await fh.writeFile(body);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await fsp.rename(tmp, file);
        await fsp
          .open(this.dir, 'r')
          .then(async (d) => {
            try {
              await d.sync();
            } finally {
              await d.close();
            }
          })
          .catch(() => undefined); // directory fsync is not supported everywhere
        this.ackOnDisk = seq;
      } catch {
        return; // the file keeps an older acknowledgement: entries are re-sent, the CMS deduplicates
      }
    }
  }

  /** The synchronous form, for close(). */
  private writeAckSync(): void {
    const file = join(this.dir, 'baton.ack');
    const tmp = file + '.sync.tmp';
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, this.ackBody().body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    this.ackOnDisk = this.ackSeq;
  }

  /** Flush (synchronously) and close; the clean-shutdown marker is removed only when all is durable. */
  close(): void {
    if (this.fd < 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    let clean = true;
    try {
      this.flushSync();
    } catch {
      clean = false; // durability unknown: the next open reports an unclean shutdown
    }
    try {
      if (this.ackOnDisk < this.ackSeq) this.writeAckSync();
    } catch {
      /* an older acknowledgement stays: entries are re-sent and deduplicated by the CMS */
    }
    if (this.inflight) this.closeFd = this.fd; // the background fdatasync's callback closes it
    else closeSync(this.fd);
    this.fd = -1;
    if (clean && this.ownsMarker) rmSync(join(this.dir, 'baton.open'), { force: true });
  }
}

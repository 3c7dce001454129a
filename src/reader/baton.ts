// The audit baton: the reader's local, append-only, hash-chained log of every operation.
//
// - One JSON line per entry in `<dir>/baton.log`; each entry's `hash` = SHA-256 over a fixed
//   serialisation of its fields and the previous entry's hash (`prev`; the first entry's prev is
//   64 zeros). The CMS recomputes the same hash (src/cms/baton/chain.ts, same vector).
// - `append` writes the line and fsyncs the file BEFORE it returns: an operation is reported done
//   only once its entry is on disk. A crash mid-write leaves at most a torn last line, which was
//   never reported; `open` drops it.
// - Sync state: `<dir>/baton.ack` holds the highest sequence number the CMS has acknowledged
//   (written to a temporary file, fsync'd, renamed). A crash after the CMS stored a batch but
//   before the ack was written only means the batch is sent again; the CMS is idempotent by
//   sequence number (same seq + same hash = already stored), so nothing is lost or doubled.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fdatasyncSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
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
  const ser = JSON.stringify([seq, f.time, f.readerId, f.cardUid, f.aid, f.keyNo, f.keyVersion, f.op, f.result, prev]);
  return createHash('sha256').update(DOMAIN).update(ser).digest('hex');
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

export interface BatonOptions {
  /** false: skip fsync (benchmarks of the rest only). Default true. */
  fsync?: boolean;
}

export class AuditBaton {
  private fd: number;
  private entries: BatonEntry[];
  private ackSeq: number;
  private readonly doSync: boolean;

  private constructor(
    readonly dir: string,
    fd: number,
    entries: BatonEntry[],
    ackSeq: number,
    opts: BatonOptions,
  ) {
    this.fd = fd;
    this.entries = entries;
    this.ackSeq = ackSeq;
    this.doSync = opts.fsync ?? true;
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
      return new AuditBaton(dir, fd, entries, ackSeq, opts);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  get length(): number {
    return this.entries.length;
  }

  get head(): { seq: number; hash: string } {
    const last = this.entries[this.entries.length - 1];
    return last ? { seq: last.seq, hash: last.hash } : { seq: 0, hash: GENESIS };
  }

  get acknowledged(): number {
    return this.ackSeq;
  }

  /** Append one entry and fsync it; only then does it return (the operation may be reported done). */
  append(f: BatonFields): BatonEntry {
    checkFields(f);
    if (this.fd < 0) throw new ReaderError('ERR_BATON_IO', 'baton is closed');
    const { seq: lastSeq, hash: prev } = this.head;
    const seq = lastSeq + 1;
    const e: BatonEntry = { seq, time: f.time, readerId: f.readerId, cardUid: f.cardUid, aid: f.aid, keyNo: f.keyNo, keyVersion: f.keyVersion, op: f.op, result: f.result, prev, hash: '' };
    e.hash = batonHash(seq, e, prev);
    const line = Buffer.from(JSON.stringify(e) + '\n', 'utf8');
    try {
      let off = 0;
      while (off < line.length) off += writeSync(this.fd, line, off, line.length - off, null);
      if (this.doSync) fdatasyncSync(this.fd); // data + the size needed to read it back (an append)
    } catch (err) {
      throw new ReaderError('ERR_BATON_IO', `baton write failed: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
    }
    this.entries.push(e);
    return e;
  }

  /** Entries not yet acknowledged by the CMS (oldest first), at most `max`. */
  pending(max = 500): BatonEntry[] {
    return this.entries.slice(this.ackSeq, this.ackSeq + max);
  }

  /** Every entry (copies). */
  all(): BatonEntry[] {
    return this.entries.map((e) => ({ ...e }));
  }

  /** Record that the CMS holds every entry up to `seq` (durably: tmp file, fsync, rename). */
  acknowledge(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq < this.ackSeq || seq > this.entries.length) throw new ReaderError('ERR_BATON_CORRUPT', `acknowledgement ${seq} outside the log (acked ${this.ackSeq}, head ${this.entries.length})`);
    if (seq === this.ackSeq) return;
    const file = join(this.dir, 'baton.ack');
    const tmp = file + '.tmp';
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify({ seq, hash: seq > 0 ? this.entries[seq - 1]!.hash : GENESIS }));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    try {
      const dfd = openSync(this.dir, 'r');
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch {
      /* directory fsync is not supported everywhere */
    }
    this.ackSeq = seq;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

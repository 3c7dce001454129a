// Offline verification of an audit log (pure: no Node I/O; crypto injected; bundlable).
//
// Feed it an export line by line (verifyJsonlLine) or entries from a database (LogVerifier's
// methods), then call finish(). It stops at the first problem and names it: the entry index
// and the reason. What it proves:
//  - every checkpoint carries a valid Ed25519 signature by the trusted key (and origin);
//  - full log: the entries, re-encoded and hashed (RFC 9162 leaves), have consecutive indexes
//    from 0 and produce exactly the signed root at every checkpoint size; consistency proofs
//    between checkpoints verify; nothing follows the last checkpoint;
//  - tenant view: each entry belongs to the view and its inclusion proof leads to the signed
//    root of the named checkpoint; indexes strictly increase.
import { type AuditCrypto, bytesEqual, hexEquals, unhex } from './crypto.js';
import { type Checkpoint, type VerifierKey, verifyCheckpoint } from './checkpoint.js';
import { type AuditEntry, canonicalEntry, canonicalFromExport, parseEntry } from './entry.js';
import { StreamingRoot, leafHashOfText, verifyConsistency, verifyInclusion } from './merkle.js';

export interface VerifyOptions {
  crypto: AuditCrypto;
  /** The trusted checkpoint key (pin it; do not take it from the file being verified). */
  key: VerifierKey;
  /** Expected origin line (optional). */
  origin?: string;
}

export interface VerifyFailure {
  /** Index of the first bad entry, or null when the problem is not one entry's (e.g. a checkpoint). */
  index: number | null;
  /** 1-based line of the export, when verifying a file. */
  line?: number;
  reason: string;
}

export interface VerifyReport {
  ok: boolean;
  mode: 'full' | 'view';
  /** Entries (with bodies) checked. */
  entries: number;
  /** Leaves whose bodies were pruned by retention (hash only). */
  pruned: number;
  /** Signed checkpoints verified. */
  checkpoints: number;
  consistencyProofs: number;
  latest?: Checkpoint;
  failure?: VerifyFailure;
}

export class LogVerifier {
  private mode: 'full' | 'view' = 'full';
  private view?: { tenant?: string; aids?: string[] };
  private readonly stream: StreamingRoot;
  private readonly pending = new Map<number, { cp: Checkpoint; line?: number }>();
  private readonly verified = new Map<number, Checkpoint>();
  private latest?: Checkpoint;
  private lastViewIndex = -1;
  private entries = 0;
  private pruned = 0;
  private consistency = 0;
  private readonly deferredConsistency: { from: number; to: number; proof: Uint8Array[]; line?: number }[] = [];
  failure?: VerifyFailure;

  constructor(private readonly opts: VerifyOptions) {
    this.stream = new StreamingRoot(opts.crypto);
  }

  get ok(): boolean {
    return !this.failure;
  }

  /** Record a failure (the first one wins); always returns false. */
  fail(index: number | null, reason: string, line?: number): false {
    if (!this.failure) this.failure = { index, reason, ...(line !== undefined ? { line } : {}) };
    return false;
  }

  /** Declare a tenant view (entries are a subset, each with an inclusion proof). */
  setView(view: { tenant?: string; aids?: string[] }): void {
    this.mode = 'view';
    this.view = view;
  }

  /** A signed checkpoint; for a full log, its root is compared when the log reaches its size. */
  checkpoint(note: unknown, line?: number): boolean {
    if (this.failure) return false;
    const r = verifyCheckpoint(this.opts.crypto, note as string, this.opts.key, this.opts.origin);
    if (!r.ok) return this.fail(null, `checkpoint: ${r.reason}`, line);
    const cp = r.checkpoint;
    if (this.verified.has(cp.size) || this.pending.has(cp.size)) {
      const prev = this.verified.get(cp.size) ?? this.pending.get(cp.size)!.cp;
      if (!bytesEqual(prev.root, cp.root)) return this.fail(null, `two signed checkpoints of size ${cp.size} with different roots (split view)`, line);
      return true;
    }
    if (!this.latest || cp.size > this.latest.size) this.latest = cp;
    if (this.mode === 'view') {
      this.verified.set(cp.size, cp);
      return true;
    }
    if (cp.size < this.stream.size) return this.fail(null, `checkpoint of size ${cp.size} comes after entry ${this.stream.size - 1} (checkpoints go before entries)`, line);
    if (cp.size === 0) {
      this.verified.set(0, cp);
      return true;
    }
    this.pending.set(cp.size, { cp, ...(line !== undefined ? { line } : {}) });
    return true;
  }

  /** A consistency proof between two checkpoints (checked once both are verified). */
  consistencyProof(from: unknown, to: unknown, proof: unknown, line?: number): boolean {
    if (this.failure) return false;
    const hashes = hashList(proof);
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || !hashes) return this.fail(null, 'malformed consistency proof', line);
    this.deferredConsistency.push({ from: from as number, to: to as number, proof: hashes, ...(line !== undefined ? { line } : {}) });
    return true;
  }

  private push(index: number, lh: Uint8Array, line?: number): boolean {
    this.stream.push(lh);
    const p = this.pending.get(this.stream.size);
    if (p) {
      this.pending.delete(this.stream.size);
      if (!bytesEqual(this.stream.root(), p.cp.root)) {
        const first = this.highestVerified();
        return this.fail(
          first,
          `entries ${first}..${index} do not produce the signed root of checkpoint ${p.cp.size} (an entry in that range, or its leaf hash, was changed)`,
          line,
        );
      }
      this.verified.set(p.cp.size, p.cp);
    }
    return true;
  }

  private highestVerified(): number {
    let m = 0;
    for (const s of this.verified.keys()) if (s > m && s <= this.stream.size) m = s;
    return m;
  }

  /** An entry with its body. `leafHashHex`: the hash the log recorded for it (export or DB). */
  entry(raw: unknown, leafHashHex?: unknown, proof?: unknown, line?: number): boolean {
    if (this.failure) return false;
    const e = parseEntry(raw);
    const expected = this.stream.size;
    if (typeof e === 'string') {
      const idx = typeof raw === 'object' && raw !== null && Number.isSafeInteger((raw as { index?: unknown }).index) ? (raw as { index: number }).index : null;
      return this.fail(this.mode === 'full' ? expected : idx, `malformed entry: ${e}`, line);
    }
    const lh = leafHashOfText(this.opts.crypto, canonicalEntry(e));
    if (leafHashHex !== undefined) {
      if (typeof leafHashHex !== 'string' || leafHashHex.length !== 64) return this.fail(e.index, 'malformed leaf hash', line);
      if (!hexEquals(lh, leafHashHex)) return this.fail(e.index, 'entry content does not match its recorded leaf hash (entry changed)', line);
    }
    this.entries++;
    if (this.mode === 'view') return this.viewEntry(e, lh, proof, line);
    return this.inSequence(e.index, lh, line);
  }

  private inSequence(index: number, lh: Uint8Array, line?: number): boolean {
    const expected = this.stream.size;
    if (index !== expected) {
      return this.fail(
        expected,
        index > expected
          ? `entry ${expected} is missing: found entry ${index} in its place (deleted or reordered)`
          : `entry ${index} found at position ${expected} (inserted, duplicated or reordered)`,
        line,
      );
    }
    return this.push(index, lh, line);
  }

  /**
   * Fast path for a full log: `text` is an entry as export.ts writes it (canonical key order,
   * see exportEntryText) and `leafHashHex` the hash recorded for it. The leaf is hashed from
   * the text as is, without parsing. Returns undefined (nothing recorded, nothing changed)
   * when the text does not hash to the recorded leaf hash or its index cannot be read: the
   * caller then takes the parsing path (entry()), which names the problem precisely.
   *
   * Sound because what is accepted is exactly what entry() accepts: bytes whose leaf hash is
   * the recorded one, and every leaf hash is then bound to the signed root, so the text is
   * the log's own canonical encoding of a well-formed entry at that position (SHA-256
   * collision resistance); the index read from it only serves to name a misplaced entry.
   */
  entryText(text: string, leafHashHex: string, line?: number): boolean | undefined {
    if (this.failure) return false;
    if (this.mode !== 'full') return undefined;
    const lh = leafHashOfText(this.opts.crypto, canonicalFromExport(text));
    if (!hexEquals(lh, leafHashHex)) return undefined;
    const index = topLevelIndex(text);
    if (index === undefined) return undefined;
    this.entries++;
    return this.inSequence(index, lh, line);
  }

  /**
   * An entry line in export form that the caller (a worker of verify-parallel.ts) has hashed
   * exactly as entryText() does, finding the recorded leaf hash, and whose index it read.
   * Entries of a tenant view carry proofs: those lines are never hashed by a worker.
   */
  entryHashed(index: number, leafHash: Uint8Array, line?: number): boolean {
    if (this.failure) return false;
    if (this.mode !== 'full') return this.fail(index, 'entry has no (well-formed) inclusion proof', line);
    if (leafHash.length !== 32 || !Number.isSafeInteger(index)) return this.fail(this.stream.size, 'malformed leaf hash', line);
    this.entries++;
    return this.inSequence(index, leafHash.slice(), line);
  }

  /** A leaf whose entry body was pruned by retention: only its hash remains. */
  prunedLeaf(index: unknown, leafHashHex: unknown, line?: number): boolean {
    if (this.failure) return false;
    if (this.mode === 'view') return this.fail(null, 'a tenant view has no pruned leaves', line);
    const expected = this.stream.size;
    if (index !== expected) return this.fail(expected, `leaf ${expected} is missing: found ${String(index)} in its place`, line);
    const rec = typeof leafHashHex === 'string' ? unhex(leafHashHex) : undefined;
    if (!rec || rec.length !== 32) return this.fail(expected, 'malformed leaf hash', line);
    this.pruned++;
    return this.push(expected, rec, line);
  }

  private viewEntry(e: AuditEntry, lh: Uint8Array, proof: unknown, line?: number): boolean {
    if (e.index <= this.lastViewIndex) return this.fail(e.index, `entry ${e.index} is out of order (after ${this.lastViewIndex})`, line);
    this.lastViewIndex = e.index;
    const v = this.view!;
    if (v.tenant !== undefined && e.tenant !== v.tenant && !(v.aids && e.aid && v.aids.includes(e.aid))) {
      return this.fail(e.index, `entry ${e.index} does not belong to this view`, line);
    }
    const p = proof as { treeSize?: unknown; hashes?: unknown } | undefined;
    const hashes = hashList(p?.hashes);
    if (!p || !Number.isSafeInteger(p.treeSize) || !hashes) return this.fail(e.index, 'entry has no (well-formed) inclusion proof', line);
    const cp = this.verified.get(p.treeSize as number);
    if (!cp) return this.fail(e.index, `inclusion proof refers to tree size ${String(p.treeSize)}, for which no signed checkpoint was given`, line);
    if (!verifyInclusion(this.opts.crypto, e.index, cp.size, lh, hashes, cp.root)) {
      return this.fail(e.index, 'inclusion proof does not lead to the signed root (entry changed or proof forged)', line);
    }
    return true;
  }

  finish(): VerifyReport {
    if (!this.failure) {
      if (this.mode === 'full') {
        const sizes = [...this.pending.keys()].sort((a, b) => a - b);
        if (sizes.length) {
          const n = this.stream.size;
          this.fail(n, `entry ${n} is missing: checkpoint of size ${sizes[0]} was signed but the log ends after ${n} entries (entries deleted)`);
        } else if (!this.latest) {
          this.fail(null, 'no signed checkpoint: nothing is proven');
        } else if (this.stream.size > this.latest.size) {
          this.fail(this.latest.size, `entry ${this.latest.size} and later are not covered by any signed checkpoint (appended after signing?)`);
        }
      } else if (!this.latest) {
        this.fail(null, 'no signed checkpoint: nothing is proven');
      }
    }
    if (!this.failure) {
      for (const c of this.deferredConsistency) {
        const a = this.verified.get(c.from);
        const b = this.verified.get(c.to);
        if (!a || !b) {
          this.fail(null, `consistency proof ${c.from}->${c.to} refers to a checkpoint that was not verified`, c.line);
          break;
        }
        if (!verifyConsistency(this.opts.crypto, a.size, b.size, a.root, b.root, c.proof)) {
          this.fail(null, `consistency proof ${c.from}->${c.to} does not verify (history rewritten?)`, c.line);
          break;
        }
        this.consistency++;
      }
    }
    return {
      ok: !this.failure,
      mode: this.mode,
      entries: this.entries,
      pruned: this.pruned,
      checkpoints: this.verified.size,
      consistencyProofs: this.consistency,
      ...(this.latest ? { latest: this.latest } : {}),
      ...(this.failure ? { failure: this.failure } : {}),
    };
  }
}

/**
 * The top-level "index" of an entry in canonical key order: its last `"index":` member (only
 * "details" can hold another, and it sorts before "index"; inside a JSON string a quote is
 * always escaped, so the pattern cannot start inside one). undefined when absent/malformed.
 */
function topLevelIndex(text: string): number | undefined {
  const at = text.lastIndexOf('"index":');
  if (at < 0) return undefined;
  let i = at + 8;
  let n = 0;
  const start = i;
  for (; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch < 48 || ch > 57) break;
    n = n * 10 + (ch - 48);
  }
  if (i === start || i - start > 15 || (text.charCodeAt(start) === 48 && i - start > 1)) return undefined;
  const next = text.charCodeAt(i);
  return next === 44 || next === 125 ? n : undefined;
}

const ENTRY_HEAD = '{"type":"entry","entry":{';
const HASH_HEAD = ',"leafHash":"';
/** `,"leafHash":"` + 64 hex digits + `"}` */
const ENTRY_TAIL_LEN = HASH_HEAD.length + 64 + 2;

function hashList(v: unknown): Uint8Array[] | undefined {
  if (!Array.isArray(v) || v.length > 64) return undefined;
  const out: Uint8Array[] = [];
  for (const h of v) {
    const b = typeof h === 'string' ? unhex(h) : undefined;
    if (!b || b.length !== 32) return undefined;
    out.push(b);
  }
  return out;
}

/**
 * One line of a JSONL export (see export.ts for the format). Returns false once verification
 * has failed (the verifier's `failure` says why).
 */
export function verifyJsonlLine(v: LogVerifier, text: string, lineNo: number): boolean {
  if (!v.ok) return false;
  // fast path: an entry line exactly as export.ts writes it (anything else is parsed below)
  if (text.startsWith(ENTRY_HEAD) && text.length > ENTRY_HEAD.length + ENTRY_TAIL_LEN && text.endsWith('"}') && text.startsWith(HASH_HEAD, text.length - ENTRY_TAIL_LEN)) {
    const done = v.entryText(text.slice(ENTRY_HEAD.length - 1, text.length - ENTRY_TAIL_LEN), text.slice(text.length - 66, text.length - 2), lineNo);
    if (done !== undefined) return done;
  }
  if (text.trim() === '') return true;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return v.fail(null, 'line is not JSON', lineNo);
  }
  if (typeof o !== 'object' || o === null) return v.entry(undefined, undefined, undefined, lineNo);
  switch (o.type) {
    case 'header': {
      const view = o.view as { tenant?: string; aids?: string[] } | undefined;
      if (view && typeof view === 'object') v.setView(view);
      return true;
    }
    case 'checkpoint':
      return v.checkpoint(o.note, lineNo);
    case 'consistency':
      return v.consistencyProof(o.from, o.to, o.proof, lineNo);
    case 'entry':
      return v.entry(o.entry, o.leafHash, o.proof, lineNo);
    case 'leaf':
      return v.prunedLeaf(o.index, o.leafHash, lineNo);
    default:
      return v.fail(null, `unknown line type '${String(o.type)}'`, lineNo);
  }
}

/** Verify a whole export given as lines. */
export function verifyJsonl(lines: Iterable<string>, opts: VerifyOptions): VerifyReport {
  const v = new LogVerifier(opts);
  let n = 0;
  for (const l of lines) if (!verifyJsonlLine(v, l, ++n)) break;
  return v.finish();
}

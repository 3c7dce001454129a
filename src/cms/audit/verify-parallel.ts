// Verify a JSONL export streamed from a file (or any byte stream), hashing the entries in
// worker threads. Node-only (worker_threads, node:crypto); the verification logic stays in
// the pure LogVerifier (verify.ts), which receives every line in order on this thread.
//
// Split of the work: the main thread reads chunks of whole lines and hands each to a worker
// (round robin, a bounded number in flight). A worker hashes every entry line in the form
// export.ts writes (the fast path of verifyJsonlLine: canonical text without "v", recorded
// leaf hash) and compares it with the recorded hash; every other line (header, checkpoints,
// proofs, pruned leaves, entries in another JSON form, and any entry whose hash does not
// match) comes back as text. The main thread then feeds the lines to the verifier in file
// order: a hashed entry with entryHashed(), anything else with verifyJsonlLine(), so every
// failure is named exactly as in a serial run. What the verifier proves is unchanged: each
// leaf hash (computed, never taken from the file unchecked) is bound to the signed roots.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { LogVerifier, type VerifyOptions, type VerifyReport, verifyJsonlLine } from './verify.js';

const WORKER_SOURCE = String.raw`
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
const HEAD = '{"type":"entry","entry":{';
const HASH_HEAD = ',"leafHash":"';
const TAIL_LEN = HASH_HEAD.length + 64 + 2;
const CANON_TAIL = ',"v":1}';
const dec = new TextDecoder();
const enc = new TextEncoder();
let scratch = new Uint8Array(1 << 16);
const sha = typeof crypto.hash === 'function' ? (b) => crypto.hash('sha256', b, 'buffer') : (b) => crypto.createHash('sha256').update(b).digest();
function topLevelIndex(t) {
  const at = t.lastIndexOf('"index":');
  if (at < 0) return -1;
  let i = at + 8, n = 0;
  const s = i;
  for (; i < t.length; i++) { const c = t.charCodeAt(i); if (c < 48 || c > 57) break; n = n * 10 + (c - 48); }
  if (i === s || i - s > 15 || (t.charCodeAt(s) === 48 && i - s > 1)) return -1;
  const nx = t.charCodeAt(i);
  return nx === 44 || nx === 125 ? n : -1;
}
parentPort.on('message', (m) => {
  const text = dec.decode(m.buf);
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '' && m.endsWithNewline) lines.pop();
  const n = lines.length;
  const kinds = new Uint8Array(n);
  const idx = new Float64Array(n);
  const hashes = new Uint8Array(n * 32);
  const slow = [];
  for (let i = 0; i < n; i++) {
    let l = lines[i];
    if (l.endsWith('\r')) l = l.slice(0, -1);
    kinds[i] = 1;
    if (l.startsWith(HEAD) && l.length > HEAD.length + TAIL_LEN && l.endsWith('"}') && l.startsWith(HASH_HEAD, l.length - TAIL_LEN)) {
      const body = l.slice(HEAD.length - 1, l.length - TAIL_LEN - 1) + CANON_TAIL;
      if (body.length * 3 + 1 > scratch.length) scratch = new Uint8Array(body.length * 3 + 1);
      scratch[0] = 0;
      const { written } = enc.encodeInto(body, scratch.subarray(1));
      const lh = sha(scratch.subarray(0, written + 1));
      const index = topLevelIndex(body);
      if (index >= 0 && lh.toString('hex') === l.slice(l.length - 66, l.length - 2).toLowerCase()) {
        kinds[i] = 0;
        idx[i] = index;
        hashes.set(lh, i * 32);
        continue;
      }
    }
    slow.push(l);
  }
  parentPort.postMessage({ id: m.id, kinds, idx, hashes, slow }, [kinds.buffer, idx.buffer, hashes.buffer]);
});
`;

interface Result {
  id: number;
  kinds: Uint8Array;
  idx: Float64Array;
  hashes: Uint8Array;
  slow: string[];
}

export interface ParallelVerifyOptions {
  /** Worker threads hashing entries (default: available parallelism, at least 1, at most 4; 0 = all on this thread). */
  workers?: number;
  /** Bytes per chunk handed to a worker (default 1 MiB). */
  chunkBytes?: number;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Verify an export given as a byte stream (e.g. fs.createReadStream(file)). Same report as
 * feeding every line to verifyJsonlLine in order (readline semantics: "\n" or "\r\n" ends a
 * line). Stops reading at the first failure.
 */
export async function verifyJsonlStream(source: AsyncIterable<Uint8Array | string>, opts: VerifyOptions, p: ParallelVerifyOptions = {}): Promise<VerifyReport> {
  const v = new LogVerifier(opts);
  const nWorkers = Math.max(0, Math.min(p.workers ?? Math.max(1, Math.min(4, availableParallelism())), 16));
  const workers = Array.from({ length: nWorkers }, () => new Worker(WORKER_SOURCE, { eval: true }));
  const results = new Map<number, Result>();
  const waiting = new Map<number, (r: Result) => void>();
  const failed: { err?: Error } = {};
  for (const w of workers) {
    w.on('message', (r: Result) => {
      const k = waiting.get(r.id);
      if (k) {
        waiting.delete(r.id);
        k(r);
      } else results.set(r.id, r);
    });
    w.on('error', (e) => {
      failed.err = e;
      for (const k of waiting.values()) k({ id: -1, kinds: new Uint8Array(0), idx: new Float64Array(0), hashes: new Uint8Array(0), slow: [] });
    });
  }
  const result = (id: number): Promise<Result> => {
    if (failed.err) return Promise.reject(failed.err); // a worker died: its results never come
    const r = results.get(id);
    if (r) {
      results.delete(id);
      return Promise.resolve(r);
    }
    return new Promise((res) => waiting.set(id, res));
  };
  const dec = new TextDecoder();
  let line = 0;
  let sent = 0;
  let done = 0;
  const apply = (r: Result): void => {
    if (failed.err) throw failed.err;
    let s = 0;
    for (let i = 0; i < r.kinds.length; i++) {
      line++;
      if (!v.ok) return;
      if (r.kinds[i] === 0) v.entryHashed(r.idx[i]!, r.hashes.subarray(i * 32, i * 32 + 32), line);
      else verifyJsonlLine(v, r.slow[s++]!, line);
    }
  };
  const serial = (bytes: Uint8Array, endsWithNewline: boolean): void => {
    const lines = dec.decode(bytes).split('\n');
    if (endsWithNewline && lines[lines.length - 1] === '') lines.pop();
    for (let l of lines) {
      if (!v.ok) return;
      if (l.endsWith('\r')) l = l.slice(0, -1);
      verifyJsonlLine(v, l, ++line);
    }
  };
  const dispatch = async (bytes: Uint8Array, endsWithNewline: boolean): Promise<void> => {
    if (!workers.length) return serial(bytes, endsWithNewline);
    const own = new Uint8Array(bytes); // a copy of its own to transfer (the caller keeps using the rest of its buffer)
    workers[sent % workers.length]!.postMessage({ id: sent, buf: own, endsWithNewline }, [own.buffer as ArrayBuffer]);
    sent++;
    while (sent - done >= workers.length * 2 && v.ok) apply(await result(done++));
  };
  try {
    const enc = new TextEncoder();
    const max = p.chunkBytes ?? 1 << 20;
    let rest: Uint8Array = new Uint8Array(0);
    for await (const part of source) {
      if (!v.ok) break;
      let buf = concat(rest, typeof part === 'string' ? enc.encode(part) : part);
      // hand over whole lines only, at most `max` bytes at a time
      while (buf.length && v.ok) {
        let cut = buf.lastIndexOf(10, Math.min(buf.length, max) - 1);
        if (cut < 0) cut = buf.indexOf(10); // a line longer than a chunk
        if (cut < 0) {
          if (buf.length < 64 * max) break; // wait for the end of the line
          throw new RangeError('a line of the export is too long');
        }
        await dispatch(buf.subarray(0, cut + 1), true);
        buf = buf.subarray(cut + 1);
      }
      rest = new Uint8Array(buf); // a copy (Buffer#slice would share memory)
    }
    if (rest.length && v.ok) await dispatch(rest, false);
    while (done < sent && v.ok) apply(await result(done++));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return v.finish();
}

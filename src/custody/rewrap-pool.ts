// Worker threads for the embedded engine's batch rewrap (EmbeddedVault.rewrapMany): the per-blob
// work (HKDF expand + AES-256-GCM open under the old KEK version, HKDF expand + AES-256-GCM seal
// under the new one) is spread over up to two threads, so a rewrap run uses both cores while the
// main thread commits the previous page to the database.
//
// What crosses to a worker: the HKDF pseudo-random keys (PRK = HMAC-SHA256("dcms-wrap-v1", KEK
// version material)) of the versions the batch needs, the blobs' payloads and AADs. The threads
// belong to this process (no key leaves it); every PRK copy, per-blob key and plaintext is
// wiped in the worker as soon as it is used, and the caller wipes its own PRKs. Workers are
// started lazily, do not keep the process alive (unref) and are terminated by close().
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = String.raw`
const { parentPort } = require('node:worker_threads');
const { createHmac, createCipheriv, createDecipheriv, randomFillSync } = require('node:crypto');
const ONE = Buffer.of(1);
const expand = (prk, info) => createHmac('sha256', prk).update(info).update(ONE).digest();
parentPort.on('message', (m) => {
  const prks = new Map(m.prks.map(([v, k]) => [v, Buffer.from(k.buffer, k.byteOffset, k.byteLength)]));
  const n = m.versions.length;
  const out = new Array(n);
  try {
    const enc = prks.get(m.target);
    const ivs = randomFillSync(Buffer.alloc(12 * n));
    for (let i = 0; i < n; i++) {
      const aad = m.aads.subarray(m.offsets[i], m.offsets[i + 1]);
      const blob = Buffer.from(m.payloads[i], 'base64url');
      out[i] = null;
      if (blob.length < 28) continue;
      const k = expand(prks.get(m.versions[i]), aad);
      let pt = null;
      try {
        const d = createDecipheriv('aes-256-gcm', k, blob.subarray(0, 12));
        d.setAAD(aad);
        d.setAuthTag(blob.subarray(blob.length - 16));
        pt = d.update(blob.subarray(12, blob.length - 16));
        d.final();
      } catch {
        if (pt) pt.fill(0);
        pt = null;
      }
      k.fill(0);
      if (!pt) continue;
      const k2 = expand(enc, aad);
      const iv = ivs.subarray(12 * i, 12 * i + 12);
      const c = createCipheriv('aes-256-gcm', k2, iv);
      c.setAAD(aad);
      const ct = c.update(pt);
      c.final();
      pt.fill(0);
      k2.fill(0);
      out[i] = Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64url');
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
    return;
  } finally {
    for (const k of prks.values()) k.fill(0);
    m.aads.fill(0);
  }
  parentPort.postMessage({ id: m.id, out });
});
`;

export interface RewrapJob {
  /** PRK per KEK version used by the items (and the target). */
  prks: Map<number, Uint8Array>;
  target: number;
  items: { version: number; payload: string; aad: Uint8Array }[];
}

type Reply = { id: number; out?: (string | null)[]; error?: string };

/** Below this many items a batch goes to one worker only (splitting costs more than it saves). */
const SPLIT_MIN = 256;

export class RewrapPool {
  private workers: Worker[] = [];
  private next = 0;
  private busy: number[] = [];
  private readonly waiting = new Map<number, { resolve: (r: (string | null)[]) => void; reject: (e: Error) => void }>();

  constructor(private readonly size = Math.max(1, Math.min(2, availableParallelism()))) {}

  private start(): Worker[] {
    if (this.workers.length) return this.workers;
    for (let i = 0; i < this.size; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.on('message', (r: Reply) => {
        const k = this.waiting.get(r.id);
        if (!k) return;
        this.waiting.delete(r.id);
        if (--this.busy[i]! === 0) w.unref();
        if (r.out) k.resolve(r.out);
        else k.reject(new Error(`rewrap worker failed: ${r.error ?? 'no result'}`));
      });
      w.on('error', (e) => this.fail(e));
      w.on('exit', () => this.fail(new Error('rewrap worker exited')));
      // idle workers do not keep the process alive; one with a batch in flight does (ref in send)
      w.unref();
      this.workers.push(w);
      this.busy[i] = 0;
    }
    return this.workers;
  }

  /** A worker died: every waiting batch is rejected, and the next call starts fresh workers. */
  private fail(e: Error): void {
    const ws = this.workers;
    this.workers = [];
    this.busy = [];
    for (const w of ws) void w.terminate();
    for (const k of this.waiting.values()) k.reject(e);
    this.waiting.clear();
  }

  /** Per item: the new payload (base64url, under `target`), or null when the blob did not authenticate. */
  async run(job: RewrapJob): Promise<(string | null)[]> {
    const n = job.items.length;
    if (!n) return [];
    const parts = n < SPLIT_MIN ? 1 : this.size;
    const per = Math.ceil(n / parts);
    const slices: Promise<(string | null)[]>[] = [];
    for (let from = 0; from < n; from += per) slices.push(this.send(job, job.items.slice(from, from + per)));
    return (await Promise.all(slices)).flat();
  }

  private send(job: RewrapJob, items: RewrapJob['items']): Promise<(string | null)[]> {
    const ws = this.start();
    const offsets = new Uint32Array(items.length + 1);
    let len = 0;
    for (let i = 0; i < items.length; i++) {
      offsets[i] = len;
      len += items[i]!.aad.length;
    }
    offsets[items.length] = len;
    const aads = new Uint8Array(len);
    for (let i = 0; i < items.length; i++) aads.set(items[i]!.aad, offsets[i]!);
    const msg = {
      id: this.next++,
      target: job.target,
      prks: [...job.prks].map(([v, k]) => [v, k.slice()] as const),
      versions: items.map((x) => x.version),
      payloads: items.map((x) => x.payload),
      aads,
      offsets,
    };
    const wi = msg.id % ws.length;
    const w = ws[wi]!;
    return new Promise((resolve, reject) => {
      this.waiting.set(msg.id, { resolve, reject });
      if (this.busy[wi]!++ === 0) w.ref();
      // the PRK copies and the AAD buffer are transferred (moved, not copied) to the worker, which wipes them
      w.postMessage(msg, [...msg.prks.map(([, k]) => k.buffer as ArrayBuffer), aads.buffer, offsets.buffer]);
    });
  }

  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    this.busy = [];
    for (const k of this.waiting.values()) k.reject(new Error('rewrap pool closed'));
    this.waiting.clear();
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

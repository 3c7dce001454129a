// A reader's baton upload hands its audit records to the audit log in chunks (AUDIT_CHUNK), each
// settled before the next is queued, so a key delivery's audit entry queued during the upload's
// audit phase is committed behind at most one chunk, not behind the whole upload (issue #6).
// The audit log here is a FIFO group commit like src/cms/audit/log.ts: each flush takes every
// record queued so far, commits them on a later turn, in queue order. Also: a failure in a later
// chunk refuses the batch — the rest is never queued, nothing is stored or acknowledged.
// And the storing: STORE_PART entries per transaction, so another writer's transaction (a key
// delivery's) commits between two parts instead of after the whole upload; a failure after some
// parts acknowledges nothing, and the resent batch finds the stored prefix as duplicates.
import { afterAll, describe, expect, it } from 'vitest';
import type { AuditInput } from '../../src/cms/audit/entry.js';
import { GENESIS, batonHash, type BatonWireEntry } from '../../src/cms/baton/chain.js';
import { AUDIT_CHUNK, type BatonAudit, type BatonCommit, BatonService, STORE_PART } from '../../src/cms/baton/service.js';
import { withTransaction } from '../../src/cms/storage/tx.js';
import { type Backend, postgresAvailable, postgresBackend, sqliteBackend } from './storage-backends.js';

function chain(readerId: string, n: number): BatonWireEntry[] {
  const out: BatonWireEntry[] = [];
  let prev = GENESIS;
  for (let seq = 1; seq <= n; seq++) {
    const e = { seq, time: 1_700_000_000_000 + seq, readerId, cardUid: '04A1B2C3D4E5F6', aid: 'CAFE01', keyNo: 1, keyVersion: 1, op: 'access-check', result: 'granted', prev };
    const hash = batonHash(e);
    out.push({ ...e, hash });
    prev = hash;
  }
  return out;
}

/** A FIFO group-commit audit log: `committed` is the log's order. */
function groupCommitLog(opts: { failSeq?: number } = {}) {
  const queue: { input: AuditInput; resolve: () => void; reject: (e: Error) => void }[] = [];
  const committed: AuditInput[] = [];
  const queued: AuditInput[] = [];
  let flushing = false;
  const flush = () => {
    const batch = queue.splice(0);
    setImmediate(() => {
      for (const q of batch) {
        if (opts.failSeq !== undefined && (q.input.details as { batonSeq?: number } | undefined)?.batonSeq === opts.failSeq) q.reject(new Error('audit store failed'));
        else {
          committed.push(q.input);
          q.resolve();
        }
      }
      if (queue.length) setImmediate(flush);
      else flushing = false;
    });
  };
  const deferred: boolean[] = [];
  const log: BatonAudit & { committed: AuditInput[]; queued: AuditInput[]; deferred: boolean[]; onQueue?: (n: number) => void } = {
    committed,
    queued,
    deferred,
    record(input, opts) {
      queued.push(input);
      deferred.push(opts?.deferSync === true);
      const p = new Promise<void>((resolve, reject) => queue.push({ input, resolve, reject }));
      if (!flushing) {
        flushing = true;
        setImmediate(flush);
      }
      log.onQueue?.(queued.length);
      return p;
    },
  };
  return log;
}

const pg = await postgresAvailable();
const backends: (() => Backend)[] = [sqliteBackend, ...(pg ? [postgresBackend] : [])];
const cleanups: Backend[] = [];
afterAll(async () => {
  for (const b of cleanups) await b.cleanup();
});

describe.each(backends.map((b) => [b().name, b] as const))('baton upload audit chunks on %s', (_name, make) => {
  const N = 340; // a large background upload: 6 chunks of 64
  const chunks = Math.ceil(N / AUDIT_CHUNK);

  it("a delivery's audit entry queued during the upload's audit phase is committed before the upload's last chunk", async () => {
    const b = make();
    cleanups.push(b);
    const h = await b.open();
    const log = groupCommitLog();
    // a delivery arrives while the upload's first chunk is being committed
    log.onQueue = (n) => {
      if (n === 1) setImmediate(() => void log.record({ operation: 'key.deliver', result: 'ok', readerId: 'door-1' }));
    };
    const svc = new BatonService(h.db, Date.now, log);
    const all = chain('door-1', N);
    const r = await svc.sync('door-1', all);
    expect(r).toMatchObject({ acked: N, stored: N });
    const ops = log.committed.map((x) => x.operation);
    expect(ops.length).toBe(N + 2);
    const delivery = ops.indexOf('key.deliver');
    // every baton entry in order, the summary last
    const seqs = log.committed.filter((x) => x.operation === 'reader.access-check').map((x) => (x.details as { batonSeq: number }).batonSeq);
    expect(seqs).toEqual(all.map((e) => e.seq));
    expect(ops[ops.length - 1]).toBe('reader.baton');
    // behind at most one chunk of the upload (handed all at once it was behind all N + 1)
    expect(delivery).toBeGreaterThan(0);
    expect(delivery).toBeLessThanOrEqual(AUDIT_CHUNK);
    const lastChunkFirst = log.committed.findIndex((x) => (x.details as { batonSeq?: number } | undefined)?.batonSeq === (chunks - 1) * AUDIT_CHUNK + 1);
    expect(delivery).toBeLessThan(lastChunkFirst);
    expect((await svc.head('door-1')).seq).toBe(N);
    // every chunk but the last is recorded deferred (no sync of its own); the last chunk and the
    // summary durable: their sync covers the whole upload before anything is stored
    const upload = log.queued.map((x, i) => [x.operation, log.deferred[i]] as const).filter(([op]) => op !== 'key.deliver');
    expect(upload.slice(0, (chunks - 1) * AUDIT_CHUNK).every(([, d]) => d)).toBe(true);
    expect(upload.slice((chunks - 1) * AUDIT_CHUNK).every(([, d]) => !d)).toBe(true);
    expect(log.deferred[log.queued.findIndex((x) => x.operation === 'key.deliver')]).toBe(false);
  }, 60_000);

  it('a failure in a later chunk acknowledges nothing and stores nothing; the rest of the upload is not handed to the audit log', async () => {
    const b = make();
    cleanups.push(b);
    const h = await b.open();
    const failSeq = 2 * AUDIT_CHUNK + 5; // in the third chunk
    const log = groupCommitLog({ failSeq });
    const svc = new BatonService(h.db, Date.now, log);
    const all = chain('door-2', N);
    await expect(svc.sync('door-2', all)).rejects.toThrow('audit store failed');
    expect((await svc.head('door-2')).seq).toBe(0);
    expect(await svc.entries('door-2')).toEqual([]);
    // chunks 1..3 were queued, nothing after the failing chunk, no batch summary
    expect(log.queued.length).toBe(3 * AUDIT_CHUNK);
    expect(log.queued.some((x) => x.operation === 'reader.baton')).toBe(false);
    // the same upload goes through once the audit log works again
    const ok = new BatonService(h.db, Date.now, groupCommitLog());
    expect(await ok.sync('door-2', all)).toMatchObject({ acked: N, stored: N });
    expect((await ok.entries('door-2', { limit: 1000 })).map((e) => e.seq)).toEqual(all.map((e) => e.seq));
  }, 60_000);
});

describe.each(backends.map((b) => [b().name, b] as const))('baton upload stored in parts on %s', (_name, make) => {
  const N = 340; // 6 parts of 64

  it("each part is its own transaction, in order; another writer's transaction commits between two parts", async () => {
    const b = make();
    cleanups.push(b);
    const h = await b.open();
    const log: string[] = [];
    let other: Promise<unknown> | undefined;
    const commit: BatonCommit = async (fn) => {
      const r = await withTransaction(h.db, fn);
      log.push('part');
      // a key delivery's write arrives while the upload is being stored
      if (log.length === 1) other = new Promise<void>((res) => setImmediate(() => void withTransaction(h.db, async () => undefined).then(() => (log.push('other'), res()))));
      return r;
    };
    const svc = new BatonService(h.db, Date.now, undefined, commit);
    const all = chain('door-3', N);
    expect(await svc.sync('door-3', all)).toEqual({ acked: N, hash: all[N - 1]!.hash, stored: N, duplicates: 0 });
    await other;
    const parts = Math.ceil(N / STORE_PART);
    expect(log.filter((x) => x === 'part').length).toBe(parts);
    const at = log.indexOf('other');
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThan(log.length - 1); // not after the last part
    expect((await svc.entries('door-3', { limit: 1000 })).map((e) => e.seq)).toEqual(all.map((e) => e.seq));
  }, 60_000);

  it('a failure after some parts acknowledges nothing; the resent batch stores the rest and counts the stored prefix as duplicates', async () => {
    const b = make();
    cleanups.push(b);
    const h = await b.open();
    let calls = 0;
    const failing: BatonCommit = async (fn) => {
      if (++calls === 3) throw new Error('disk full');
      return withTransaction(h.db, fn);
    };
    const all = chain('door-4', N);
    await expect(new BatonService(h.db, Date.now, undefined, failing).sync('door-4', all)).rejects.toThrow('disk full');
    const svc = new BatonService(h.db, Date.now);
    expect((await svc.head('door-4')).seq).toBe(2 * STORE_PART); // a prefix of the chain, nothing more
    expect(await svc.sync('door-4', all)).toEqual({ acked: N, hash: all[N - 1]!.hash, stored: N - 2 * STORE_PART, duplicates: 2 * STORE_PART });
    expect((await svc.entries('door-4', { limit: 1000 })).map((e) => e.seq)).toEqual(all.map((e) => e.seq));
    // an empty batch answers the stored head
    expect(await svc.sync('door-4', [])).toEqual({ acked: N, hash: all[N - 1]!.hash, stored: 0, duplicates: 0 });
  }, 60_000);
});

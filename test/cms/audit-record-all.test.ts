// AuditLog.recordAll: several entries as ONE unit — validated and capacity-checked together
// (bad input or backpressure: nothing queued), never split across group-commit batches, committed
// in one transaction or not at all, consecutive indexes; interleaves with concurrent single
// records. And custody's appendAll through it: a batch's per-(tenant, AID) events as one unit.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DatabaseHandle } from '../../src/cms/storage/index.js';
import type { AuditEntry, AuditInput } from '../../src/cms/audit/entry.js';
import { verifyDatabase } from '../../src/cms/audit/db-verify.js';
import { Ed25519CheckpointSigner, verifierKey } from '../../src/cms/audit/signer.js';
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { MemoryVaultStore } from '../../src/custody/store.js';
import { generateReaderKeyPair } from '../../src/custody/sealed.js';
import type { CallerContext, KeyBinding, KeyCustody, KeySource } from '../../src/custody/types.js';
import { type Backend, postgresAvailable, postgresBackend, sqliteBackend } from './storage-backends.js';
import { ORIGIN, SpyStore, openLog as openWith, sampleEntry } from './audit-fixture.js';

const pgOk = await postgresAvailable();
const signer = Ed25519CheckpointSigner.generate(ORIGIN);

/** `n` entries of one unit, correlation ids `${tag}-0` ... */
const unit = (tag: string, n: number, from = 0): AuditInput[] => Array.from({ length: n }, (_, i) => ({ ...sampleEntry(from + i), correlationId: `${tag}-${i}` }));
const single = (tag: string, i = 0): AuditInput => ({ ...sampleEntry(i), correlationId: tag });

function expectConsecutive(es: AuditEntry[]): void {
  expect(es.map((e) => e.index)).toEqual(es.map((_, i) => es[0]!.index + i));
}

for (const make of [sqliteBackend, postgresBackend]) {
  const kind = make === sqliteBackend ? 'sqlite' : 'postgres';
  describe.skipIf(kind === 'postgres' && !pgOk)(`AuditLog.recordAll on ${kind}`, () => {
    let backend: Backend;
    let h: DatabaseHandle;
    let store: SpyStore;
    let log: Awaited<ReturnType<typeof openWith>>['log'];
    const open = async (extra: Parameters<typeof openWith>[1] = {}) => {
      store = new SpyStore(h);
      log = (await openWith(h, { store, ...extra }, signer)).log;
    };
    /** The stored entries with these correlation ids (any order). */
    const stored = async (ids: string[]) => (await log.entries({ from: 0, limit: 100_000 })).filter((e) => e.correlationId !== null && ids.includes(e.correlationId));

    beforeEach(async () => {
      backend = make();
      h = await backend.open();
    }, 30_000);
    afterEach(async () => {
      await log?.close();
      await backend?.cleanup();
    }, 30_000);

    it('commits a unit in one transaction with consecutive indexes, in input order', async () => {
      await open();
      await log.record(single('before'));
      const es = await log.recordAll(unit('u', 5));
      expect(es.map((e) => e.correlationId)).toEqual(['u-0', 'u-1', 'u-2', 'u-3', 'u-4']);
      expectConsecutive(es);
      expect(es[0]!.index).toBe(1);
      expect(store.batches).toEqual([['before'], ['u-0', 'u-1', 'u-2', 'u-3', 'u-4']]);
      expect((await stored(['u-0', 'u-1', 'u-2', 'u-3', 'u-4'])).map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
      expect(log.size).toBe(6);
      await expect(log.recordAll([])).resolves.toEqual([]);
      expect(store.batches).toHaveLength(2);
    });

    it('bad input anywhere in the unit: all rejected with a typed error, nothing queued or written', async () => {
      await open();
      const bad = unit('bad', 3);
      bad[2] = { ...bad[2]!, aid: 'not hex' };
      await expect(log.recordAll(bad)).rejects.toMatchObject({ code: 'ERR_AUDIT_INPUT' });
      const secret = unit('secret', 3);
      secret[1] = { ...secret[1]!, details: { plaintext: '00112233445566778899AABBCCDDEEFF' } };
      await expect(log.recordAll(secret)).rejects.toMatchObject({ code: 'ERR_AUDIT_KEY_MATERIAL' });
      await expect(log.recordAll('nope' as unknown as AuditInput[])).rejects.toMatchObject({ code: 'ERR_AUDIT_INPUT' });
      expect(log.health().queued).toBe(0);
      await log.drain();
      expect(store.batches).toEqual([]);
      expect(log.size).toBe(0);
      // the log is unharmed
      expectConsecutive(await log.recordAll(unit('ok', 2)));
      expect(await stored(['bad-0', 'bad-1', 'secret-0', 'secret-2', 'ok-0', 'ok-1'])).toHaveLength(2);
    });

    it('backpressure: a unit that does not fit is rejected whole, nothing of it queued; one that fits is taken', async () => {
      await open({ maxQueue: 6 });
      let open_!: () => void;
      store.gate = new Promise<void>((r) => (open_ = r));
      const first = log.record(single('inflight')); // taken by the flush, waiting at the gate
      await new Promise<void>((r) => setImmediate(r));
      await new Promise<void>((r) => setImmediate(r));
      expect(store.batches).toEqual([['inflight']]);
      const waiting = [log.record(single('w1')), log.record(single('w2')), log.record(single('w3'))];
      expect(log.health().queued).toBe(3);
      await expect(log.recordAll(unit('big', 4))).rejects.toMatchObject({ code: 'ERR_AUDIT_BACKPRESSURE' });
      expect(log.health().queued).toBe(3);
      await expect(log.recordAll(unit('huge', 7))).rejects.toMatchObject({ code: 'ERR_AUDIT_INPUT' }); // never fits
      const fits = log.recordAll(unit('fits', 3));
      expect(log.health().queued).toBe(6);
      await expect(log.record(single('over'))).rejects.toMatchObject({ code: 'ERR_AUDIT_BACKPRESSURE' });
      open_();
      store.gate = undefined;
      await first;
      await Promise.all(waiting);
      expectConsecutive(await fits);
      expect(await stored(['big-0', 'big-1', 'big-2', 'big-3', 'huge-0', 'over'])).toEqual([]);
      expect(log.size).toBe(7);
    });

    it('a failing store: the unit and the single records of its batch are all rejected, none of it is visible; it recovers', async () => {
      await open();
      store.failing = true;
      const r = await Promise.allSettled([log.record(single('s1')), log.recordAll(unit('u', 4)), log.record(single('s2'))]);
      expect(r.map((x) => x.status)).toEqual(['rejected', 'rejected', 'rejected']);
      for (const x of r) expect((x as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
      expect(store.batches).toEqual([['s1', 'u-0', 'u-1', 'u-2', 'u-3', 's2']]);
      expect(log.health()).toMatchObject({ status: 'degraded', queued: 0 });
      expect(await stored(['s1', 's2', 'u-0', 'u-1', 'u-2', 'u-3'])).toEqual([]);
      expect(log.size).toBe(0);
      store.failing = false;
      expectConsecutive(await log.recordAll(unit('again', 4)));
      expect(log.health().status).toBe('ok');
      await log.checkpoint();
      expect((await verifyDatabase(h, verifierKey(signer.vkey), ORIGIN)).failure).toBeUndefined();
    });

    it('a unit is never split across batches: smaller than maxBatch it waits for the next batch, larger it is a batch of its own', async () => {
      await open({ maxBatch: 3 });
      const ps = [
        log.record(single('a')),
        log.record(single('b')),
        log.recordAll(unit('u', 4)), // larger than maxBatch
        log.record(single('c')),
        log.recordAll(unit('v', 2)), // ends exactly at a cut
        log.record(single('d')),
        log.record(single('e')),
        log.recordAll(unit('w', 3)), // exactly maxBatch, straddling the cut after 'd', 'e': waits for the next batch
      ];
      const out = await Promise.all(ps);
      expect(store.batches).toEqual([['a', 'b'], ['u-0', 'u-1', 'u-2', 'u-3'], ['c', 'v-0', 'v-1'], ['d', 'e'], ['w-0', 'w-1', 'w-2']]);
      for (const x of out) if (Array.isArray(x)) expectConsecutive(x);
      const all = out.flatMap((x) => (Array.isArray(x) ? x : [x])).map((e) => e.index);
      expect(all).toEqual(Array.from({ length: 14 }, (_, i) => i));
      // a lone unit larger than maxBatch
      const big = await log.recordAll(unit('big', 7));
      expect(store.batches.at(-1)).toHaveLength(7);
      expectConsecutive(big);
    });

    it('interleaves with concurrent single records: every unit consecutive, every index once, the database verifies', async () => {
      await open({ maxBatch: 16 });
      const ps: Promise<AuditEntry | AuditEntry[]>[] = [];
      for (let i = 0; i < 120; i++) {
        ps.push(i % 10 === 3 ? log.recordAll(unit(`u${i}`, 1 + (i % 7))) : log.record(single(`s${i}`, i)));
        if (i % 17 === 0) await new Promise<void>((r) => setImmediate(r)); // spread over several turns
      }
      const out = await Promise.all(ps);
      const units = out.filter((x): x is AuditEntry[] => Array.isArray(x));
      expect(units).toHaveLength(12);
      for (const u of units) expectConsecutive(u);
      // each unit in exactly one store batch
      for (const u of units) expect(store.batches.filter((b) => b.includes(u[0]!.correlationId!))).toEqual([expect.arrayContaining(u.map((e) => e.correlationId))]);
      const idx = out.flatMap((x) => (Array.isArray(x) ? x : [x])).map((e) => e.index).sort((a, b) => a - b);
      expect(idx).toEqual(Array.from({ length: idx.length }, (_, i) => i));
      expect(store.batches.every((b) => b.length <= 16)).toBe(true);
      await log.checkpoint();
      expect((await verifyDatabase(h, verifierKey(signer.vkey), ORIGIN)).failure).toBeUndefined();
    });

    it("custody's sink: appendAll converts the events and records them as one unit (sealMany: one unit per call); a refused unit releases nothing", async () => {
      await open();
      const vault = await EmbeddedVault.open(new MemoryVaultStore());
      await vault.init({ passphrase: 'correct horse battery staple', scrypt: { N: 2 ** 10, r: 8, p: 1 } });
      const custody: KeyCustody = vault.custody(log);
      try {
        const ctx: CallerContext = { actor: 'station-1', purpose: 'station job', correlationId: 'job-1' };
        const uid = '04A1B2C3D4E5F6';
        const cmk: KeyBinding = { tenant: 'issuer', aid: '000000', uid, keyNo: 0, version: 1 };
        const app = (keyNo: number): KeyBinding => ({ tenant: 'library', aid: '11B001', uid, keyNo, version: 1 });
        await custody.createKey(ctx, 'kek.issuer', { purpose: 'wrap' });
        await custody.createKey(ctx, 'library.11B001.1', { purpose: 'diversify', alg: 'aes128' });
        const reader = generateReaderKeyPair();
        const recipient = { readerId: 'station-1', publicKey: reader.publicKey };
        const spy = vi.spyOn(log, 'recordAll');
        // generateKeys: the issuer's part and the library's part in one unit
        const [w] = await custody.generateKeys(ctx, [
          { kek: 'kek.issuer', alg: 'aes128', binding: cmk },
          { kek: 'kek.issuer', alg: 'aes128', binding: app(0) },
        ]);
        expect(spy).toHaveBeenCalledTimes(1);
        expect(spy.mock.calls[0]![0].map((e) => [e.operation, e.tenant, e.aid])).toEqual([
          ['custody.generate_batch', 'issuer', '000000'],
          ['custody.generate_batch', 'library', '11B001'],
        ]);
        const sources: KeySource[] = [
          { kind: 'wrapped', kek: 'kek.issuer', blob: w!.blob, binding: cmk },
          { kind: 'diversified', master: 'library.11B001.1', input: Uint8Array.of(1), binding: app(1) },
          { kind: 'diversified', master: 'library.11B001.1', input: Uint8Array.of(2), binding: app(2) },
        ];
        const nBatches = store.batches.length;
        expect(await custody.sealMany(ctx, sources, recipient)).toHaveLength(3);
        expect(spy).toHaveBeenCalledTimes(2);
        expect(store.batches.slice(nBatches)).toEqual([['job-1', 'job-1']]); // one transaction
        const sealed = (await log.entries({ from: 0, limit: 1000 })).filter((e) => e.operation === 'custody.seal_batch');
        expect(sealed.map((e) => [e.result, e.tenant, e.aid])).toEqual([
          ['ok', 'issuer', '000000'],
          ['ok', 'library', '11B001'],
        ]);
        expectConsecutive(sealed);
        // the store refuses the unit: the call is refused (nothing released), no part of it is stored
        store.failing = true;
        await expect(custody.sealMany({ ...ctx, correlationId: 'job-2' }, sources, recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_AUDIT' });
        store.failing = false;
        expect(store.batches.at(-1)).toEqual(['job-2', 'job-2']);
        expect((await log.entries({ from: 0, limit: 1000 })).filter((e) => e.correlationId === 'job-2')).toEqual([]);
        // a unit the log rejects as input (nothing queued) refuses the call too
        spy.mockRejectedValueOnce(Object.assign(new Error('bad'), { code: 'ERR_AUDIT_INPUT' }));
        await expect(custody.sealMany({ ...ctx, correlationId: 'job-3' }, sources, recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_AUDIT' });
        expect((await log.entries({ from: 0, limit: 1000 })).filter((e) => e.correlationId === 'job-3')).toEqual([]);
      } finally {
        await custody.close();
      }
    });
  });
}

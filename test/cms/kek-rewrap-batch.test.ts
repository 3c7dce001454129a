// The batch rewrap path (issue #7, KEK rewrap speed): the embedded engine's rewrapMany (one KEK
// lookup per batch, per-blob HKDF + AES-GCM on worker threads), custody's one audit event per
// batch that still accounts for every blob, and the rewrap run's page commit on SQLite with the
// native prepared statements and through Kysely (compare-and-set on the old blob).
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ApprovalService } from '../../src/cms/approvals/service.js';
import { fromCustodyEvent } from '../../src/cms/audit/custody-event.js';
import { normalizeInput } from '../../src/cms/audit/entry.js';
import { KekService } from '../../src/cms/kek/rewrap.js';
import { NO_AUDIT } from '../../src/cms/rotation/audit.js';
import { openDatabase, type DatabaseHandle } from '../../src/cms/storage/index.js';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { encodeBinding } from '../../src/custody/binding.js';
import type { Custody } from '../../src/custody/custody.js';
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { MemoryVaultStore } from '../../src/custody/store.js';
import type { CallerContext, KeyBinding, WrappedKey } from '../../src/custody/types.js';

const CTX: CallerContext = { actor: 'test', purpose: 'batch rewrap test', correlationId: 'c-batch' };
const KEK = 'kek.acme';
const bind = (i: number, version = 1): KeyBinding => ({ tenant: 'acme', aid: 'A1B2C3', uid: '04' + (0x300000 + i).toString(16).toUpperCase().padStart(6, '0') + 'A0B0C0', keyNo: i % 3, version });

async function vault(): Promise<{ v: EmbeddedVault; c: Custody; sink: MemoryAuditSink }> {
  const v = await EmbeddedVault.open(new MemoryVaultStore());
  await v.init({ passphrase: 'correct horse battery staple', scrypt: { N: 2 ** 10, r: 8, p: 1 } });
  const sink = new MemoryAuditSink();
  return { v, c: v.custody(sink), sink };
}

describe('batch rewrap in custody (embedded engine)', () => {
  const open: EmbeddedVault[] = [];
  afterAll(async () => {
    for (const v of open) await v.close();
  });

  it('rewraps 700 blobs from two KEK versions on the workers, byte-compatible, one audit event for the batch', async () => {
    const { v, c, sink } = await vault();
    open.push(v);
    await c.createKey(CTX, KEK, { purpose: 'wrap' });
    const items: { blob: string; binding: KeyBinding }[] = [];
    for (let i = 0; i < 700; i++) {
      if (i === 350) await c.rotateKey(CTX, KEK); // half under v1, half under v2
      items.push({ blob: (await c.generateKey(CTX, KEK, 'aes128', bind(i))).blob, binding: bind(i) });
    }
    const plain = await Promise.all(items.map((it) => c.exportForCard(CTX, { kind: 'wrapped', kek: KEK, blob: it.blob, binding: it.binding })));
    await c.rotateKey(CTX, KEK); // v3
    // item 5: tampered payload; item 6: another binding; item 7: another backend's blob
    const bad = items.slice();
    const last = bad[5]!.blob.slice(-2);
    bad[5] = { ...bad[5]!, blob: bad[5]!.blob.slice(0, -2) + (last === 'AA' ? 'AB' : 'AA') };
    bad[6] = { blob: bad[6]!.blob, binding: bind(9999) };
    bad[7] = { ...bad[7]!, blob: bad[7]!.blob.replace('dcms1.emb.', 'dcms1.vt.') };
    sink.clear();
    const out = await c.rewrapMany(CTX, KEK, bad);
    expect(out[5]).toEqual({ error: expect.objectContaining({ code: 'ERR_CUSTODY_TAMPERED' }) });
    expect(out[6]).toEqual({ error: expect.objectContaining({ code: 'ERR_CUSTODY_AAD_MISMATCH' }) });
    expect(out[7]).toEqual({ error: expect.objectContaining({ code: 'ERR_CUSTODY_TAMPERED' }) });
    const okIdx = [...out.keys()].filter((i) => i < 5 || i > 7);
    for (const i of okIdx) {
      const w = out[i] as WrappedKey;
      expect(w.kekVersion).toBe(3);
      expect(w.blob.startsWith('dcms1.emb.3.')).toBe(true);
      // the new blob opens through the one-at-a-time path to the same key (byte-compatible HKDF)
      expect(await c.exportForCard(CTX, { kind: 'wrapped', kek: KEK, blob: w.blob, binding: items[i]!.binding })).toEqual(plain[i]);
    }
    const batchEvents = sink.events.filter((e) => e.op === 'rewrap_batch');
    expect(batchEvents).toHaveLength(1);
    const e = batchEvents[0]!;
    expect(e).toMatchObject({ outcome: 'ok', key: KEK, keyVersion: 3, actor: 'test', correlationId: 'c-batch' });
    expect(e.batch).toMatchObject({ count: 697, fromVersions: { 1: 347, 2: 350 }, first: items[0]!.binding, last: items[699]!.binding });
    // the digest accounts for exactly the rewrapped blobs, in order
    const h = createHash('sha256');
    for (const i of okIdx) h.update(encodeBinding(items[i]!.binding)).update('\n');
    expect(e.batch!.digest).toBe(`sha256:${h.digest('hex')}`);
    const errors = sink.events.filter((x) => x.op === 'rewrap');
    expect(errors.map((x) => [x.outcome, x.code])).toEqual([
      ['error', 'ERR_CUSTODY_AAD_MISMATCH'],
      ['error', 'ERR_CUSTODY_TAMPERED'],
      ['error', 'ERR_CUSTODY_TAMPERED'],
    ]);
    // the event is accepted by the CMS audit log (identifiers only, within its size limit)
    const entry = normalizeInput(fromCustodyEvent(e), Date.now());
    expect(entry.operation).toBe('custody.rewrap_batch');
    expect(JSON.stringify(entry.details)).not.toMatch(/dcms1\./);
  }, 60_000);

  it('a disabled source version fails its items with ERR_CUSTODY_VERSION; the others are rewrapped', async () => {
    const { v, c } = await vault();
    open.push(v);
    await c.createKey(CTX, KEK, { purpose: 'wrap' });
    const a = await c.generateKey(CTX, KEK, 'aes128', bind(1));
    await c.rotateKey(CTX, KEK);
    const b = await c.generateKey(CTX, KEK, 'aes128', bind(2));
    await c.rotateKey(CTX, KEK);
    await c.disableVersion(CTX, KEK, 1);
    const out = await c.rewrapMany(CTX, KEK, [
      { blob: a.blob, binding: bind(1) },
      { blob: b.blob, binding: bind(2) },
    ]);
    expect(out[0]).toEqual({ error: expect.objectContaining({ code: 'ERR_CUSTODY_VERSION' }) });
    expect((out[1] as WrappedKey).kekVersion).toBe(3);
  });

  it('an audit sink that refuses the batch event releases nothing', async () => {
    const { v, c, sink } = await vault();
    open.push(v);
    await c.createKey(CTX, KEK, { purpose: 'wrap' });
    const a = await c.generateKey(CTX, KEK, 'aes128', bind(1));
    await c.rotateKey(CTX, KEK);
    sink.failing = true;
    await expect(c.rewrapMany(CTX, KEK, [{ blob: a.blob, binding: bind(1) }])).rejects.toMatchObject({ code: 'ERR_CUSTODY_AUDIT' });
  });

  it('bad input is a typed error', async () => {
    const { v, c } = await vault();
    open.push(v);
    await expect(c.rewrapMany(CTX, 'bad name!', [])).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
    await expect(c.rewrapMany(CTX, KEK, new Array(10_001).fill({}))).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
  });
});

describe('rewrap run page commit', () => {
  const dirs: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of closers) await c();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function setup(n: number): Promise<{ h: DatabaseHandle; c: Custody }> {
    const dir = mkdtempSync(path.join(tmpdir(), 'desfire-kek-batch-'));
    dirs.push(dir);
    const h = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'cms.sqlite') });
    const { v, c } = await vault();
    closers.push(async () => (await v.close(), await h.close()));
    await h.db.insertInto('tenants').values({ id: 'acme', name: 'Acme', created_at: 1 }).execute();
    await h.db.insertInto('applications').values({ aid: 'A1B2C3', tenant_id: 'acme', name: 'doors', key_type: 'aes', key_count: 3, layout_name: 't', definition: '{}', created_at: 1 }).execute();
    await c.createKey(CTX, KEK, { purpose: 'wrap' });
    const rows = [];
    for (let i = 0; i < n; i++) {
      const b = bind(i);
      rows.push({ uid: b.uid, aid: b.aid, key_no: b.keyNo, key_version: 1, kek: KEK, blob: (await c.generateKey(CTX, KEK, 'aes128', b)).blob, state: 'active', job_id: 'j', created_at: 1 });
    }
    for (let i = 0; i < rows.length; i += 500) await h.db.insertInto('card_key_blobs').values(rows.slice(i, i + 500)).execute();
    await c.rotateKey(CTX, KEK);
    return { h, c };
  }

  for (const native of [true, false]) {
    it(`${native ? 'native prepared statements' : 'through Kysely'}: every blob once, a blob changed meanwhile is left alone and counted as skipped`, async () => {
      const n = 1200;
      const { h, c } = await setup(n);
      const victim = bind(700);
      // a custody that lets "another writer" replace one blob while the page is being rewrapped
      const racing = Object.create(c) as Custody;
      racing.rewrapMany = async (ctx, kek, items) => {
        const out = await c.rewrapMany(ctx, kek, items);
        if (items.some((it) => it.binding.uid === victim.uid)) {
          await h.db.updateTable('card_key_blobs').set({ blob: 'dcms1.emb.1.0000000000000000.changed-by-another-writer' }).where('uid', '=', victim.uid).execute();
        }
        return out;
      };
      const kek = new KekService({ db: h.db, custody: racing, audit: NO_AUDIT, approvals: new ApprovalService({ db: h.db, audit: NO_AUDIT }), ...(native ? { sqlite: h.sqlite! } : {}) });
      const run = await kek.startRewrap(CTX, KEK);
      const first = await kek.runRewrap(CTX, run.id, { pageSize: 500, maxPages: 1 });
      expect(first).toMatchObject({ state: 'running', rewrapped: 500, skipped: 0, failed: 0 });
      const done = await kek.runRewrap(CTX, run.id, { pageSize: 500 });
      expect(done).toMatchObject({ state: 'done', rewrapped: n - 1, skipped: 1, failed: 0 });
      const rows = await h.db.selectFrom('card_key_blobs').selectAll().orderBy('uid').execute();
      expect(rows.find((r) => r.uid === victim.uid)!.blob).toContain('changed-by-another-writer');
      for (const r of rows) {
        if (r.uid === victim.uid) continue;
        expect(r.blob.startsWith('dcms1.emb.2.')).toBe(true);
        expect(await c.verifyWrapped(CTX, KEK, r.blob, { tenant: 'acme', aid: r.aid, uid: r.uid, keyNo: r.key_no, version: r.key_version })).toEqual({ kekVersion: 2 });
      }
    }, 60_000);
  }
});

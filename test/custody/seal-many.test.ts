// Custody.sealMany (a station job's keys in one call) and getKeys: one audit event per (tenant,
// AID) of the batch, each naming only its bindings and the recipient (tenant isolation of the audit
// views); all or nothing; a refused audit (any part) releases nothing; a sink with appendAll gets
// the parts as one unit; each event converts to an audit log entry with its tenant and AID columns
// and keeps its bindings.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AuditEvent, MemoryAuditSink } from '../../src/custody/audit.js';
import { fromCustodyEvent } from '../../src/cms/audit/custody-event.js';
import { generateReaderKeyPair, ReaderUnsealer } from '../../src/custody/sealed.js';
import type { CallerContext, KeyBinding, KeySource } from '../../src/custody/types.js';
import { type BackendUnderTest, embeddedFactory } from './backends.js';

const ctx: CallerContext = { actor: 'station-1', purpose: 'station job', correlationId: 'job-1' };
const reader = generateReaderKeyPair();
const recipient = { readerId: 'station-1', publicKey: reader.publicKey };
const UID = '04A1B2C3D4E5F6';
const cmkBind: KeyBinding = { tenant: 'issuer', aid: '000000', uid: UID, keyNo: 0, version: 1 };
const appBind = (keyNo: number, version = 1): KeyBinding => ({ tenant: 'library', aid: '11B001', uid: UID, keyNo, version });

let b: BackendUnderTest;
let sources: KeySource[];

beforeEach(async () => {
  b = await embeddedFactory.make();
  const c = b.custody;
  await c.createKey(ctx, 'kek.issuer', { purpose: 'wrap' });
  await c.createKey(ctx, 'library.11B001.1', { purpose: 'diversify', alg: 'aes128' });
  await c.rotateKey(ctx, 'library.11B001.1'); // version 2
  const cmk = await c.generateKey(ctx, 'kek.issuer', 'aes128', cmkBind);
  const input = Uint8Array.from([0x04, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x01, 0xb0, 0x11]);
  sources = [
    { kind: 'wrapped', kek: 'kek.issuer', blob: cmk.blob, binding: cmkBind },
    { kind: 'diversified', master: 'library.11B001.1', masterVersion: 2, input, binding: appBind(0, 2) },
    { kind: 'diversified', master: 'library.11B001.1', input: Uint8Array.of(1, 2, 3), binding: appBind(1, 2) },
  ];
  b.audit.clear();
});

afterEach(async () => {
  await b.cleanup();
});

describe('Custody.sealMany', () => {
  it('seals every key to the reader and audits one event per (tenant, AID), each naming only its keys, the master/KEK versions and the reader', async () => {
    const sealed = await b.custody.sealMany(ctx, sources, recipient, { ttlSeconds: 60 });
    expect(sealed).toHaveLength(3);
    // each delivery opens for its own binding, and equals what a single seal releases
    const un = new ReaderUnsealer('station-1', reader.privateKey);
    for (let i = 0; i < sources.length; i++) {
      const k = await un.unseal(sealed[i]!, sources[i]!.binding);
      const one = await un.unseal(await b.custody.seal(ctx, sources[i]!, recipient), sources[i]!.binding);
      expect(k).toEqual(one);
    }
    const batch = b.audit.events.filter((e) => e.op === 'seal_batch');
    // the issuer's CMK and the library's application keys: two events, in the order of the sources
    expect(batch.map((e) => [e.outcome, e.recipient, e.mode, e.correlationId])).toEqual([
      ['ok', 'station-1', 'session', 'job-1'],
      ['ok', 'station-1', 'session', 'job-1'],
    ]);
    expect(batch[0]!.seals).toEqual([{ key: 'kek.issuer', keyVersion: 1, binding: cmkBind }]);
    expect(batch[1]!.seals).toEqual([
      { key: 'library.11B001.1', keyVersion: 2, binding: appBind(0, 2) },
      { key: 'library.11B001.1', keyVersion: 2, binding: appBind(1, 2) },
    ]);
    // as audit log entries: the reader and card columns, the part's tenant and AID, its bindings in the details
    const entries = batch.map((e) => fromCustodyEvent(e));
    expect(entries[0]).toMatchObject({ operation: 'custody.seal_batch', result: 'ok', readerId: 'station-1', cardUid: UID, tenant: 'issuer', aid: '000000' });
    expect(entries[1]).toMatchObject({ operation: 'custody.seal_batch', result: 'ok', readerId: 'station-1', cardUid: UID, tenant: 'library', aid: '11B001' });
    expect((entries[1]!.details as { seals: unknown[] }).seals).toEqual([
      { keyName: 'library.11B001.1', kekVersion: 2, tenant: 'library', aid: '11B001', uid: UID, keyNo: 0, version: 2 },
      { keyName: 'library.11B001.1', kekVersion: 2, tenant: 'library', aid: '11B001', uid: UID, keyNo: 1, version: 2 },
    ]);
  });

  it("several tenants' keys in one batch: no event names another (tenant, AID)'s key; together they name every key once", async () => {
    await b.custody.createKey(ctx, 'access.A1C001.1', { purpose: 'diversify', alg: 'aes128' });
    const access = (keyNo: number): KeyBinding => ({ tenant: 'access', aid: 'A1C001', uid: UID, keyNo, version: 1 });
    const mixed: KeySource[] = [
      sources[0]!,
      { kind: 'diversified', master: 'access.A1C001.1', input: Uint8Array.of(9), binding: access(0) },
      sources[1]!,
      { kind: 'diversified', master: 'access.A1C001.1', input: Uint8Array.of(8), binding: access(1) },
      sources[2]!,
    ];
    b.audit.clear();
    expect(await b.custody.sealMany(ctx, mixed, recipient)).toHaveLength(5);
    const batch = b.audit.events.filter((e) => e.op === 'seal_batch');
    expect(batch.map((e) => e.seals!.map((x) => `${x.binding.tenant}/${x.binding.aid}/${x.binding.keyNo}`))).toEqual([['issuer/000000/0'], ['access/A1C001/0', 'access/A1C001/1'], ['library/11B001/0', 'library/11B001/1']]);
    for (const e of batch) {
      const entry = fromCustodyEvent(e);
      expect(e.seals!.every((x) => x.binding.tenant === entry.tenant && x.binding.aid === entry.aid)).toBe(true);
    }
  });

  it('all or nothing: one bad source fails the batch, audited as one error event per (tenant, AID) with the bindings asked for', async () => {
    const bad = [...sources, { kind: 'diversified', master: 'library.11B001.1', masterVersion: 9, input: Uint8Array.of(1), binding: appBind(2, 9) } as KeySource];
    await expect(b.custody.sealMany(ctx, bad, recipient)).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_CUSTODY_/) });
    expect(b.audit.events.map((e) => [e.op, e.outcome, e.seals!.length])).toEqual([
      ['seal_batch', 'error', 1],
      ['seal_batch', 'error', 3],
    ]);
    for (const e of b.audit.events) expect(e.code).toMatch(/^ERR_CUSTODY_/);
  });

  it('bad input is refused with a typed error: empty, too many, a malformed source, no recipient', async () => {
    await expect(b.custody.sealMany(ctx, [], recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
    await expect(b.custody.sealMany(ctx, Array.from({ length: 17 }, () => sources[1]!), recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
    await expect(b.custody.sealMany(ctx, [{ kind: 'nope' } as unknown as KeySource], recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
    await expect(b.custody.sealMany(ctx, sources, { readerId: 'x' } as never)).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_CUSTODY_/) });
    await expect(b.custody.sealMany({ actor: '' } as CallerContext, sources, recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
  });

  it('a refusing audit sink: nothing is released', async () => {
    b.audit.failing = true;
    await expect(b.custody.sealMany(ctx, sources, recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_AUDIT' });
  });

  it("a sink refusing one (tenant, AID)'s event refuses the whole call: nothing is released", async () => {
    const append = b.audit.append.bind(b.audit);
    b.audit.append = async (e) => {
      if (e.op === 'seal_batch' && e.seals?.some((x) => x.binding.tenant === 'library')) throw new Error('refused');
      return append(e);
    };
    await expect(b.custody.sealMany(ctx, sources, recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_AUDIT' });
    // the issuer's part was accepted by this sink: nothing was released all the same
    expect(b.audit.events.map((e) => [e.op, e.outcome, e.seals![0]!.binding.tenant])).toEqual([['seal_batch', 'ok', 'issuer']]);
  });

  it('a sink with appendAll gets the parts as ONE unit (not one append each); a refused unit releases nothing and leaves no part', async () => {
    const units: AuditEvent[][] = [];
    let refuse = false;
    const sink = b.audit as MemoryAuditSink & { appendAll?: (es: AuditEvent[]) => Promise<void> };
    sink.appendAll = async (es) => {
      units.push(es);
      if (refuse) throw new Error('refused');
      for (const e of es) await b.audit.append(e);
    };
    const append = vi.spyOn(b.audit, 'append');
    expect(await b.custody.sealMany(ctx, sources, recipient)).toHaveLength(3);
    expect(units.map((u) => u.map((e) => [e.op, e.outcome, e.seals![0]!.binding.tenant]))).toEqual([
      [
        ['seal_batch', 'ok', 'issuer'],
        ['seal_batch', 'ok', 'library'],
      ],
    ]);
    expect(append.mock.calls.length).toBe(2); // only from inside appendAll
    refuse = true;
    b.audit.clear();
    append.mockClear();
    await expect(b.custody.sealMany(ctx, sources, recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_AUDIT' });
    expect(units).toHaveLength(2);
    expect(append).not.toHaveBeenCalled();
    expect(b.audit.events).toEqual([]);
    // a failed batch's error events go as one unit too (best effort)
    refuse = false;
    const bad = [...sources, { kind: 'diversified', master: 'library.11B001.1', masterVersion: 9, input: Uint8Array.of(1), binding: appBind(2, 9) } as KeySource];
    await expect(b.custody.sealMany(ctx, bad, recipient)).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_CUSTODY_/) });
    expect(units.at(-1)!.map((e) => [e.op, e.outcome, e.seals!.length])).toEqual([
      ['seal_batch', 'error', 1],
      ['seal_batch', 'error', 3],
    ]);
    // a single (tenant, AID): one event, through append
    units.length = 0;
    append.mockClear();
    expect(await b.custody.sealMany(ctx, sources.slice(1), recipient)).toHaveLength(2);
    expect(units).toEqual([]);
    expect(append).toHaveBeenCalledTimes(1);
  });

  it('generateKeys: the parts as one unit to a sink with appendAll; refused, no blob is returned', async () => {
    const units: AuditEvent[][] = [];
    const sink = b.audit as MemoryAuditSink & { appendAll?: (es: AuditEvent[]) => Promise<void> };
    sink.appendAll = async (es) => {
      units.push(es);
      throw new Error('refused');
    };
    await expect(
      b.custody.generateKeys(ctx, [
        { kek: 'kek.issuer', alg: 'aes128', binding: { ...cmkBind, keyNo: 1 } },
        { kek: 'kek.issuer', alg: 'aes128', binding: appBind(3) },
      ]),
    ).rejects.toMatchObject({ code: 'ERR_CUSTODY_AUDIT' });
    expect(units.map((u) => u.map((e) => [e.op, e.outcome, e.seals![0]!.binding.tenant]))).toEqual([
      [
        ['generate_batch', 'ok', 'issuer'],
        ['generate_batch', 'ok', 'library'],
      ],
    ]);
    expect(b.audit.events).toEqual([]);
  });
});

describe('Custody.getKeys', () => {
  it('reads several keys in one call audited as one get_keys event naming them; an unknown name fails it', async () => {
    const ks = await b.custody.getKeys(ctx, ['library.11B001.1', 'kek.issuer']);
    expect(ks.map((k) => [k.name, k.latestVersion])).toEqual([
      ['library.11B001.1', 2],
      ['kek.issuer', 1],
    ]);
    expect(b.audit.events.map((e) => [e.op, e.outcome, e.keys])).toEqual([['get_keys', 'ok', ['library.11B001.1', 'kek.issuer']]]);
    expect(fromCustodyEvent(b.audit.events[0]!).details).toMatchObject({ keyNames: ['library.11B001.1', 'kek.issuer'] });
    await expect(b.custody.getKeys(ctx, ['library.11B001.1', 'nope'])).rejects.toMatchObject({ code: 'ERR_CUSTODY_UNKNOWN_KEY' });
    expect(b.audit.events.at(-1)).toMatchObject({ op: 'get_keys', outcome: 'error', code: 'ERR_CUSTODY_UNKNOWN_KEY' });
    await expect(b.custody.getKeys(ctx, [])).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
    await expect(b.custody.getKeys(ctx, ['bad name!'])).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
  });
});

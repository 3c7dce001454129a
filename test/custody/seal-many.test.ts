// Custody.sealMany (a station job's keys in one call) and getKeys: one audit event per batch that
// names every binding and the recipient; all or nothing; a refused audit releases nothing; the
// batch event converts to an audit log entry that keeps every binding.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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
  it('seals every key to the reader and audits ONE event naming every binding, the master/KEK versions and the reader', async () => {
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
    expect(batch).toHaveLength(1);
    const ev = batch[0]!;
    expect([ev.outcome, ev.recipient, ev.mode]).toEqual(['ok', 'station-1', 'session']);
    expect(ev.seals).toEqual([
      { key: 'kek.issuer', keyVersion: 1, binding: cmkBind },
      { key: 'library.11B001.1', keyVersion: 2, binding: appBind(0, 2) },
      { key: 'library.11B001.1', keyVersion: 2, binding: appBind(1, 2) },
    ]);
    // as an audit log entry: the reader and card columns, every binding in the details
    const entry = fromCustodyEvent(ev);
    expect(entry).toMatchObject({ operation: 'custody.seal_batch', result: 'ok', readerId: 'station-1', cardUid: UID, tenant: null, aid: null });
    expect((entry.details as { seals: unknown[] }).seals).toEqual([
      { keyName: 'kek.issuer', kekVersion: 1, tenant: 'issuer', aid: '000000', uid: UID, keyNo: 0, version: 1 },
      { keyName: 'library.11B001.1', kekVersion: 2, tenant: 'library', aid: '11B001', uid: UID, keyNo: 0, version: 2 },
      { keyName: 'library.11B001.1', kekVersion: 2, tenant: 'library', aid: '11B001', uid: UID, keyNo: 1, version: 2 },
    ]);
  });

  it('all or nothing: one bad source fails the batch, audited as one error event with the bindings asked for', async () => {
    const bad = [...sources, { kind: 'diversified', master: 'library.11B001.1', masterVersion: 9, input: Uint8Array.of(1), binding: appBind(2, 9) } as KeySource];
    await expect(b.custody.sealMany(ctx, bad, recipient)).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_CUSTODY_/) });
    expect(b.audit.events.map((e) => [e.op, e.outcome])).toEqual([['seal_batch', 'error']]);
    expect(b.audit.events[0]!.seals).toHaveLength(4);
    expect(b.audit.events[0]!.code).toMatch(/^ERR_CUSTODY_/);
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

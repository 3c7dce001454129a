// The per-delivery seal path (custody.seal on the embedded vault): the pieces made cheaper keep
// their output byte for byte and their checks, errors and audit event.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { diversify } from '../../src/core/crypto/an10922.js';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { Sealer } from '../../src/custody/seal.js';
import { type BindingClaim, deliveryHeaderJson, DELIVERY_TYP, generateReaderKeyPair, parseCompact, ReaderUnsealer } from '../../src/custody/sealed.js';
import { MemoryVaultStore } from '../../src/custody/store.js';
import type { KeyBinding } from '../../src/custody/types.js';

const ctx = { actor: 'reader:door-1', purpose: 'key_delivery', correlationId: 'c-1' };
const binding: KeyBinding = { tenant: 'campus', aid: 'A1C001', uid: '04A1B2C3D4E5F6', keyNo: 1, version: 1 };
const FAST_SCRYPT = { N: 1024, r: 8, p: 1 };

async function vault(store = new MemoryVaultStore()) {
  const v = await EmbeddedVault.open(store);
  if (!v.status().initialized) await v.init({ passphrase: 'correct horse battery', scrypt: FAST_SCRYPT });
  else await v.unsealWithPassphrase('correct horse battery');
  return v;
}

describe('deliveryHeaderJson', () => {
  const claim = (o: Partial<Record<keyof BindingClaim, unknown>> = {}) => ({ t: 'campus', aid: 'A1C001', uid: '04A1B2C3D4E5F6', kn: 1, kv: 2, exp: 1_764_250_000, ...o }) as BindingClaim;
  const ref = (kid: unknown, c: BindingClaim) => JSON.stringify({ alg: 'dir', enc: 'A256GCM', typ: DELIVERY_TYP, kid, dcms: c });

  it('is exactly JSON.stringify of the delivery header, for any strings and numbers', () => {
    const strings = ['campus', 'a"b', 'back\\slash', 'ünï€ode', 'tab\there', '\u0000\u001f\u2028', '', 'x'.repeat(128), '\ud800'];
    const numbers = [0, -0, 1, 13, 255, 1_764_250_000, 2 ** 53 + 2, 1.5, -7];
    for (const t of strings) for (const kid of ['sid', t]) expect(deliveryHeaderJson(kid, claim({ t }))).toBe(ref(kid, claim({ t })));
    for (const s of strings) expect(deliveryHeaderJson('k', claim({ aid: s, uid: s }))).toBe(ref('k', claim({ aid: s, uid: s })));
    for (const n of numbers) expect(deliveryHeaderJson('k', claim({ kn: n, kv: n, exp: n }))).toBe(ref('k', claim({ kn: n, kv: n, exp: n })));
  });

  it('falls back to JSON.stringify for anything else (a missing field, NaN, a number as text, an object)', () => {
    for (const o of [{ t: undefined }, { uid: 7 }, { kn: NaN }, { kv: Infinity }, { exp: '1764250000' }, { aid: { x: 1 } }, { kn: null }])
      expect(deliveryHeaderJson('k', claim(o))).toBe(ref('k', claim(o)));
    expect(deliveryHeaderJson(undefined as unknown as string, claim())).toBe(ref(undefined, claim()));
  });
});

describe('Sealer.sealCached', () => {
  it('answers only from a cached session; with seal it continues one session and one invocation counter', async () => {
    let t = 1_764_250_000_000;
    const kp = generateReaderKeyPair();
    const r = { readerId: 'door-1', publicKey: kp.publicKey };
    const sealer = new Sealer(3600, () => t);
    const key = new Uint8Array(randomBytes(16));
    expect(sealer.sealCached(key, binding, r)).toBeUndefined(); // no session yet: nothing done
    const a = await sealer.seal(key, binding, r, { ttlSeconds: 60 });
    const b = sealer.sealCached(key, binding, r, { ttlSeconds: 60 })!;
    const c = await sealer.seal(key, binding, r, { ttlSeconds: 60 });
    t += 1500;
    const d = sealer.sealCached(key, binding, r, { ttlSeconds: 600 })!;
    expect(sealer.sealCached(key, binding, r, { mode: 'ecdh-es' })).toBeUndefined();
    expect(new Set([a.session, b.session, c.session, d.session]).size).toBe(1);
    // IV = 4 session bytes || the 8-byte big-endian delivery count: 1, 2, 3, 4 with no gap or repeat
    const ivs = [a, b, c, d].map((s) => Buffer.from(parseCompact(s.jwe).parts[2]!, 'base64url'));
    expect(ivs.map((iv) => iv.readBigUInt64BE(4))).toEqual([1n, 2n, 3n, 4n]);
    expect(new Set(ivs.map((iv) => iv.subarray(0, 4).toString('hex'))).size).toBe(1);
    expect([a.expiresAt, b.expiresAt, c.expiresAt]).toEqual(Array(3).fill(new Date(1_764_250_060_000).toISOString()));
    expect(d.expiresAt).toBe(new Date(1_764_250_601_000).toISOString());
    expect(parseCompact(d.jwe).header).toEqual({ alg: 'dir', enc: 'A256GCM', typ: DELIVERY_TYP, kid: parseCompact(a.session!).header.sid, dcms: { t: 'campus', aid: 'A1C001', uid: '04A1B2C3D4E5F6', kn: 1, kv: 1, exp: 1_764_250_601 } });
    const unsealer = new ReaderUnsealer('door-1', kp.privateKey, () => t);
    for (const s of [a, b, c, d]) expect(await unsealer.unseal(s, binding)).toEqual(key);
    // a session that ends before the delivery would: none cached for it
    expect(sealer.sealCached(key, binding, r, { ttlSeconds: 86_400 })).toBeUndefined();
    // another key for the reader: not its session
    expect(sealer.sealCached(key, binding, { readerId: 'door-1', publicKey: generateReaderKeyPair().publicKey })).toBeUndefined();
  });
});

describe('custody.seal on the embedded vault', () => {
  it('audits one seal event with the same fields in the same order, the binding a snapshot; time follows the clock', async () => {
    let t = 1_764_250_000_123;
    const v = await vault();
    const sink = new MemoryAuditSink();
    const c = v.custody(sink, { now: () => t });
    await c.createKey(ctx, 'campus.A1C001.1', { purpose: 'diversify', alg: 'aes128' });
    await c.createKey(ctx, 'kek.campus', { purpose: 'wrap' });
    const kp = generateReaderKeyPair();
    const r = { readerId: 'door-1', publicKey: kp.publicKey };
    const input = Uint8Array.of(4, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x01, 0xc0, 0xa1);
    const b = { ...binding };
    sink.clear();
    await c.seal(ctx, { kind: 'diversified', master: 'campus.A1C001.1', masterVersion: 1, input, binding: b }, r);
    await c.seal(ctx, { kind: 'diversified', master: 'campus.A1C001.1', input, binding: b }, r, { ttlSeconds: 30 });
    t += 1;
    const w = await c.wrap(ctx, 'kek.campus', new Uint8Array(16), b);
    sink.clear();
    await c.seal(ctx, { kind: 'wrapped', kek: 'kek.campus', blob: w.blob, binding: b }, r, { mode: 'ecdh-es' });
    b.uid = '04000000000000'; // the caller reuses its object: the events keep what was sealed
    const common = { source: 'custody', backend: 'embedded', op: 'seal', outcome: 'ok', actor: ctx.actor, purpose: ctx.purpose, correlationId: ctx.correlationId };
    expect(sink.events.map((e) => Object.keys(e))).toEqual([['time', ...Object.keys(common), 'key', 'binding', 'recipient', 'mode', 'keyVersion']]);
    expect(sink.events[0]).toEqual({ time: new Date(t).toISOString(), ...common, key: 'kek.campus', binding, recipient: 'door-1', mode: 'ecdh-es', keyVersion: 1 });
  });

  it('diversified: the event names master and version, the key is the AN10922 derive; errors are audited and release nothing', async () => {
    const t = 1_764_250_000_123;
    const v = await vault();
    const sink = new MemoryAuditSink();
    const c = v.custody(sink, { now: () => t });
    const master = new Uint8Array(randomBytes(16));
    await c.importKey(ctx, 'campus.A1C001.1', { purpose: 'diversify', alg: 'aes128' }, master);
    const kp = generateReaderKeyPair();
    const r = { readerId: 'door-1', publicKey: kp.publicKey };
    const input = Uint8Array.of(4, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x01, 0xc0, 0xa1);
    sink.clear();
    const s = await c.seal(ctx, { kind: 'diversified', master: 'campus.A1C001.1', input, binding: { ...binding } }, r);
    expect(await new ReaderUnsealer('door-1', kp.privateKey, () => t).unseal(s, binding)).toEqual(diversify('aes128', master, input));
    const common = { time: new Date(t).toISOString(), source: 'custody', backend: 'embedded', op: 'seal', actor: ctx.actor, purpose: ctx.purpose, correlationId: ctx.correlationId };
    expect(sink.events).toEqual([{ ...common, outcome: 'ok', key: 'campus.A1C001.1', keyVersion: 1, binding, recipient: 'door-1', mode: 'session' }]);
    expect(Object.keys(sink.events[0]!)).toEqual(['time', 'source', 'backend', 'op', 'outcome', 'actor', 'purpose', 'correlationId', 'key', 'keyVersion', 'binding', 'recipient', 'mode']);
    sink.clear();
    // unknown master, input too long, bad TTL, a caller context missing: typed errors; the first three audited
    await expect(c.seal(ctx, { kind: 'diversified', master: 'campus.nope', input, binding }, r)).rejects.toMatchObject({ code: 'ERR_CUSTODY_UNKNOWN_KEY' });
    await expect(c.seal(ctx, { kind: 'diversified', master: 'campus.A1C001.1', input: new Uint8Array(32), binding }, r)).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
    await expect(c.seal(ctx, { kind: 'diversified', master: 'campus.A1C001.1', input, binding }, r, { ttlSeconds: 0 })).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
    await expect(c.seal({ actor: 'x' } as never, { kind: 'diversified', master: 'campus.A1C001.1', input, binding }, r)).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
    expect(sink.events.map((e) => [e.outcome, e.code, e.key])).toEqual([
      ['error', 'ERR_CUSTODY_UNKNOWN_KEY', 'campus.nope'],
      ['error', 'ERR_CUSTODY_INPUT', 'campus.A1C001.1'],
      ['error', 'ERR_CUSTODY_INPUT', 'campus.A1C001.1'],
    ]);
    // a refusing sink: nothing returned
    sink.failing = true;
    await expect(c.seal(ctx, { kind: 'diversified', master: 'campus.A1C001.1', input, binding }, r)).rejects.toMatchObject({ code: 'ERR_CUSTODY_AUDIT' });
    const text = JSON.stringify(sink.events);
    expect(text).not.toContain(Buffer.from(master).toString('hex'));
  });
});

describe('EmbeddedVault.derive', () => {
  it('derives from the master as it was when called: a seal right after the call does not change the key', async () => {
    const v = await vault();
    const master = new Uint8Array(randomBytes(16));
    await v.importKey('m1', { purpose: 'diversify', alg: 'aes128' }, master);
    const input = Uint8Array.of(1, 2, 3, 4, 5, 6, 7);
    const want = diversify('aes128', master, input);
    await v.derive('m1', 1, input); // the diversifier is cached
    const p = v.derive('m1', 1, input);
    await v.seal(); // wipes every diversifier at once
    expect((await p).key).toEqual(want);
  });

  it('a master another process added, looked up while the vault is sealed: the lookup after the refresh refuses (sealed), never derives under wiped keys', async () => {
    const store = new MemoryVaultStore();
    const v = await vault(store);
    const other = await vault(store);
    await other.importKey('m5', { purpose: 'diversify', alg: 'aes128' }, new Uint8Array(randomBytes(16)));
    const p = v.derive('m5', undefined, Uint8Array.of(7)); // unknown here: refreshes from the store first
    await v.seal(); // wipes the state the refresh works on
    await expect(p).rejects.toMatchObject({ code: 'ERR_CUSTODY_SEALED' });
  });

  it('is always a promise: sealed, unknown, wrong purpose and bad input reject with typed errors; a master another process added is found', async () => {
    const store = new MemoryVaultStore();
    const v = await vault(store);
    await v.importKey('w1', { purpose: 'wrap' }, new Uint8Array(32));
    const other = await vault(store);
    const master = new Uint8Array(randomBytes(24));
    await other.importKey('m3', { purpose: 'diversify', alg: '3k3des' }, master);
    expect(await v.derive('m3', undefined, Uint8Array.of(9))).toEqual({ version: 1, key: diversify('3k3des', master, Uint8Array.of(9)) });
    const call = (name: string, version: number | undefined, input: Uint8Array) => {
      let p: Promise<unknown> | undefined;
      expect(() => (p = v.derive(name, version, input))).not.toThrow();
      return p!;
    };
    await expect(call('nope', undefined, Uint8Array.of(1))).rejects.toMatchObject({ code: 'ERR_CUSTODY_UNKNOWN_KEY' });
    await expect(call('m3', 2, Uint8Array.of(1))).rejects.toMatchObject({ code: 'ERR_CUSTODY_VERSION' });
    await expect(call('w1', undefined, Uint8Array.of(1))).rejects.toMatchObject({ code: 'ERR_CUSTODY_WRONG_PURPOSE' });
    await expect(call('m3', 1, new Uint8Array(16))).rejects.toMatchObject({ code: 'ERR_CUSTODY_INPUT' });
    await v.seal();
    await expect(call('m3', 1, Uint8Array.of(1))).rejects.toMatchObject({ code: 'ERR_CUSTODY_SEALED' });
  });
});

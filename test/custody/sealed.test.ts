import { randomBytes } from 'node:crypto';
import { compactDecrypt } from 'jose';
import { describe, expect, it } from 'vitest';
import { Sealer } from '../../src/custody/seal.js';
import { generateReaderKeyPair, parseCompact, ReaderUnsealer } from '../../src/custody/sealed.js';
import type { KeyBinding } from '../../src/custody/types.js';

const binding: KeyBinding = { tenant: 'campus', aid: 'F00001', uid: '04A1B2C3D4E5F6', keyNo: 1, version: 2 };

function setup(now = () => Date.now()) {
  const kp = generateReaderKeyPair();
  const recipient = { readerId: 'reader-1', publicKey: kp.publicKey };
  return { kp, recipient, sealer: new Sealer(3600, now), unsealer: new ReaderUnsealer('reader-1', kp.privateKey, now) };
}

describe('sealed deliveries', () => {
  it('session mode round-trips, reuses one session JWE, and is standard JWE that jose decrypts', async () => {
    const { recipient, sealer, unsealer, kp } = setup();
    const key = new Uint8Array(randomBytes(16));
    const a = await sealer.seal(key, binding, recipient);
    const b = await sealer.seal(key, binding, recipient);
    expect(a.session).toBeDefined();
    expect(a.session).toBe(b.session);
    expect(a.jwe).not.toBe(b.jwe);
    expect(await unsealer.unseal(a, binding)).toEqual(key);
    expect(await unsealer.unseal(b, binding)).toEqual(key);
    // interop: jose opens the session JWE with the reader key, then the delivery with the session key
    const cek = (await compactDecrypt(a.session!, kp.privateKey)).plaintext;
    expect((await compactDecrypt(a.jwe, cek)).plaintext).toEqual(key);
    const h = parseCompact(a.jwe).header;
    expect(h).toMatchObject({ alg: 'dir', enc: 'A256GCM', typ: 'dcms-key+jwe', dcms: { t: 'campus', aid: 'F00001', uid: '04A1B2C3D4E5F6', kn: 1, kv: 2 } });
    expect(a.jwe).not.toContain(Buffer.from(key).toString('base64url'));
  });

  it('ecdh-es mode round-trips and jose decrypts it', async () => {
    const { recipient, sealer, unsealer, kp } = setup();
    const key = new Uint8Array(randomBytes(24));
    const s = await sealer.seal(key, binding, recipient, { mode: 'ecdh-es' });
    expect(s.session).toBeUndefined();
    expect(parseCompact(s.jwe).header.alg).toBe('ECDH-ES+A256KW');
    expect(await unsealer.unseal(s, binding)).toEqual(key);
    expect((await compactDecrypt(s.jwe, kp.privateKey)).plaintext).toEqual(key);
  });

  it('refuses another binding, an expired delivery, another reader and a modified delivery', async () => {
    let t = Date.now();
    const { recipient, sealer, unsealer } = setup(() => t);
    const key = new Uint8Array(randomBytes(16));
    const s = await sealer.seal(key, binding, recipient, { ttlSeconds: 60 });
    for (const other of [{ ...binding, uid: '04A1B2C3D4E5F7' }, { ...binding, keyNo: 2 }, { ...binding, version: 3 }, { ...binding, aid: 'F00002' }, { ...binding, tenant: 'bus' }])
      await expect(unsealer.unseal(s, other)).rejects.toMatchObject({ code: 'ERR_SEALED_BINDING' });
    const other = generateReaderKeyPair();
    await expect(new ReaderUnsealer('reader-1', other.privateKey).unseal(s, binding)).rejects.toMatchObject({ code: 'ERR_SEALED_DECRYPT' });
    const parts = s.jwe.split('.');
    const ct = Buffer.from(parts[3]!, 'base64url');
    ct[0]! ^= 1;
    parts[3] = ct.toString('base64url');
    await expect(unsealer.unseal({ ...s, jwe: parts.join('.') }, binding)).rejects.toMatchObject({ code: 'ERR_SEALED_DECRYPT' });
    // a delivery without its session, to a fresh reader state
    await expect(new ReaderUnsealer('reader-1', setup().kp.privateKey).unseal({ ...s, session: undefined }, binding)).rejects.toMatchObject({ code: 'ERR_SEALED_NO_SESSION' });
    t += 61_000;
    await expect(unsealer.unseal(s, binding)).rejects.toMatchObject({ code: 'ERR_SEALED_EXPIRED' });
  });

  it('rejects a recipient key that is not a P-256 public key', () => {
    const sealer = new Sealer();
    expect(() => sealer.check({ readerId: 'r', publicKey: { kty: 'EC', crv: 'P-384', x: 'AA', y: 'AA' } })).toThrow(expect.objectContaining({ code: 'ERR_CUSTODY_INPUT' }));
    const { kp } = setup();
    expect(() => sealer.check({ readerId: 'r', publicKey: { ...kp.publicKey, x: kp.publicKey.y! } })).toThrow(expect.objectContaining({ code: 'ERR_CUSTODY_INPUT' }));
    expect(() => sealer.check({ readerId: 'r', publicKey: kp.publicKey }, { ttlSeconds: 0 })).toThrow(expect.objectContaining({ code: 'ERR_CUSTODY_INPUT' }));
  });
});

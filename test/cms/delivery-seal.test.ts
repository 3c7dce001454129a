// The per-delivery sealing of online key delivery (src/custody/seal.ts): one AES-256-GCM per
// delivery under the reader's session key, with deterministic IVs (4 random bytes fixed per
// session || an 8-byte big-endian counter), and a new session when the reader's key changes.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Sealer } from '../../src/custody/seal.js';
import { generateReaderKeyPair, ReaderUnsealer } from '../../src/custody/sealed.js';
import type { KeyBinding } from '../../src/custody/types.js';

const binding: KeyBinding = { tenant: 'campus', aid: 'F00001', uid: '04A1B2C3D4E5F6', keyNo: 1, version: 2 };
const ivOf = (jwe: string) => Buffer.from(jwe.split('.')[2]!, 'base64url');

describe('delivery sealing', () => {
  it('IVs: one fixed 4-byte prefix per session, then the delivery count as 8 bytes big-endian', async () => {
    const kp = generateReaderKeyPair();
    const sealer = new Sealer();
    const r = { readerId: 'door-1', publicKey: kp.publicKey };
    const key = new Uint8Array(randomBytes(16));
    const ivs: Buffer[] = [];
    for (let i = 0; i < 3; i++) ivs.push(ivOf((await sealer.seal(key, binding, r)).jwe));
    for (const [i, iv] of ivs.entries()) {
      expect(iv.length).toBe(12);
      expect(iv.subarray(0, 4)).toEqual(ivs[0]!.subarray(0, 4));
      expect(iv.readBigUInt64BE(4)).toBe(BigInt(i + 1));
    }
  });

  it("a reader's first keys sealed concurrently share ONE session (one key exchange), with distinct IVs", async () => {
    const kp = generateReaderKeyPair();
    const sealer = new Sealer();
    const r = { readerId: 'station-1', publicKey: kp.publicKey };
    const keys = Array.from({ length: 8 }, () => new Uint8Array(randomBytes(16)));
    const sealed = await Promise.all(keys.map((k) => sealer.seal(k, binding, r)));
    expect(new Set(sealed.map((x) => x.session)).size).toBe(1);
    expect(new Set(sealed.map((x) => ivOf(x.jwe).toString('hex'))).size).toBe(8);
    const u = new ReaderUnsealer('station-1', kp.privateKey);
    for (const [i, x] of sealed.entries()) expect(await u.unseal(x, binding)).toEqual(keys[i]);
  });

  it("a reader's new key starts a new session sealed to it; the old key opens none of its deliveries", async () => {
    const a = generateReaderKeyPair();
    const b = generateReaderKeyPair();
    const sealer = new Sealer();
    const key = new Uint8Array(randomBytes(16));
    const first = await sealer.seal(key, binding, { readerId: 'door-1', publicKey: a.publicKey });
    const again = await sealer.seal(key, binding, { readerId: 'door-1', publicKey: { ...a.publicKey } }); // same key, another object
    expect(again.session).toBe(first.session);
    const moved = await sealer.seal(key, binding, { readerId: 'door-1', publicKey: b.publicKey });
    expect(moved.session).not.toBe(first.session);
    expect(ivOf(moved.jwe).readBigUInt64BE(4)).toBe(1n);
    expect(await new ReaderUnsealer('door-1', b.privateKey).unseal(moved, binding)).toEqual(key);
    await expect(new ReaderUnsealer('door-1', a.privateKey).unseal(moved, binding)).rejects.toMatchObject({ code: 'ERR_SEALED_DECRYPT' });
    // only x changed (same y): still another key
    const mixed = { ...a.publicKey, y: b.publicKey.y };
    await expect(sealer.seal(key, binding, { readerId: 'door-1', publicKey: mixed })).rejects.toThrow();
  });
});

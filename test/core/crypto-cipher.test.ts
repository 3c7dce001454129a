// BlockCipher's CBC (one OpenSSL call per message on a persistent CBC object) against a fresh
// node:crypto CBC cipher per message, interleaved with every other operation on the same object.
import { createCipheriv } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockCipher, CryptoInputError, Diversifier, type KeyType, keyLength } from '../../src/core/crypto/index.js';

const OPENSSL: Record<KeyType, string> = { des: 'des-ede3-cbc', '2k3des': 'des-ede3-cbc', '3k3des': 'des-ede3-cbc', aes: 'aes-128-cbc' };
function expand(type: KeyType, k: Uint8Array): Uint8Array {
  if (type === 'des') return Uint8Array.of(...k, ...k, ...k);
  if (type === '2k3des') return Uint8Array.of(...k, ...k.subarray(0, 8));
  return k;
}
function reference(type: KeyType, key: Uint8Array, iv: Uint8Array, data: Uint8Array): string {
  const c = createCipheriv(OPENSSL[type], expand(type, key), iv);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(data), c.final()]).toString('hex');
}

describe('BlockCipher CBC', () => {
  for (const type of ['des', '2k3des', '3k3des', 'aes'] as KeyType[]) {
    const bs = type === 'aes' ? 16 : 8;
    it(`${type}: cbcEncrypt equals a fresh CBC cipher for any IV sequence; cbcDecrypt inverts it; legacy send mode inverts`, () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: keyLength(type), maxLength: keyLength(type) }),
          fc.array(fc.record({ iv: fc.uint8Array({ minLength: bs, maxLength: bs }), blocks: fc.integer({ min: 0, max: 5 }), seed: fc.integer() }), { minLength: 1, maxLength: 6 }),
          (key, ops) => {
            const c = new BlockCipher(type, key);
            for (const op of ops) {
              const data = Uint8Array.from({ length: op.blocks * bs }, (_, i) => (op.seed * 31 + i * 7) & 0xff);
              const enc = c.cbcEncrypt(op.iv, data);
              expect(Buffer.from(enc).toString('hex')).toBe(reference(type, key, op.iv, data));
              expect(Buffer.from(c.cbcDecrypt(op.iv, enc)).toString('hex')).toBe(Buffer.from(data).toString('hex'));
              expect(Buffer.from(c.legacySendEncryptInverse(c.legacySendDecrypt(data))).toString('hex')).toBe(Buffer.from(data).toString('hex'));
              const ivIn = op.iv.map((b) => b ^ 0x5a);
              expect(Buffer.from(c.cbcEncryptWithEncipheredIv(ivIn, data)).toString('hex')).toBe(reference(type, key, c.ecbEncrypt(ivIn), data));
              c.ecbEncrypt(new Uint8Array(bs)); // other operations in between must not disturb the chaining
            }
            c.destroy();
          },
        ),
        { numRuns: 40 },
      );
    });
  }
  it('rejects partial blocks and bad IVs', () => {
    const c = new BlockCipher('aes', new Uint8Array(16));
    expect(() => c.cbcEncrypt(new Uint8Array(16), new Uint8Array(15))).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_INPUT' }));
    expect(() => c.cbcEncrypt(new Uint8Array(8), new Uint8Array(16))).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_INPUT' }));
  });
});

describe('a destroyed key', () => {
  it('refuses every operation (typed) instead of computing under the wiped key', () => {
    for (const type of ['des', '2k3des', '3k3des', 'aes'] as KeyType[]) {
      const key = Uint8Array.from({ length: keyLength(type) }, (_, i) => i + 1);
      const c = new BlockCipher(type, key);
      const block = new Uint8Array(c.blockSize);
      c.ecbEncrypt(block);
      c.cbcEncrypt(block, block);
      c.destroy();
      for (const op of [() => c.ecbEncrypt(block), () => c.ecbDecrypt(block), () => c.cbcEncrypt(block, block)]) expect(op).toThrow(CryptoInputError);
    }
    // an AN10922 diversifier (custody caches one per master version and destroys it on a vault seal)
    const d = new Diversifier('aes128', new Uint8Array(16).fill(7));
    d.derive(Uint8Array.of(1, 2, 3));
    d.destroy();
    expect(() => d.derive(Uint8Array.of(1, 2, 3))).toThrow(CryptoInputError);
  });

  it('frees its OpenSSL contexts at destroy (finalised: they take no more data), not at some later garbage collection', () => {
    for (const type of ['des', 'aes'] as KeyType[]) {
      const c = new BlockCipher(type, new Uint8Array(keyLength(type)).fill(3));
      const block = new Uint8Array(c.blockSize);
      c.ecbEncrypt(Uint8Array.of(...block, ...block)); // the ECB encipher
      c.ecbDecrypt(block); // the ECB decipher
      c.cbcEncrypt(block, block); // the CBC encipher
      const objects = ['enc', 'dec', 'cbc'].map((k) => (c as unknown as Record<string, { update(b: Uint8Array): unknown }>)[k]!);
      expect(objects.every((o) => typeof o.update === 'function')).toBe(true);
      c.destroy();
      for (const o of objects) expect(() => o.update(block)).toThrow(/unsupported state/);
    }
  });
});

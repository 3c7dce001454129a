import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clearParity, desKeysEquivalent, effectiveKeyType, fromHex, getDesKeyVersion, keyVersionOf, setDesKeyVersion, toHex } from '../../src/core/crypto/index.js';

describe('DES key version in parity bits', () => {
  it('writes the version MSB first into the LSBs of bytes 0..7 and clears the other parity bits', () => {
    const k = fromHex('FFFFFFFFFFFFFFFF FFFFFFFFFFFFFFFF');
    expect(toHex(setDesKeyVersion(k, 0xa5))).toBe('FFFEFFFEFEFFFEFF' + 'FEFEFEFEFEFEFEFE');
    expect(getDesKeyVersion(fromHex('00102031405060708090A0B0B0A09080'))).toBe(0x10);
  });
  it('round-trips every version for 8-, 16- and 24-byte keys without touching key bits', () => {
    fc.assert(
      fc.property(fc.constantFrom(8, 16, 24).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })), fc.integer({ min: 0, max: 255 }), (k, v) => {
        const s = setDesKeyVersion(k, v);
        expect(getDesKeyVersion(s)).toBe(v);
        expect(desKeysEquivalent(s, k)).toBe(true);
        expect(toHex(clearParity(s))).toBe(toHex(clearParity(k)));
      }),
    );
  });
  it('rejects bad lengths and versions', () => {
    expect(() => setDesKeyVersion(new Uint8Array(15), 1)).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_INPUT' }));
    expect(() => setDesKeyVersion(new Uint8Array(16), 256)).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_INPUT' }));
    expect(() => getDesKeyVersion(new Uint8Array(7))).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_INPUT' }));
  });
  it('a 2K3DES key with equal halves is effectively DES; AES keys have no version in their bytes', () => {
    expect(effectiveKeyType('2k3des', fromHex('0011223344556677 0111223344556776'))).toBe('des');
    expect(effectiveKeyType('2k3des', fromHex('0011223344556677 0211223344556677'))).toBe('2k3des');
    expect(keyVersionOf('aes', new Uint8Array(16))).toBeUndefined();
    expect(keyVersionOf('3k3des', setDesKeyVersion(new Uint8Array(24), 9))).toBe(9);
  });
});

// The pooled CSPRNG (src/core/crypto/random.ts): fresh arrays of the asked length, never the same
// bytes twice (across pool refills too), large requests straight from the OS, bad lengths refused.
import { describe, expect, it } from 'vitest';
import { randomBytesPooled } from '../../src/core/crypto/random.js';
import { toHex } from '../../src/core/crypto/bytes.js';

describe('randomBytesPooled', () => {
  it('hands out fresh, distinct nonces across several pool refills', () => {
    const seen = new Set<string>();
    const outs: Uint8Array[] = [];
    for (let i = 0; i < 2000; i++) {
      const r = randomBytesPooled(i % 3 === 0 ? 8 : 16); // 2000 draws: ~7 refills of the 4 KiB pool
      expect(r).toBeInstanceOf(Uint8Array);
      expect(r.length).toBe(i % 3 === 0 ? 8 : 16);
      seen.add(toHex(r));
      outs.push(r);
    }
    expect(seen.size).toBe(2000);
    // each result is the caller's own copy: drawing more does not change it
    const first = toHex(outs[0]!);
    randomBytesPooled(4000);
    expect(toHex(outs[0]!)).toBe(first);
    // not all zero (the pool's taken bytes are zeroed: a result must never be a view of them)
    expect(outs.every((o) => o.some((b) => b !== 0))).toBe(true);
  });

  it('large requests and zero', () => {
    expect(randomBytesPooled(0)).toEqual(new Uint8Array(0));
    const big = randomBytesPooled(5000);
    expect(big.length).toBe(5000);
    expect(new Set(big).size).toBeGreaterThan(200);
  });

  it('refuses a bad length', () => {
    for (const n of [-1, 1.5, Number.NaN]) expect(() => randomBytesPooled(n)).toThrow(RangeError);
  });
});

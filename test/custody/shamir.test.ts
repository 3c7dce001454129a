import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { combine, gfDiv, gfMul, split, splitWith } from '../../src/custody/shamir.js';

describe('GF(256)', () => {
  it('multiplication matches the AES field (FIPS-197 example 57 * 83 = c1) and division inverts it', () => {
    expect(gfMul(0x57, 0x83)).toBe(0xc1);
    expect(gfMul(0x57, 0x13)).toBe(0xfe);
    fc.assert(fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 255 }), (a, b) => gfDiv(gfMul(a, b), b) === a));
  });
});

describe('Shamir M-of-N', () => {
  it('any M of the N shares reconstruct the secret; M-1 shares do not', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 48 }),
        fc.integer({ min: 2, max: 7 }).chain((m) => fc.tuple(fc.constant(m), fc.integer({ min: m, max: 9 }))),
        fc.infiniteStream(fc.integer()),
        (secret, [m, n], rnd) => {
          const shares = split(secret, n, m);
          // a random subset of size m, in random order
          const order = shares.map((s) => ({ s, k: rnd.next().value as number })).sort((a, b) => a.k - b.k).map((x) => x.s);
          expect(combine(order.slice(0, m))).toEqual(secret);
          expect(combine(order)).toEqual(secret);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('M-1 shares reveal nothing: for every secret, each possible pair of share values arises from exactly one polynomial (M = 3)', () => {
    // Exhaustive over the two random coefficients of one byte: the map (a1, a2) -> (y at x=2, y at x=5)
    // is a bijection for every secret value, so two shares are uniformly distributed whatever the secret.
    for (const secret of [0x00, 0xa5]) {
      const seen = new Uint8Array(65536);
      for (let a1 = 0; a1 < 256; a1++)
        for (let a2 = 0; a2 < 256; a2++) {
          const sh = splitWith(Uint8Array.of(secret), 5, 3, () => Uint8Array.of(a1, a2));
          seen[(sh[1]!.y[0]! << 8) | sh[4]!.y[0]!]!++;
        }
      expect(seen.every((c) => c === 1)).toBe(true);
    }
  });

  it('with M-1 shares every candidate secret is equally consistent (M = 2, exhaustive)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 1 }), fc.integer({ min: 1, max: 4 }), (secret, xi) => {
        const observed = split(secret, 4, 2)[xi - 1]!;
        // count, per candidate secret, the coefficient choices that would have produced the observed share
        const counts = new Uint16Array(256);
        for (let cand = 0; cand < 256; cand++)
          for (let a1 = 0; a1 < 256; a1++) if (splitWith(Uint8Array.of(cand), 4, 2, () => Uint8Array.of(a1))[xi - 1]!.y[0] === observed.y[0]) counts[cand]!++;
        expect(counts.every((c) => c === 1)).toBe(true);
      }),
      { numRuns: 2 },
    );
  });

  it('rejects bad parameters and duplicate shares', () => {
    expect(() => split(new Uint8Array(4), 2, 1)).toThrow(RangeError);
    expect(() => split(new Uint8Array(4), 2, 3)).toThrow(RangeError);
    expect(() => split(new Uint8Array(4), 256, 3)).toThrow(RangeError);
    const s = split(new Uint8Array(4), 3, 2);
    expect(() => combine([s[0]!, s[0]!])).toThrow(RangeError);
  });
});

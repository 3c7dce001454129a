// Shamir secret sharing over GF(2^8) (AES field, polynomial x^8 + x^4 + x^3 + x + 1), byte-wise:
// each secret byte is the constant term of its own random polynomial of degree threshold-1, and
// share i is the evaluation at x = i (1..255). Any `threshold` shares reconstruct by Lagrange
// interpolation at 0; fewer reveal nothing (for every candidate secret there is exactly one
// polynomial through the given shares, so all secrets are equally likely).
import { randomBytes } from 'node:crypto';
import { wipe } from '../core/crypto/bytes.js';

const EXP = new Uint8Array(510);
const LOG = new Uint8Array(256);
(() => {
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    // multiply by the generator 3: x*2 ^ x
    let x2 = x << 1;
    if (x2 & 0x100) x2 ^= 0x11b;
    x = x2 ^ x;
  }
  for (let i = 255; i < 510; i++) EXP[i] = EXP[i - 255]!;
})();

export function gfMul(a: number, b: number): number {
  if (a === 0 || b === 0) return 0;
  return EXP[LOG[a]! + LOG[b]!]!;
}

export function gfDiv(a: number, b: number): number {
  if (b === 0) throw new RangeError('division by zero in GF(256)');
  if (a === 0) return 0;
  return EXP[LOG[a]! + 255 - LOG[b]!]!;
}

export interface Share {
  /** 1..255 */
  x: number;
  y: Uint8Array;
}

function evalPoly(coeffs: Uint8Array, x: number): number {
  // Horner: coeffs[0] is the secret byte
  let y = 0;
  for (let i = coeffs.length - 1; i >= 0; i--) y = gfMul(y, x) ^ coeffs[i]!;
  return y;
}

/**
 * Split with explicit random coefficients (testing): `coefficients(byteIndex)` returns the
 * threshold-1 non-constant coefficients of that byte's polynomial.
 */
export function splitWith(secret: Uint8Array, shares: number, threshold: number, coefficients: (i: number) => Uint8Array): Share[] {
  if (!Number.isInteger(threshold) || threshold < 2) throw new RangeError('threshold must be at least 2');
  if (!Number.isInteger(shares) || shares < threshold || shares > 255) throw new RangeError('shares must be threshold..255');
  const out: Share[] = Array.from({ length: shares }, (_, i) => ({ x: i + 1, y: new Uint8Array(secret.length) }));
  const poly = new Uint8Array(threshold);
  for (let b = 0; b < secret.length; b++) {
    poly[0] = secret[b]!;
    const c = coefficients(b);
    poly.set(c.subarray(0, threshold - 1), 1);
    for (const s of out) s.y[b] = evalPoly(poly, s.x);
    wipe(c);
  }
  wipe(poly);
  return out;
}

export function split(secret: Uint8Array, shares: number, threshold: number): Share[] {
  return splitWith(secret, shares, threshold, () => new Uint8Array(randomBytes(threshold - 1)));
}

/** Lagrange interpolation at 0 of the given shares (distinct x, equal lengths). */
export function combine(shares: Share[]): Uint8Array {
  if (shares.length === 0) throw new RangeError('no shares');
  const len = shares[0]!.y.length;
  const xs = new Set<number>();
  for (const s of shares) {
    if (!Number.isInteger(s.x) || s.x < 1 || s.x > 255) throw new RangeError('share x must be 1..255');
    if (xs.has(s.x)) throw new RangeError('duplicate share');
    if (s.y.length !== len) throw new RangeError('shares of different lengths');
    xs.add(s.x);
  }
  // basis weights l_i(0) = prod_{j != i} x_j / (x_j ^ x_i)
  const w = shares.map((si, i) => {
    let num = 1;
    let den = 1;
    shares.forEach((sj, j) => {
      if (i === j) return;
      num = gfMul(num, sj.x);
      den = gfMul(den, sj.x ^ si.x);
    });
    return gfDiv(num, den);
  });
  const out = new Uint8Array(len);
  for (let b = 0; b < len; b++) {
    let v = 0;
    for (let i = 0; i < shares.length; i++) v ^= gfMul(w[i]!, shares[i]!.y[b]!);
    out[b] = v;
  }
  return out;
}

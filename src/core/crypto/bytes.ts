// Byte helpers shared by the whole core. Pure: Uint8Array in, Uint8Array out.

export type Bytes = Uint8Array;

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/** Thrown for malformed hex input (odd length or a non-hex digit). */
export class HexError extends Error {
  readonly code = 'ERR_HEX';
  constructor(message: string) {
    super(message);
    this.name = 'HexError';
  }
}

/** Parse hex; spaces, colons and dashes between bytes are ignored. */
export function fromHex(hex: string): Uint8Array {
  const clean = hex.replace(/[\s:-]/g, '');
  if (!HEX.test(clean)) throw new HexError(`not a hex string: ${clean.length % 2 ? 'odd number of digits' : 'non-hex digit'}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
  return out;
}

export function toHex(bytes: Uint8Array, upper = true): string {
  const s = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  return upper ? s.toUpperCase() : s;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** a XOR b (same length). */
export function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length !== b.length) throw new RangeError(`xor of unequal lengths ${a.length} and ${b.length}`);
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/**
 * Constant-time equality: every byte is compared (no early exit). Different lengths compare unequal
 * (length is not secret). A JS loop rather than crypto.timingSafeEqual: the inputs are MACs and
 * nonces of 4..32 bytes, where the native call costs more than the comparison.
 */
export function equalCT(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Overwrite secret material with zeros. Accepts any number of buffers; undefined is ignored. */
export function wipe(...buffers: (Uint8Array | undefined)[]): void {
  for (const b of buffers) b?.fill(0);
}

/** Rotate left by `n` bytes (DESFire uses n = 1 for RndA'/RndB'). */
export function rotl(a: Uint8Array, n = 1): Uint8Array {
  const k = n % a.length;
  return concat(a.subarray(k), a.subarray(0, k));
}

export function rotr(a: Uint8Array, n = 1): Uint8Array {
  return rotl(a, a.length - (n % a.length));
}

export function u16le(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, (v >>> 8) & 0xff);
}

export function u24le(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff);
}

export function u32le(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
}

export function readU16le(b: Uint8Array, o = 0): number {
  return b[o]! | (b[o + 1]! << 8);
}

export function readU24le(b: Uint8Array, o = 0): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16);
}

export function readU32le(b: Uint8Array, o = 0): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** Signed 32-bit little endian (value files hold signed values). */
export function readI32le(b: Uint8Array, o = 0): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}

// NXP Leakage Resilient Primitive (AN12304), as DESFire EV3 / NTAG 424 use it: m = 4 (16
// plaintexts), updated keys on demand, EvalLRP over nibbles, LRICB encryption with a counter, and
// CMAC-LRP. Every AES operation here runs under a different key, so each is a one-shot ECB (LRP is
// not on any hot path of this project).
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { wipe } from './bytes.js';
import { CryptoInputError } from './cipher.js';

const AA = new Uint8Array(16).fill(0xaa);
const FIVE5 = new Uint8Array(16).fill(0x55);
const ZERO = new Uint8Array(16);

function aesEnc(key: Uint8Array, block: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-128-ecb', key, null);
  c.setAutoPadding(false);
  const b = c.update(block);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function aesDec(key: Uint8Array, block: Uint8Array): Uint8Array {
  const c = createDecipheriv('aes-128-ecb', key, null);
  c.setAutoPadding(false);
  const b = c.update(block);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function dbl(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  let carry = 0;
  for (let i = 15; i >= 0; i--) {
    const b = block[i]!;
    out[i] = ((b << 1) | carry) & 0xff;
    carry = b >>> 7;
  }
  if (carry) out[15]! ^= 0x87;
  return out;
}

/** An LRP instance for one AES-128 key: the 16 plaintexts and the updated keys (on demand). */
export class Lrp {
  readonly plaintexts: Uint8Array[];
  private readonly updated: Uint8Array[] = [];
  private h: Uint8Array;

  constructor(key: Uint8Array) {
    if (key.length !== 16) throw new CryptoInputError(`LRP key must be 16 bytes, got ${key.length}`);
    let h = aesEnc(key, FIVE5);
    this.plaintexts = [];
    for (let i = 0; i < 16; i++) {
      this.plaintexts.push(aesEnc(h, AA));
      const n = aesEnc(h, FIVE5);
      wipe(h);
      h = n;
    }
    wipe(h);
    this.h = aesEnc(key, AA);
  }

  /** Updated key i (generated in order, kept). */
  updatedKey(i: number): Uint8Array {
    while (this.updated.length <= i) {
      this.updated.push(aesEnc(this.h, AA));
      const n = aesEnc(this.h, FIVE5);
      wipe(this.h);
      this.h = n;
    }
    return this.updated[i]!;
  }

  /** EvalLRP(P, UK_i, x, final): x consumed nibble by nibble, most significant nibble first. */
  eval(updatedKeyIndex: number, input: Uint8Array, nibbles: number, final: boolean): Uint8Array {
    if (nibbles > input.length * 2) throw new CryptoInputError('EvalLRP: more nibbles than input');
    let y: Uint8Array = this.updatedKey(updatedKeyIndex).slice();
    for (let i = 0; i < nibbles; i++) {
      const b = input[i >> 1]!;
      const nib = i & 1 ? b & 0x0f : b >>> 4;
      const n = aesEnc(y, this.plaintexts[nib]!);
      wipe(y);
      y = n;
    }
    if (final) {
      const n = aesEnc(y, ZERO);
      wipe(y);
      y = n;
    }
    return y;
  }

  destroy(): void {
    wipe(this.h, ...this.plaintexts, ...this.updated);
  }
}

/** Big-endian increment with wrap (in place). */
function increment(counter: Uint8Array): void {
  for (let i = counter.length - 1; i >= 0; i--) {
    counter[i] = (counter[i]! + 1) & 0xff;
    if (counter[i] !== 0) return;
  }
}

/**
 * LRICB encryption with updated key `uk` and `counter` (advanced in place, one step per block).
 * With `pad` the data gets 80 00.. (always adds a block when aligned); without, it must be aligned.
 */
export function lricbEncrypt(lrp: Lrp, uk: number, counter: Uint8Array, data: Uint8Array, pad: boolean): Uint8Array {
  let m: Uint8Array;
  if (pad) {
    m = new Uint8Array((Math.floor(data.length / 16) + 1) * 16);
    m.set(data);
    m[data.length] = 0x80;
  } else {
    if (data.length % 16 !== 0) throw new CryptoInputError('LRICB without padding needs whole blocks');
    m = data;
  }
  const out = new Uint8Array(m.length);
  for (let o = 0; o < m.length; o += 16) {
    const y = lrp.eval(uk, counter, counter.length * 2, true);
    out.set(aesEnc(y, m.subarray(o, o + 16)), o);
    wipe(y);
    increment(counter);
  }
  if (m !== data) wipe(m);
  return out;
}

/** LRICB decryption; with `pad` the 80 00.. padding is checked and removed (CryptoInputError when bad). */
export function lricbDecrypt(lrp: Lrp, uk: number, counter: Uint8Array, data: Uint8Array, pad: boolean): Uint8Array {
  if (data.length % 16 !== 0) throw new CryptoInputError('LRICB ciphertext must be whole blocks');
  const out = new Uint8Array(data.length);
  for (let o = 0; o < data.length; o += 16) {
    const y = lrp.eval(uk, counter, counter.length * 2, true);
    out.set(aesDec(y, data.subarray(o, o + 16)), o);
    wipe(y);
    increment(counter);
  }
  if (!pad) return out;
  let i = out.length - 1;
  while (i >= Math.max(0, out.length - 16) && out[i] === 0) i--;
  if (i < Math.max(0, out.length - 16) || out[i] !== 0x80) {
    wipe(out);
    throw new CryptoInputError('bad LRICB padding');
  }
  const r = out.slice(0, i);
  wipe(out);
  return r;
}

/** CMAC-LRP under updated key `uk` (AN12304 3.4): CMAC with EvalLRP(.., 32 nibbles, final) as the block function. */
export class LrpCmac {
  readonly k1: Uint8Array;
  readonly k2: Uint8Array;

  constructor(
    readonly lrp: Lrp,
    readonly uk: number,
  ) {
    const k0 = lrp.eval(uk, ZERO, 32, true);
    this.k1 = dbl(k0);
    this.k2 = dbl(this.k1);
    wipe(k0);
  }

  mac(msg: Uint8Array): Uint8Array {
    const full = msg.length > 0 && msg.length % 16 === 0;
    const n = full ? msg.length : msg.length + (16 - (msg.length % 16));
    const m = new Uint8Array(n);
    m.set(msg);
    if (!full) m[msg.length] = 0x80;
    const sub = full ? this.k1 : this.k2;
    for (let i = 0; i < 16; i++) m[n - 16 + i]! ^= sub[i]!;
    let y: Uint8Array = new Uint8Array(16);
    for (let o = 0; o < n; o += 16) {
      for (let i = 0; i < 16; i++) y[i]! ^= m[o + i]!;
      const next = this.lrp.eval(this.uk, y, 32, true);
      wipe(y);
      y = next;
    }
    wipe(m);
    return y;
  }

  destroy(): void {
    wipe(this.k1, this.k2);
  }
}

/** One-shot CMAC-LRP with updated key 0 of `key`. */
export function cmacLrp(key: Uint8Array, msg: Uint8Array): Uint8Array {
  const l = new Lrp(key);
  const c = new LrpCmac(l, 0);
  try {
    return c.mac(msg);
  } finally {
    c.destroy();
    l.destroy();
  }
}

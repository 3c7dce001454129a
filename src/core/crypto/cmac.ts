// CMAC (NIST SP 800-38B / RFC 4493) for AES (Rb = 0x87) and the DES family (Rb = 0x1B).
// DESFire EV1 runs CMAC with the running session IV as the CBC IV; `mac(msg, iv)` allows that.
import { wipe } from './bytes.js';
import { BlockCipher, type KeyType } from './cipher.js';

function dbl(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(block.length);
  let carry = 0;
  for (let i = block.length - 1; i >= 0; i--) {
    const b = block[i]!;
    out[i] = ((b << 1) | carry) & 0xff;
    carry = b >>> 7;
  }
  if (carry) out[block.length - 1]! ^= block.length === 16 ? 0x87 : 0x1b;
  return out;
}

/** A CMAC key with its subkeys precomputed. `destroy()` wipes them. */
export class Cmac {
  readonly cipher: BlockCipher;
  readonly k1: Uint8Array;
  readonly k2: Uint8Array;
  private readonly owned: boolean;

  constructor(type: KeyType, key: Uint8Array);
  constructor(cipher: BlockCipher);
  constructor(a: KeyType | BlockCipher, key?: Uint8Array) {
    if (a instanceof BlockCipher) {
      this.cipher = a;
      this.owned = false;
    } else {
      this.cipher = new BlockCipher(a, key!);
      this.owned = true;
    }
    const l = this.cipher.ecbEncrypt(new Uint8Array(this.cipher.blockSize));
    this.k1 = dbl(l);
    this.k2 = dbl(this.k1);
    wipe(l);
  }

  /**
   * The full CMAC block of `msg`. `iv` (default zero) is the CBC IV, for DESFire EV1's IV chaining.
   * The last block is padded 80 00.. and XORed with K2 when incomplete (or empty), with K1 when full.
   */
  mac(msg: Uint8Array, iv?: Uint8Array): Uint8Array {
    return this.macParts([msg], iv);
  }

  /** CMAC of the concatenation of `parts` (no intermediate copy). */
  macParts(parts: readonly Uint8Array[], iv?: Uint8Array): Uint8Array {
    const bs = this.cipher.blockSize;
    let len = 0;
    for (const p of parts) len += p.length;
    const full = len > 0 && len % bs === 0;
    const n = full ? len : len + (bs - (len % bs));
    const m = new Uint8Array(n);
    let o = 0;
    for (const p of parts) {
      m.set(p, o);
      o += p.length;
    }
    if (!full) m[len] = 0x80;
    const sub = full ? this.k1 : this.k2;
    for (let i = 0; i < bs; i++) m[n - bs + i]! ^= sub[i]!;
    const c = this.cipher.cbcChained(iv ?? new Uint8Array(bs), m, true);
    const out = c.slice(n - bs);
    wipe(m, c);
    return out;
  }

  destroy(): void {
    wipe(this.k1, this.k2);
    if (this.owned) this.cipher.destroy();
  }
}

/** One-shot CMAC (full block). */
export function cmac(type: KeyType, key: Uint8Array, msg: Uint8Array, iv?: Uint8Array): Uint8Array {
  const c = new Cmac(type, key);
  try {
    return c.mac(msg, iv);
  } finally {
    c.destroy();
  }
}

/** CMAC subkeys K1, K2 (for vectors and debugging). */
export function cmacSubkeys(type: KeyType, key: Uint8Array): { k1: Uint8Array; k2: Uint8Array } {
  const c = new Cmac(type, key);
  const out = { k1: c.k1.slice(), k2: c.k2.slice() };
  c.destroy();
  return out;
}

// Block ciphers in the forms DESFire uses. DES runs as 3DES with K1 = K2 = K3 (single DES is not
// in OpenSSL 3's default provider), 2K3DES as K1|K2|K1, 3K3DES as K1|K2|K3, AES-128.
//
// Speed: a `BlockCipher` keeps one ECB encipher and one ECB decipher object per key and feeds
// them block by block (with padding off, OpenSSL holds nothing back), building CBC on top. That
// avoids creating a cipher object per operation, which costs more than the block operation itself.
import { type Cipher, type Decipher, createCipheriv, createDecipheriv } from 'node:crypto';
import { wipe } from './bytes.js';

export type KeyType = 'des' | '2k3des' | '3k3des' | 'aes';

export const KEY_TYPES: readonly KeyType[] = ['des', '2k3des', '3k3des', 'aes'];

/** Thrown for a key of the wrong length or data that is not a whole number of blocks. */
export class CryptoInputError extends Error {
  readonly code = 'ERR_CRYPTO_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'CryptoInputError';
  }
}

export function blockSize(type: KeyType): 8 | 16 {
  return type === 'aes' ? 16 : 8;
}

export function keyLength(type: KeyType): 8 | 16 | 24 {
  switch (type) {
    case 'des':
      return 8;
    case '2k3des':
    case 'aes':
      return 16;
    case '3k3des':
      return 24;
  }
}

/** The key as OpenSSL wants it: 24 bytes for the DES family, 16 for AES. Caller wipes the result. */
function expandKey(type: KeyType, key: Uint8Array): Uint8Array {
  const want = keyLength(type);
  if (key.length !== want) throw new CryptoInputError(`${type} key must be ${want} bytes, got ${key.length}`);
  switch (type) {
    case 'des': {
      const k = new Uint8Array(24);
      k.set(key, 0);
      k.set(key, 8);
      k.set(key, 16);
      return k;
    }
    case '2k3des': {
      const k = new Uint8Array(24);
      k.set(key, 0);
      k.set(key.subarray(0, 8), 16);
      return k;
    }
    case '3k3des':
    case 'aes':
      return Uint8Array.from(key);
  }
}

const ALGO: Record<KeyType, string> = { des: 'des-ede3-ecb', '2k3des': 'des-ede3-ecb', '3k3des': 'des-ede3-ecb', aes: 'aes-128-ecb' };
/** Zero IVs; never written to (cbcChained only reads its IV). */
const ZERO16 = new Uint8Array(16);
const ZERO8 = new Uint8Array(8);
const CBC_ALGO: Record<KeyType, string> = { des: 'des-ede3-cbc', '2k3des': 'des-ede3-cbc', '3k3des': 'des-ede3-cbc', aes: 'aes-128-cbc' };

/**
 * A plain Uint8Array over the bytes of a Buffer returned by Cipher.update (which allocates its own
 * memory, never a pooled slab): no copy, and `.slice()` keeps Uint8Array (copying) semantics.
 */
function view(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** A keyed block cipher. Call `destroy()` when done: it wipes the copy of the key it holds. */
export class BlockCipher {
  readonly type: KeyType;
  readonly blockSize: 8 | 16;
  private key: Uint8Array;
  private enc: Cipher | undefined;
  private dec: Decipher | undefined;
  /** A persistent CBC encipher and the last ciphertext block it produced (its chaining value). */
  private cbc: Cipher | undefined;
  private cbcPrev: Uint8Array | undefined;
  /** Set by `destroy()`: the key is wiped, and any later use throws instead of computing under zeros. */
  private destroyed = false;

  constructor(type: KeyType, key: Uint8Array) {
    this.type = type;
    this.blockSize = blockSize(type);
    this.key = expandKey(type, key);
  }

  /** Every OpenSSL cipher object is created here or below: refuse once the key is wiped. */
  private live(): Uint8Array {
    if (this.destroyed) throw new CryptoInputError('the cipher was destroyed: its key is wiped');
    return this.key;
  }

  private encipher(): Cipher {
    if (!this.enc) {
      this.enc = createCipheriv(ALGO[this.type], this.live(), null);
      this.enc.setAutoPadding(false);
    }
    return this.enc;
  }

  private decipher(): Decipher {
    if (!this.dec) {
      this.dec = createDecipheriv(ALGO[this.type], this.live(), null);
      this.dec.setAutoPadding(false);
    }
    return this.dec;
  }

  private checkBlocks(data: Uint8Array, what: string): void {
    if (data.length % this.blockSize !== 0)
      throw new CryptoInputError(`${what}: ${data.length} bytes is not a multiple of the ${this.blockSize}-byte block`);
  }

  /**
   * ECB encryption. One block (CMAC subkeys, EV2's response IV, the transaction MAC) goes through
   * the key's persistent CBC object (CBC of one block under a zero IV is E(block)), so a key that
   * is only ever enciphered one block at a time or in CBC holds ONE OpenSSL object, not two: each
   * is a native object the garbage collector finalises with a weak-handle callback (half of a
   * scavenge's pause in a reader's online transactions, docs/performance.md), and creating one
   * costs more than the block operation itself.
   */
  ecbEncrypt(data: Uint8Array): Uint8Array {
    this.checkBlocks(data, 'ecbEncrypt');
    if (data.length === this.blockSize && !this.enc) return this.cbcBlock(data);
    return view(this.encipher().update(data));
  }

  /** E(block) on the persistent CBC object: feed block XOR P (its chaining value), get E(block). */
  private cbcBlock(block: Uint8Array): Uint8Array {
    const cbc = this.cbcObject();
    const prev = this.cbcPrev!;
    for (let i = 0; i < this.blockSize; i++) prev[i]! ^= block[i]!;
    const out = view(cbc.update(prev));
    prev.set(out);
    return out;
  }

  /** The persistent CBC encipher (created on first use, its chaining value in `cbcPrev`). */
  private cbcObject(): Cipher {
    if (!this.cbc) {
      this.cbcPrev = new Uint8Array(this.blockSize);
      this.cbc = createCipheriv(CBC_ALGO[this.type], this.live(), this.cbcPrev);
      this.cbc.setAutoPadding(false);
    }
    return this.cbc;
  }

  ecbDecrypt(data: Uint8Array): Uint8Array {
    this.checkBlocks(data, 'ecbDecrypt');
    return view(this.decipher().update(data));
  }

  /**
   * CBC encryption, no padding. One OpenSSL call per message, whatever the IV: a persistent CBC
   * encipher continues from its last ciphertext block P, so feeding (M1 XOR IV XOR P) as the first
   * block yields E(M1 XOR IV), i.e. CBC with our IV. The chaining value is tracked here.
   */
  cbcEncrypt(iv: Uint8Array, data: Uint8Array): Uint8Array {
    this.checkBlocks(data, 'cbcEncrypt');
    const bs = this.blockSize;
    if (iv.length !== bs) throw new CryptoInputError(`IV must be ${bs} bytes`);
    if (data.length === 0) return new Uint8Array(0);
    return this.cbcChained(iv, data);
  }

  /**
   * CBC encryption of `data` with IV = E(K, ivInput), both in one OpenSSL call (EV2 secure
   * messaging derives its IV this way): the input is ivInput || data, the first output block is
   * the IV and the rest is the ciphertext.
   */
  cbcEncryptWithEncipheredIv(ivInput: Uint8Array, data: Uint8Array): Uint8Array {
    this.checkBlocks(data, 'cbcEncryptWithEncipheredIv');
    const bs = this.blockSize;
    if (ivInput.length !== bs) throw new CryptoInputError(`IV input must be ${bs} bytes`);
    const m = new Uint8Array(bs + data.length);
    m.set(ivInput);
    m.set(data, bs);
    const out = this.cbcChained(bs === 16 ? ZERO16 : ZERO8, m, true);
    wipe(m);
    return out.subarray(bs);
  }

  /**
   * CBC of `data` with `iv` on the persistent CBC object. `data` is copied unless `inPlace` (then
   * its first block is overwritten: for callers that own a scratch buffer, like CMAC).
   */
  cbcChained(iv: Uint8Array, data: Uint8Array, inPlace = false): Uint8Array {
    const bs = this.blockSize;
    const cbc = this.cbcObject();
    const prev = this.cbcPrev!;
    const m = inPlace ? data : data.slice();
    for (let i = 0; i < bs; i++) m[i]! ^= iv[i]! ^ prev[i]!;
    const out = view(cbc.update(m));
    if (!inPlace) wipe(m);
    if (out.length !== data.length) throw new CryptoInputError('CBC: cipher returned a short block count');
    prev.set(out.subarray(out.length - bs));
    return out;
  }

  /** CBC decryption, no padding. */
  cbcDecrypt(iv: Uint8Array, data: Uint8Array): Uint8Array {
    this.checkBlocks(data, 'cbcDecrypt');
    const bs = this.blockSize;
    if (iv.length !== bs) throw new CryptoInputError(`IV must be ${bs} bytes`);
    const out = view(this.decipher().update(data));
    for (let i = 0; i < bs; i++) out[i]! ^= iv[i]!;
    for (let o = bs; o < data.length; o++) out[o]! ^= data[o - bs]!;
    return out;
  }

  /**
   * Legacy DESFire native-mode (D40) "send" direction: the host *deciphers* each block of
   * (plain XOR previous result), so that the card can encipher to recover it. IV is zero.
   */
  legacySendDecrypt(data: Uint8Array, iv: Uint8Array = new Uint8Array(this.blockSize)): Uint8Array {
    this.checkBlocks(data, 'legacySendDecrypt');
    const bs = this.blockSize;
    const out = new Uint8Array(data.length);
    const d = this.decipher();
    const block = new Uint8Array(bs);
    let prev = iv;
    for (let o = 0; o < data.length; o += bs) {
      for (let i = 0; i < bs; i++) block[i] = data[o + i]! ^ prev[i]!;
      out.set(d.update(block), o);
      prev = out.subarray(o, o + bs);
    }
    wipe(block);
    return out;
  }

  /** The inverse of `legacySendDecrypt` (what the card does on receipt). */
  legacySendEncryptInverse(data: Uint8Array, iv: Uint8Array = new Uint8Array(this.blockSize)): Uint8Array {
    this.checkBlocks(data, 'legacySendEncryptInverse');
    const bs = this.blockSize;
    const out = new Uint8Array(this.encipher().update(data));
    for (let i = 0; i < bs; i++) out[i]! ^= iv[i]!;
    for (let o = bs; o < data.length; o++) out[o]! ^= data[o - bs]!;
    return out;
  }

  /**
   * Wipe the key and free the OpenSSL contexts now: `final()` makes Node free a cipher object's
   * EVP context (and OpenSSL cleanse the key schedule in it) at once. Left to the garbage collector,
   * both happened in the weak-handle callbacks of some later scavenge: the expanded key stayed in
   * memory until then, and the frees of every transaction since the last scavenge ran inside one
   * pause (a reader's online run: the weak-handle part of its scavenges ~15 % shorter with this).
   */
  destroy(): void {
    this.destroyed = true;
    wipe(this.key, this.cbcPrev);
    for (const o of [this.enc, this.dec, this.cbc]) {
      try {
        o?.final(); // whole blocks only were fed and padding is off: nothing is held back
      } catch {
        /* already finalised: nothing left to free */
      }
    }
    this.enc = undefined;
    this.dec = undefined;
    this.cbc = undefined;
  }
}

/** One-shot helpers (create and destroy a BlockCipher). */
export function ecbEncrypt(type: KeyType, key: Uint8Array, data: Uint8Array): Uint8Array {
  const c = new BlockCipher(type, key);
  try {
    return c.ecbEncrypt(data);
  } finally {
    c.destroy();
  }
}

export function ecbDecrypt(type: KeyType, key: Uint8Array, data: Uint8Array): Uint8Array {
  const c = new BlockCipher(type, key);
  try {
    return c.ecbDecrypt(data);
  } finally {
    c.destroy();
  }
}

export function cbcEncrypt(type: KeyType, key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const c = new BlockCipher(type, key);
  try {
    return c.cbcEncrypt(iv, data);
  } finally {
    c.destroy();
  }
}

export function cbcDecrypt(type: KeyType, key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const c = new BlockCipher(type, key);
  try {
    return c.cbcDecrypt(iv, data);
  } finally {
    c.destroy();
  }
}

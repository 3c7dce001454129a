// NXP AN10922 key diversification.
//
// The CMAC message M = constant || divInput is ALWAYS padded to two cipher blocks (32 bytes for
// AES, 16 for the DES family): when M is shorter it gets 80 00.. and the last block is XORed with
// K2; only when M is exactly two blocks is K1 used. M longer than two blocks is not allowed
// (divInput at most 31 bytes for AES, 15 for the DES family). For inputs of 16..31 bytes (AES)
// this equals RFC 4493 CMAC; for shorter ones it does not.
//
// DES-family outputs are returned raw, parity bits as computed. DESFire keeps a key's version in
// the parity bits (see keyversion.ts); callers that need a version set it afterwards.
import { createCipheriv } from 'node:crypto';
import { concat, wipe } from './bytes.js';
import { BlockCipher, CryptoInputError, type KeyType } from './cipher.js';
import { Cmac } from './cmac.js';

export type DiversifyAlg = 'aes128' | '2k3des' | '3k3des';

export const DIVERSIFY_ALGS: readonly DiversifyAlg[] = ['aes128', '2k3des', '3k3des'];

const KEY_TYPE: Record<DiversifyAlg, KeyType> = { aes128: 'aes', '2k3des': '2k3des', '3k3des': '3k3des' };
const CONSTANTS: Record<DiversifyAlg, number[]> = { aes128: [0x01], '2k3des': [0x21, 0x22], '3k3des': [0x31, 0x32, 0x33] };

export function maxDiversificationInput(alg: DiversifyAlg): number {
  return alg === 'aes128' ? 31 : 15;
}

/** AN10922 CMAC: the padded-to-two-blocks variant over M = constant || input. */
export function an10922Cmac(cmac: Cmac, constant: number, input: Uint8Array): Uint8Array {
  const bs = cmac.cipher.blockSize;
  const two = 2 * bs;
  const mlen = 1 + input.length;
  if (mlen > two) throw new CryptoInputError(`diversification input must be at most ${two - 1} bytes, got ${input.length}`);
  const m = new Uint8Array(two);
  m[0] = constant;
  m.set(input, 1);
  const sub = mlen === two ? cmac.k1 : cmac.k2;
  if (mlen < two) m[mlen] = 0x80;
  for (let i = 0; i < bs; i++) m[bs + i]! ^= sub[i]!;
  const c = cmac.cipher.cbcEncrypt(new Uint8Array(bs), m);
  const out = c.slice(bs);
  wipe(m, c);
  return out;
}

/**
 * A diversifier bound to one master key, with the CMAC subkeys precomputed: use it when deriving
 * many card keys from one master (custody does). `destroy()` wipes it.
 */
export class Diversifier {
  readonly alg: DiversifyAlg;
  private readonly cmac: Cmac;

  constructor(alg: DiversifyAlg, master: Uint8Array) {
    this.alg = alg;
    this.cmac = new Cmac(new BlockCipher(KEY_TYPE[alg], master));
  }

  derive(input: Uint8Array): Uint8Array {
    if (input.length > maxDiversificationInput(this.alg))
      throw new CryptoInputError(`${this.alg} diversification input must be at most ${maxDiversificationInput(this.alg)} bytes, got ${input.length}`);
    const parts = CONSTANTS[this.alg].map((c) => an10922Cmac(this.cmac, c, input));
    const out = concat(...parts);
    wipe(...parts);
    return out;
  }

  destroy(): void {
    this.cmac.destroy();
    this.cmac.cipher.destroy();
  }
}

/** One-shot AN10922 diversification. */
export function diversify(alg: DiversifyAlg, master: Uint8Array, input: Uint8Array): Uint8Array {
  const d = new Diversifier(alg, master);
  try {
    return d.derive(input);
  } finally {
    d.destroy();
  }
}

/** The usual diversification input: UID || AID (3 bytes, as sent: LSB first) || system identifier. */
export function diversificationInput(uid: Uint8Array, aid: Uint8Array, systemIdentifier: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concat(uid, aid, systemIdentifier);
}

/**
 * AN10922 AES-192 diversification (optional in the project: AES-192 keys are not used on cards,
 * so this is a separate function and not a `DiversifyAlg`). A = CMAC(0x11 || input), B =
 * CMAC(0x12 || input), both padded to two blocks as above; key = A[0..7] || (A[8..15] XOR B[0..7])
 * || B[8..15].
 */
export function diversifyAes192(master: Uint8Array, input: Uint8Array): Uint8Array {
  if (master.length !== 24) throw new CryptoInputError(`AES-192 master key must be 24 bytes, got ${master.length}`);
  if (input.length > 31) throw new CryptoInputError(`aes192 diversification input must be at most 31 bytes, got ${input.length}`);
  const enc = (data: Uint8Array, cbc: boolean) => {
    const c = createCipheriv(cbc ? 'aes-192-cbc' : 'aes-192-ecb', master, cbc ? new Uint8Array(16) : null);
    c.setAutoPadding(false);
    return new Uint8Array(c.update(data));
  };
  const dbl = (b: Uint8Array) => {
    const out = new Uint8Array(16);
    for (let i = 0; i < 16; i++) out[i] = ((b[i]! << 1) | (i < 15 ? b[i + 1]! >>> 7 : 0)) & 0xff;
    if (b[0]! & 0x80) out[15]! ^= 0x87;
    return out;
  };
  const l = enc(new Uint8Array(16), false);
  const k1 = dbl(l);
  const k2 = dbl(k1);
  const part = (constant: number) => {
    const m = new Uint8Array(32);
    m[0] = constant;
    m.set(input, 1);
    const mlen = 1 + input.length;
    if (mlen < 32) m[mlen] = 0x80;
    const sub = mlen === 32 ? k1 : k2;
    for (let i = 0; i < 16; i++) m[16 + i]! ^= sub[i]!;
    const c = enc(m, true);
    const out = c.slice(16);
    wipe(m, c);
    return out;
  };
  const a = part(0x11);
  const b = part(0x12);
  const out = new Uint8Array(24);
  out.set(a.subarray(0, 8));
  for (let i = 0; i < 8; i++) out[8 + i] = a[8 + i]! ^ b[i]!;
  out.set(b.subarray(8, 16), 16);
  wipe(l, k1, k2, a, b);
  return out;
}

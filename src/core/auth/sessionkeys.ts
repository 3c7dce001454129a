// Session key derivations (pure). EV1 formulas per the vectors' notes (Elmue / libfreefare);
// EV2 per NXP AN12343 (SV1/SV2 and CMAC with the authentication key); Transaction MAC session keys
// per the MF2DLHX0 data sheet formula as implemented by proxmark3 (regression vector only).
import { concat, wipe } from '../crypto/bytes.js';
import { BlockCipher, CryptoInputError, type KeyType } from '../crypto/cipher.js';
import { Cmac } from '../crypto/cmac.js';
import { cmacLrp } from '../crypto/lrp.js';

/** Length of RndA/RndB for a key type: 8 for DES/2K3DES, 16 for 3K3DES/AES. */
export function nonceLength(type: KeyType): 8 | 16 {
  return type === 'des' || type === '2k3des' ? 8 : 16;
}

/**
 * EV1 (and D40 legacy) session key from RndA and RndB:
 * DES A[0..3]B[0..3]; 2K3DES A[0..3]B[0..3]A[4..7]B[4..7];
 * 3K3DES A[0..3]B[0..3]A[6..9]B[6..9]A[12..15]B[12..15]; AES A[0..3]B[0..3]A[12..15]B[12..15].
 * Parity bits are returned as computed (they have no cryptographic effect).
 */
export function ev1SessionKey(type: KeyType, rndA: Uint8Array, rndB: Uint8Array): Uint8Array {
  const n = nonceLength(type);
  if (rndA.length !== n || rndB.length !== n) throw new CryptoInputError(`${type} session key needs ${n}-byte RndA and RndB`);
  const a = (s: number, e: number) => rndA.subarray(s, e);
  const b = (s: number, e: number) => rndB.subarray(s, e);
  switch (type) {
    case 'des':
      return concat(a(0, 4), b(0, 4));
    case '2k3des':
      return concat(a(0, 4), b(0, 4), a(4, 8), b(4, 8));
    case '3k3des':
      return concat(a(0, 4), b(0, 4), a(6, 10), b(6, 10), a(12, 16), b(12, 16));
    case 'aes':
      return concat(a(0, 4), b(0, 4), a(12, 16), b(12, 16));
  }
}

/** EV2 session vector: prefix(2) 00 01 00 80 RndA[0..1] (RndA[2..7] ^ RndB[0..5]) RndB[6..15] RndA[8..15]. */
export function ev2SessionVector(prefix: 0xa55a | 0x5aa5, rndA: Uint8Array, rndB: Uint8Array): Uint8Array {
  if (rndA.length !== 16 || rndB.length !== 16) throw new CryptoInputError('EV2 session vector needs 16-byte RndA and RndB');
  const sv = new Uint8Array(32);
  sv.set([prefix >>> 8, prefix & 0xff, 0x00, 0x01, 0x00, 0x80, rndA[0]!, rndA[1]!]);
  for (let i = 0; i < 6; i++) sv[8 + i] = rndA[2 + i]! ^ rndB[i]!;
  sv.set(rndB.subarray(6, 16), 14);
  sv.set(rndA.subarray(8, 16), 24);
  return sv;
}

export interface Ev2SessionKeys {
  enc: Uint8Array;
  mac: Uint8Array;
}

/**
 * EV2 SesAuthENCKey = CMAC(K, SV1), SesAuthMACKey = CMAC(K, SV2) (K: the AES key authenticated
 * with). K as bytes, or as the BlockCipher the authentication ran with: its OpenSSL object is
 * reused (and left to its owner) instead of a second one made for the same key.
 */
export function ev2SessionKeys(key: Uint8Array | BlockCipher, rndA: Uint8Array, rndB: Uint8Array): Ev2SessionKeys {
  if (key instanceof BlockCipher && key.type !== 'aes') throw new CryptoInputError('EV2 session keys need an AES key');
  const c = key instanceof BlockCipher ? new Cmac(key) : new Cmac('aes', key);
  const sv1 = ev2SessionVector(0xa55a, rndA, rndB);
  const sv2 = ev2SessionVector(0x5aa5, rndA, rndB);
  try {
    return { enc: c.mac(sv1), mac: c.mac(sv2) };
  } finally {
    c.destroy();
    wipe(sv1, sv2);
  }
}

/**
 * EV2 Transaction MAC session keys: SesTMMACKey = CMAC(AppTMKey, 5A 00 01 00 80 || (TMC+1) LE32 ||
 * UID7), SesTMENCKey the same with first byte A5. `tmc` is the current TMC (the formula uses TMC+1).
 */
export function tmacSessionKeys(tmKey: Uint8Array, uid: Uint8Array, tmc: number): { mac: Uint8Array; enc: Uint8Array } {
  if (uid.length !== 7) throw new CryptoInputError('TMAC session keys need a 7-byte UID');
  const n = (tmc + 1) >>> 0;
  const sv = (first: number) => concat(Uint8Array.of(first, 0x00, 0x01, 0x00, 0x80, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24), uid);
  const c = new Cmac('aes', tmKey);
  try {
    return { mac: c.mac(sv(0x5a)), enc: c.mac(sv(0xa5)) };
  } finally {
    c.destroy();
  }
}

/** LRP session vector: 00 01 00 80 RndA[0..1] (RndA[2..7] ^ RndB[0..5]) RndB[6..15] RndA[8..15] 96 69. */
export function lrpSessionVector(rndA: Uint8Array, rndB: Uint8Array): Uint8Array {
  if (rndA.length !== 16 || rndB.length !== 16) throw new CryptoInputError('LRP session vector needs 16-byte RndA and RndB');
  const sv = new Uint8Array(32);
  sv.set([0x00, 0x01, 0x00, 0x80, rndA[0]!, rndA[1]!]);
  for (let i = 0; i < 6; i++) sv[6 + i] = rndA[2 + i]! ^ rndB[i]!;
  sv.set(rndB.subarray(6, 16), 12);
  sv.set(rndA.subarray(8, 16), 22);
  sv.set([0x96, 0x69], 30);
  return sv;
}

/** LRP SesAuthMaster = CMAC-LRP(K, SV) (updated key 0 of K). */
export function lrpSesAuthMaster(key: Uint8Array, rndA: Uint8Array, rndB: Uint8Array): Uint8Array {
  const sv = lrpSessionVector(rndA, rndB);
  try {
    return cmacLrp(key, sv);
  } finally {
    wipe(sv);
  }
}

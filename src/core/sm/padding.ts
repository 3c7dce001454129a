// Padding helpers for secure messaging (pure).
import { IntegrityError } from '../errors.js';

/** ISO/IEC 9797-1 method 2 that ALWAYS adds (EV2): data || 80 || 00.. to the next block boundary. */
export function padM2(data: Uint8Array, bs: number): Uint8Array {
  const n = (Math.floor(data.length / bs) + 1) * bs;
  const out = new Uint8Array(n);
  out.set(data);
  out[data.length] = 0x80;
  return out;
}

/** Remove method-2 padding; the 80 must be in the last block, followed by zeros only. */
export function unpadM2(data: Uint8Array, bs: number): Uint8Array {
  let i = data.length - 1;
  const stop = Math.max(0, data.length - bs);
  while (i >= stop && data[i] === 0x00) i--;
  if (i < stop || data[i] !== 0x80) throw new IntegrityError('bad padding in enciphered data');
  return data.slice(0, i);
}

/** Zero padding to a block boundary (none when already aligned), as D40 and EV1 use. */
export function padZero(data: Uint8Array, bs: number): Uint8Array {
  const n = Math.ceil(data.length / bs) * bs;
  if (n === data.length) return data.slice();
  const out = new Uint8Array(n);
  out.set(data);
  return out;
}

/**
 * Find the data length L of a decrypted `data || CRC || 00..` (zero padding shorter than a block).
 * `check(L)` verifies the CRC for a candidate L. With `plainLength` only that length is tried.
 * Returns L or throws IntegrityError. The shortest candidate wins.
 */
export function findCrcEnd(dec: Uint8Array, crcLen: number, bs: number, check: (len: number) => boolean, plainLength?: number): number {
  if (plainLength !== undefined) {
    const total = Math.ceil((plainLength + crcLen) / bs) * bs;
    if (plainLength < 0 || total !== dec.length) throw new IntegrityError('enciphered data has the wrong length');
    for (let i = plainLength + crcLen; i < dec.length; i++) if (dec[i] !== 0) throw new IntegrityError('bad padding in enciphered data');
    if (!check(plainLength)) throw new IntegrityError('CRC mismatch in enciphered data');
    return plainLength;
  }
  // Candidates: the CRC ends in the last block and only zero bytes follow it. Shortest first: both
  // CRCs have no final XOR, so CRC(m || CRC(m)) = 0 and every longer candidate whose "CRC" is four
  // padding zeros would also verify.
  let z = dec.length;
  while (z > 0 && dec[z - 1] === 0) z--;
  for (let end = Math.max(crcLen, dec.length - bs + 1, z); end <= dec.length; end++) {
    if (check(end - crcLen)) return end - crcLen;
  }
  throw new IntegrityError('CRC mismatch in enciphered data');
}

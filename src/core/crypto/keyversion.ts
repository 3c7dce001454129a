// DESFire key versions of DES-family keys, kept in the DES parity bits.
//
// POLICY (stated once, used everywhere in this project):
// - A DES-family key (DES 8 bytes, 2K3DES 16, 3K3DES 24) carries its 8-bit key version in the
//   least significant bit (the DES parity bit) of its FIRST 8 bytes, most significant version
//   bit first: bit 7 of the version -> LSB of byte 0, ..., bit 0 -> LSB of byte 7. This is what
//   a DESFire card reports from GetKeyVersion for a DES-family key.
// - The LSBs of all other bytes (bytes 8..23) are CLEARED. We never write "odd parity": DES
//   ignores these bits, and clearing them makes a key's byte string a function of
//   (key material, version) only, so two systems following this policy agree byte for byte.
// - AN10922 diversification returns raw CMAC output (parity as computed); callers that store a
//   diversified DES-family key apply `setDesKeyVersion` afterwards.
// - Comparing two DES-family keys "as the card does" ignores every parity bit:
//   `desKeysEquivalent`.
// AES keys carry the version in a separate byte (ChangeKey appends it); this module is DES only.
import { CryptoInputError, type KeyType } from './cipher.js';

function checkDesFamily(key: Uint8Array): void {
  if (key.length !== 8 && key.length !== 16 && key.length !== 24)
    throw new CryptoInputError(`DES-family key must be 8, 16 or 24 bytes, got ${key.length}`);
}

/** A copy of `key` with `version` written into its parity bits per the policy above. */
export function setDesKeyVersion(key: Uint8Array, version: number): Uint8Array {
  checkDesFamily(key);
  if (!Number.isInteger(version) || version < 0 || version > 0xff) throw new CryptoInputError('key version must be 0..255');
  const out = Uint8Array.from(key);
  for (let i = 0; i < out.length; i++) {
    out[i]! &= 0xfe;
    if (i < 8) out[i]! |= (version >>> (7 - i)) & 1;
  }
  return out;
}

/** The key version held in the parity bits of the first 8 bytes. */
export function getDesKeyVersion(key: Uint8Array): number {
  checkDesFamily(key);
  let v = 0;
  for (let i = 0; i < 8; i++) v = (v << 1) | (key[i]! & 1);
  return v;
}

/** A copy with every parity bit cleared (version 0 and canonical form). */
export function clearParity(key: Uint8Array): Uint8Array {
  return Uint8Array.from(key, (b) => b & 0xfe);
}

/** True when two DES-family keys are the same DES key material (parity bits ignored). */
export function desKeysEquivalent(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i]! ^ b[i]!) & 0xfe;
  return d === 0;
}

/**
 * The key type a card effectively uses: a 2K3DES key whose halves are equal (parity ignored) is
 * single DES (its 3DES computation equals DES), and the card treats it so, e.g. for session keys.
 */
export function effectiveKeyType(type: KeyType, key: Uint8Array): KeyType {
  if (type === '2k3des' && key.length === 16 && desKeysEquivalent(key.subarray(0, 8), key.subarray(8, 16))) return 'des';
  return type;
}

/** The key version of any key: AES keys have none in their bytes (returns undefined). */
export function keyVersionOf(type: KeyType, key: Uint8Array): number | undefined {
  return type === 'aes' ? undefined : getDesKeyVersion(key);
}

// Validation and canonical encodings shared by every backend: key names, bindings (the AAD of a
// wrapped key) and the blob envelope.
//
// Blob envelope: `dcms1.<backend>.<kekVersion>.<fingerprint>.<payload>`
//   backend      'emb' | 'p11' | 'vt'
//   kekVersion   decimal
//   fingerprint  first 8 bytes (hex) of SHA-256 of the encoded binding: not secret (a binding is
//                identifiers only); lets custody report ERR_CUSTODY_AAD_MISMATCH instead of a
//                generic authentication failure. It is also covered by the backend's AEAD/KW check
//                indirectly: the binding itself is the AAD (or selects the wrapping key).
//   payload      base64url (backend specific ciphertext)
import { CustodyInputError, TamperedError } from './errors.js';
import { bindingFingerprint } from './seal.js';
import type { CardKeyAlg, KeyBinding, KeySpec } from './types.js';
import { DIVERSIFY_ALGS } from '../core/crypto/an10922.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const TENANT = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const HEX = /^[0-9A-Fa-f]*$/;

export function checkKeyName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) throw new CustodyInputError('key name must be 1..128 of [A-Za-z0-9._-], starting with a letter or digit');
}

export function checkVersion(v: unknown, what = 'version'): asserts v is number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 1_000_000) throw new CustodyInputError(`${what} must be a positive integer`);
}

export function checkSpec(spec: unknown): asserts spec is KeySpec {
  const s = spec as KeySpec | undefined;
  if (!s || (s.purpose !== 'wrap' && s.purpose !== 'diversify')) throw new CustodyInputError("key spec purpose must be 'wrap' or 'diversify'");
  if (s.purpose === 'diversify' && !DIVERSIFY_ALGS.includes(s.alg)) throw new CustodyInputError(`diversification alg must be one of ${DIVERSIFY_ALGS.join(', ')}`);
}

export function checkBinding(b: unknown): asserts b is KeyBinding {
  const x = b as KeyBinding | undefined;
  if (!x || typeof x !== 'object') throw new CustodyInputError('binding (tenant, aid, uid, keyNo, version) is required');
  if (typeof x.tenant !== 'string' || !TENANT.test(x.tenant)) throw new CustodyInputError('binding.tenant must be 1..128 of [A-Za-z0-9._:-]');
  if (typeof x.aid !== 'string' || x.aid.length !== 6 || !HEX.test(x.aid)) throw new CustodyInputError('binding.aid must be 3 bytes of hex');
  if (typeof x.uid !== 'string' || ![8, 14, 20].includes(x.uid.length) || !HEX.test(x.uid)) throw new CustodyInputError('binding.uid must be 4, 7 or 10 bytes of hex');
  if (!Number.isInteger(x.keyNo) || x.keyNo < 0 || x.keyNo > 13) throw new CustodyInputError('binding.keyNo must be 0..13');
  if (!Number.isInteger(x.version) || x.version < 0 || x.version > 255) throw new CustodyInputError('binding.version must be 0..255');
}

/** The canonical AAD of a binding. */
export function encodeBinding(b: KeyBinding): Uint8Array {
  return new TextEncoder().encode(`dcms-aad-v1|${b.tenant}|${b.aid.toUpperCase()}|${b.uid.toUpperCase()}|${b.keyNo}|${b.version}`);
}

export const CARD_KEY_LENGTH: Record<CardKeyAlg, number> = { aes128: 16, '2k3des': 16, '3k3des': 24 };

export function checkCardKeyAlg(alg: unknown): asserts alg is CardKeyAlg {
  if (!DIVERSIFY_ALGS.includes(alg as CardKeyAlg)) throw new CustodyInputError(`card key alg must be one of ${DIVERSIFY_ALGS.join(', ')}`);
}

export function checkPlaintextKey(k: unknown): asserts k is Uint8Array {
  if (!(k instanceof Uint8Array) || k.length < 8 || k.length > 32) throw new CustodyInputError('a key to wrap must be 8..32 bytes');
}

export interface ParsedBlob {
  backend: string;
  version: number;
  fingerprint: string;
  payload: string;
}

export function formatBlob(backend: string, version: number, aad: Uint8Array, payload: string): string {
  return `dcms1.${backend}.${version}.${bindingFingerprint(aad)}.${payload}`;
}

/** Parse the envelope; anything malformed is tampering. */
export function parseBlob(blob: unknown): ParsedBlob {
  if (typeof blob !== 'string' || blob.length > 8192) throw new TamperedError('wrapped blob is not a custody blob');
  const m = /^dcms1\.([a-z0-9]{2,8})\.([1-9][0-9]{0,6})\.([0-9a-f]{16})\.([A-Za-z0-9_-]+)$/.exec(blob);
  if (!m) throw new TamperedError('wrapped blob is malformed');
  return { backend: m[1]!, version: Number(m[2]), fingerprint: m[3]!, payload: m[4]! };
}

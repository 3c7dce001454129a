// What a backend implements. `Custody` (custody.ts) wraps an engine with validation, blob
// envelopes, sealing and audit, so each backend only does key storage and the primitives.
import { KeyVersionError } from './errors.js';
import type { KeyInfo, KeySpec, MinVersions } from './types.js';

export interface CustodyEngine {
  /** 'embedded' | 'pkcs11' | 'vault-transit'. */
  readonly backend: string;
  /** Short tag used in blob envelopes: 'emb' | 'p11' | 'vt'. */
  readonly blobTag: string;
  /** Throws SealedError when the engine cannot serve key operations. */
  assertReady(): void;

  createKey(name: string, spec: KeySpec): Promise<KeyInfo>;
  /** Create from given material (length already checked against the spec). */
  importKey(name: string, spec: KeySpec, material: Uint8Array): Promise<KeyInfo>;
  rotateKey(name: string): Promise<KeyInfo>;
  getKey(name: string): Promise<KeyInfo>;
  /** Optional: several keys' info from one look at the backend's state (the embedded vault: one store refresh for all); otherwise getKey per name. Unknown name: UnknownKeyError. */
  getKeys?(names: string[]): Promise<KeyInfo[]>;
  listKeys(): Promise<KeyInfo[]>;
  setMinVersions(name: string, min: MinVersions): Promise<KeyInfo>;
  disableVersion(name: string, version: number): Promise<KeyInfo>;
  destroyVersion(name: string, version: number): Promise<KeyInfo>;

  /** Wrap under the encryption version of wrap key `kek`; `aad` is the encoded binding. Payload is base64url. */
  encrypt(kek: string, plaintext: Uint8Array, aad: Uint8Array): Promise<{ version: number; payload: string }>;
  /** Unwrap; throws KeyVersionError (version not usable), TamperedError (authentication failed). */
  decrypt(kek: string, version: number, payload: string, aad: Uint8Array): Promise<Uint8Array>;
  /** Optional backend-native rewrap (Vault); otherwise decrypt + encrypt inside custody. */
  rewrap?(kek: string, version: number, payload: string, aad: Uint8Array): Promise<{ version: number; payload: string }>;
  /** Optional: generate a random key of `length` bytes wrapped in one step, so the plaintext never exists here (Vault datakey). Return undefined to fall back to random + encrypt. */
  generate?(kek: string, length: number, aad: Uint8Array): Promise<{ version: number; payload: string } | undefined>;
  /** Optional: backend-native batch rewrap (Vault batch_input). */
  rewrapMany?(kek: string, items: { version: number; payload: string; aad: Uint8Array }[]): Promise<({ version: number; payload: string } | Error)[]>;
  /** AN10922 diversification of master `name` (version default: latest usable) over `input`. */
  derive(name: string, version: number | undefined, input: Uint8Array): Promise<{ version: number; key: Uint8Array }>;
  /**
   * Optional: a copy of a key version's material for a sealed export (export.ts); the version
   * must be usable. Backends whose keys cannot leave them (PKCS#11, Vault Transit) omit it.
   */
  exportMaterial?(name: string, version: number | undefined): Promise<{ version: number; material: Uint8Array }>;
  /** Random bytes from the backend's generator (the token's RNG for PKCS#11). */
  random(n: number): Promise<Uint8Array>;

  close(): Promise<void>;
}

/** The version new wraps use: the latest, which must be active and >= minEncryptionVersion. */
export function encryptionVersion(info: KeyInfo): number {
  const v = info.latestVersion;
  const rec = info.versions.find((x) => x.version === v);
  if (!rec || rec.state !== 'active' || v < info.minEncryptionVersion) throw new KeyVersionError(`key '${info.name}' has no usable encryption version`);
  return v;
}

/** Throws unless `version` of `info` may decrypt / derive. */
export function checkDecryptVersion(info: Pick<KeyInfo, 'name' | 'minDecryptionVersion'> & { versions: { version: number; state: string }[] }, version: number): void {
  const rec = info.versions.find((x) => x.version === version);
  if (!rec) throw new KeyVersionError(`key '${info.name}' has no version ${version}`);
  if (rec.state !== 'active') throw new KeyVersionError(`key '${info.name}' version ${version} is ${rec.state}`);
  if (version < info.minDecryptionVersion) throw new KeyVersionError(`key '${info.name}' version ${version} is below the minimum decryption version ${info.minDecryptionVersion}`);
}

/** Validate a min-versions change against a key; returns the new values. */
export function applyMinVersions(info: KeyInfo, min: MinVersions): { minDecryptionVersion: number; minEncryptionVersion: number } {
  const dec = min.minDecryptionVersion ?? info.minDecryptionVersion;
  const enc = min.minEncryptionVersion ?? info.minEncryptionVersion;
  if (!Number.isInteger(dec) || dec < 1 || dec > info.latestVersion) throw new KeyVersionError(`minDecryptionVersion must be 1..${info.latestVersion}`);
  if (!Number.isInteger(enc) || enc < 0 || enc > info.latestVersion) throw new KeyVersionError(`minEncryptionVersion must be 0..${info.latestVersion}`);
  if (enc !== 0 && enc < dec) throw new KeyVersionError('minEncryptionVersion must be 0 or >= minDecryptionVersion');
  return { minDecryptionVersion: dec, minEncryptionVersion: enc };
}

/**
 * Validate disabling / destroying a version: it must exist, and the latest version cannot be
 * disabled or destroyed — except that the latest version of a diversification master may be
 * disabled while another of its versions stays active: a rotation campaign that is cancelled or
 * rolled back retires the new (latest) version, and derivations must then name the version they
 * want (the default, the latest, answers ERR_CUSTODY_VERSION).
 */
export function checkRetireVersion(info: KeyInfo, version: number, what: 'disable' | 'destroy'): void {
  const rec = info.versions.find((x) => x.version === version);
  if (!rec) throw new KeyVersionError(`key '${info.name}' has no version ${version}`);
  const otherActive = info.versions.some((x) => x.version !== version && x.state === 'active' && x.version >= info.minDecryptionVersion);
  if (version === info.latestVersion && !(what === 'disable' && info.purpose === 'diversify' && otherActive)) throw new KeyVersionError(`cannot ${what} the latest version of '${info.name}': rotate first`);
  if (rec.state === 'destroyed') throw new KeyVersionError(`key '${info.name}' version ${version} is already destroyed`);
  if (what === 'disable' && rec.state === 'disabled') throw new KeyVersionError(`key '${info.name}' version ${version} is already disabled`);
}

/** Material length of a key of `spec`. */
export function materialLength(spec: KeySpec): number {
  return spec.purpose === 'wrap' ? 32 : spec.alg === '3k3des' ? 24 : 16;
}

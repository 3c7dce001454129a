// Where the CMS keeps its own private keys (the CA key, the operation-token signing key): only
// wrapped, by a protector the caller supplies (the server wires a custody-backed one; tests and the
// embedded mode may use a key from the environment/vault). The store never sees a plaintext key.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { wipe } from '../../core/crypto/bytes.js';
import { PkiError } from './errors.js';
import type { CryptoKey, EcKeyImportParams, KeyUsage } from './webcrypto.js';

/** Wraps private key bytes (PKCS#8) under a key the CMS does not hold in its database. */
export interface CaKeyProtector {
  wrap(plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
  /** Throws (any error) if the blob was not produced by wrap with this aad. */
  unwrap(blob: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
}

/** One stored key: its public part in the clear (certificate or SPKI), its private part wrapped. */
export interface StoredKeyRecord {
  /** PEM: the CA certificate, or the public key (SPKI) of a signing key. */
  publicPem: string;
  /** base64 of the protector's blob. */
  wrappedPrivateKey: string;
  createdAt: string;
}

/** Persistence for the CMS's own keys, by name ("ca", "token-signing"). */
export interface CaKeyStore {
  load(name: string): Promise<StoredKeyRecord | undefined>;
  /** Stores the record unless one exists; returns false (and stores nothing) if it already existed. */
  saveIfAbsent(name: string, record: StoredKeyRecord): Promise<boolean>;
}

export class MemoryCaKeyStore implements CaKeyStore {
  private readonly records = new Map<string, StoredKeyRecord>();
  async load(name: string): Promise<StoredKeyRecord | undefined> {
    const r = this.records.get(name);
    return r ? { ...r } : undefined;
  }
  async saveIfAbsent(name: string, record: StoredKeyRecord): Promise<boolean> {
    if (this.records.has(name)) return false;
    this.records.set(name, { ...record });
    return true;
  }
}

const NAME_RE = /^[a-z0-9-]{1,64}$/;

/** One JSON file per key in a directory (mode 0600, created exclusively: never overwritten). */
export class FileCaKeyStore implements CaKeyStore {
  constructor(private readonly dir: string) {}
  private path(name: string): string {
    if (!NAME_RE.test(name)) throw new PkiError('ERR_PKI_BAD_INPUT', 'key name must be [a-z0-9-]{1,64}');
    return join(this.dir, `${name}.key.json`);
  }
  async load(name: string): Promise<StoredKeyRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(name), 'utf8');
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw e;
    }
    return JSON.parse(text) as StoredKeyRecord;
  }
  async saveIfAbsent(name: string, record: StoredKeyRecord): Promise<boolean> {
    const p = this.path(name);
    await mkdir(dirname(p), { recursive: true, mode: 0o700 });
    try {
      await writeFile(p, JSON.stringify(record, null, 2) + '\n', { flag: 'wx', mode: 0o600 });
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'EEXIST') return false;
      throw e;
    }
  }
}

/**
 * AES-256-GCM protector over a 32-byte key the caller holds (e.g. released by custody at start-up).
 * Blob = 12-byte nonce ‖ ciphertext ‖ 16-byte tag; the aad binds the blob to its key name.
 */
export function aesGcmProtector(key: Uint8Array): CaKeyProtector {
  if (key.length !== 32) throw new PkiError('ERR_PKI_BAD_INPUT', 'protector key must be 32 bytes');
  const k = Uint8Array.from(key);
  return {
    async wrap(plaintext, aad) {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', k, iv);
      c.setAAD(aad);
      const body = Buffer.concat([c.update(plaintext), c.final()]);
      return new Uint8Array(Buffer.concat([iv, body, c.getAuthTag()]));
    },
    async unwrap(blob, aad) {
      if (blob.length < 12 + 16 + 1) throw new PkiError('ERR_PKI_CA_KEY', 'wrapped key too short');
      const d = createDecipheriv('aes-256-gcm', k, blob.subarray(0, 12));
      d.setAAD(aad);
      d.setAuthTag(blob.subarray(blob.length - 16));
      const out = Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()]);
      const r = new Uint8Array(out);
      wipe(out);
      return r;
    },
  };
}

export const aadFor = (name: string): Uint8Array => new TextEncoder().encode(`desfire-cms:key:${name}`);

/** Import a wrapped PKCS#8 P-256 key as a non-extractable CryptoKey, wiping the plaintext. */
export async function unwrapSigningKey(
  protector: CaKeyProtector,
  name: string,
  record: StoredKeyRecord,
  algorithm: EcKeyImportParams,
  usages: KeyUsage[],
): Promise<CryptoKey> {
  let pkcs8: Uint8Array | undefined;
  try {
    pkcs8 = await protector.unwrap(new Uint8Array(Buffer.from(record.wrappedPrivateKey, 'base64')), aadFor(name));
    return await crypto.subtle.importKey('pkcs8', pkcs8, algorithm, false, usages);
  } catch (e) {
    if (e instanceof PkiError) throw e;
    throw new PkiError('ERR_PKI_CA_KEY', `stored key '${name}' cannot be unwrapped with the supplied protector`);
  } finally {
    wipe(pkcs8);
  }
}

/** Export a freshly generated private key, wrap it and wipe the plaintext. */
export async function wrapPrivateKey(protector: CaKeyProtector, name: string, key: CryptoKey): Promise<string> {
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', key));
  try {
    return Buffer.from(await protector.wrap(pkcs8, aadFor(name))).toString('base64');
  } finally {
    wipe(pkcs8);
  }
}

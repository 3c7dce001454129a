// The checkpoint signing key: Ed25519 via node:crypto. On disk as PKCS#8 PEM (mode 0600) with
// its public verifier key (C2SP vkey) next to it, so auditors can pin the vkey.
import { type KeyObject, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type VerifierKey, formatVerifierKey, keyHash, parseVerifierKey } from './checkpoint.js';
import { AuditError } from './entry.js';
import { nodeAuditCrypto } from './node-crypto.js';

export interface CheckpointSigner {
  /** Key name in signature lines (usually the log's origin). */
  readonly name: string;
  readonly publicKey: Uint8Array;
  /** The C2SP verifier key string. */
  readonly vkey: string;
  readonly keyHash: Uint8Array;
  sign(message: Uint8Array): Promise<Uint8Array>;
}

export class Ed25519CheckpointSigner implements CheckpointSigner {
  readonly publicKey: Uint8Array;
  readonly vkey: string;
  readonly keyHash: Uint8Array;
  private constructor(
    readonly name: string,
    private readonly key: KeyObject,
  ) {
    const jwk = createPublicKey(key).export({ format: 'jwk' });
    this.publicKey = new Uint8Array(Buffer.from(jwk.x!, 'base64url'));
    this.vkey = formatVerifierKey(nodeAuditCrypto, name, this.publicKey);
    this.keyHash = keyHash(nodeAuditCrypto, name, this.publicKey);
  }

  static generate(name: string): Ed25519CheckpointSigner {
    return new Ed25519CheckpointSigner(name, generateKeyPairSync('ed25519').privateKey);
  }

  static fromPem(name: string, pem: string): Ed25519CheckpointSigner {
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch (e) {
      throw new AuditError('ERR_AUDIT_SIGNER', 'checkpoint key: not a PEM private key', { cause: e });
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new AuditError('ERR_AUDIT_SIGNER', 'checkpoint key: not an Ed25519 key');
    return new Ed25519CheckpointSigner(name, key);
  }

  /**
   * Load `<dir>/audit-checkpoint.key` or create it (0600) with `<dir>/audit-checkpoint.vkey`.
   */
  static loadOrCreate(dir: string, name: string): Ed25519CheckpointSigner {
    const keyFile = path.join(dir, 'audit-checkpoint.key');
    if (existsSync(keyFile)) return Ed25519CheckpointSigner.fromPem(name, readFileSync(keyFile, 'utf8'));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const s = Ed25519CheckpointSigner.generate(name);
    writeFileSync(keyFile, s.key.export({ format: 'pem', type: 'pkcs8' }) as string, { mode: 0o600, flag: 'wx' });
    writeFileSync(path.join(dir, 'audit-checkpoint.vkey'), s.vkey + '\n', { mode: 0o644 });
    return s;
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(sign(null, message, this.key));
  }
}

/** Parse a vkey string, throwing AuditError on failure. */
export function verifierKey(vkey: string): VerifierKey {
  const k = parseVerifierKey(nodeAuditCrypto, vkey);
  if (typeof k === 'string') throw new AuditError('ERR_AUDIT_SIGNER', k);
  return k;
}

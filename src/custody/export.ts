// Key export: a custody key's material leaves custody only sealed to a recipient's public key,
// as a standard compact JWE (RFC 7516/7518) with `alg: "ECDH-ES"` (direct key agreement on
// P-256, Concat KDF) and `enc: "A256GCM"`. The protected header — the JWE's associated data —
// names what is inside: `typ: "dcms-key-export+jwe"`, `dcms: { key, kv, alg, purpose, iat }`, and
// `kid` = the recipient key's RFC 7638 thumbprint. The payload is the raw key bytes.
//
// Backends that cannot release material (PKCS#11 keys are CKA_EXTRACTABLE false; Vault Transit
// keys are not exportable) refuse with ERR_CUSTODY_NOT_EXTRACTABLE before anything is audited as
// released. The caller (src/cms) gates the export behind a consumed M-of-N approval that names the
// key and the recipient's thumbprint; `authorise` runs after every check and before the material
// is read, so a refused export never consumes the approval.
import { CompactEncrypt, calculateJwkThumbprint, compactDecrypt, type JWK } from 'jose';
import { CustodyError } from './errors.js';
import { readerPublicKey } from './sealed.js';

export const KEY_EXPORT_TYP = 'dcms-key-export+jwe';

export class NotExtractableError extends CustodyError {
  constructor(message: string) {
    super('ERR_CUSTODY_NOT_EXTRACTABLE', message);
  }
}

/** The recipient of an export: a public EC P-256 JWK. */
export type ExportRecipient = JWK;

export interface KeyExportOptions {
  /** Version to export (default: the latest). It must be usable (active, >= minDecryptionVersion). */
  version?: number;
  /** Runs after every check, before the material is read (e.g. consume an approval). Throwing refuses the export. */
  authorise?: () => Promise<void>;
}

export interface KeyExport {
  format: 'jwe-compact';
  jwe: string;
  key: string;
  version: number;
  alg: string;
  purpose: string;
  /** RFC 7638 thumbprint (SHA-256, base64url) of the recipient public key. */
  recipient: string;
}

export interface ExportClaim {
  key: string;
  kv: number;
  alg: string;
  purpose: string;
  iat: number;
}

/** Validate a recipient key and return its RFC 7638 thumbprint. Throws ERR_CUSTODY_INPUT. */
export async function recipientThumbprint(jwk: unknown): Promise<string> {
  const j = checkRecipient(jwk);
  return calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x: j.x!, y: j.y! }, 'sha256');
}

function checkRecipient(jwk: unknown): JWK {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw new CustodyError('ERR_CUSTODY_INPUT', 'recipient must be a public EC P-256 JWK');
  try {
    readerPublicKey(jwk as JWK);
  } catch (e) {
    throw new CustodyError('ERR_CUSTODY_INPUT', (e as Error).message.replace('reader key', 'recipient key'));
  }
  return jwk as JWK;
}

/** Seal key material to the recipient (the caller wipes `material`). */
export async function sealExport(material: Uint8Array, claim: ExportClaim, recipient: JWK): Promise<{ jwe: string; thumbprint: string }> {
  const j = checkRecipient(recipient);
  const thumbprint = await recipientThumbprint(j);
  const pk = readerPublicKey(j);
  const jwe = await new CompactEncrypt(material).setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM', typ: KEY_EXPORT_TYP, kid: thumbprint, dcms: { ...claim } }).encrypt(pk);
  return { jwe, thumbprint };
}

/** The recipient's side: open an export with the private key; returns the key bytes and what they are. */
export async function openExport(jwe: string, privateKey: Parameters<typeof compactDecrypt>[1]): Promise<{ material: Uint8Array; claim: ExportClaim }> {
  const r = await compactDecrypt(jwe, privateKey, { keyManagementAlgorithms: ['ECDH-ES'], contentEncryptionAlgorithms: ['A256GCM'] });
  const h = r.protectedHeader as { typ?: string; dcms?: ExportClaim };
  if (h.typ !== KEY_EXPORT_TYP || !h.dcms) throw new CustodyError('ERR_CUSTODY_INPUT', 'not a key export');
  return { material: r.plaintext, claim: h.dcms };
}

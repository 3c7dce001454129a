// Sealed key deliveries: the format, and the reader side's `unseal`. This module imports no
// backend (only node:crypto and jose), so the reader agent can use it alone.
//
// Format (standard JWE compact serialisation, RFC 7516/7518):
// - ECDH-ES form: `alg: "ECDH-ES+A256KW", enc: "A256GCM"` to the reader's P-256 public key.
// - Session form: once per reader session custody generates a 256-bit session key and seals it
//   to the reader in the ECDH-ES form (`typ: "dcms-session+jwe"`, payload = the 32 key bytes,
//   header `sid`, `exp`); each delivery is then `alg: "dir", enc: "A256GCM"` under that key with
//   `kid` = the session id. The session JWE is attached to every delivery of that session (it is
//   computed once), so a reader that missed the first delivery still gets it.
// - The protected header (the JWE AAD) carries the binding: `dcms: { t, aid, uid, kn, kv, exp }`
//   = tenant, AID, UID, key number, key version, expiry (Unix seconds). `unseal` refuses a
//   delivery whose binding differs from what the reader expects, or that has expired.
// - The payload is the raw card key bytes.
import { createCipheriv, createDecipheriv, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { compactDecrypt, type JWK } from 'jose';
import { wipe } from '../core/crypto/bytes.js';
import { decryptEcdhEsA256kw, type EcdhAgreement, isEcdhAgreement } from './ecdh-es.js';
import type { KeyBinding } from './types.js';

/** A reader's public sealing key (P-256, as a JWK) and its identifier. */
export interface ReaderRecipient {
  readerId: string;
  publicKey: JWK;
}

export interface SealedKey {
  format: 'jwe-compact';
  /** The key delivery. */
  jwe: string;
  /** Session form only: the ECDH-ES JWE carrying the session key (same for every delivery of a session). */
  session?: string;
  /** ISO 8601 expiry of the delivery. */
  expiresAt: string;
}

/** The header claim binding a delivery to its card key. */
export interface BindingClaim {
  t: string;
  aid: string;
  uid: string;
  kn: number;
  kv: number;
  exp: number;
}

export const DELIVERY_TYP = 'dcms-key+jwe';
export const SESSION_TYP = 'dcms-session+jwe';

export class SealedDeliveryError extends Error {
  readonly code: string;
  constructor(code: 'ERR_SEALED_FORMAT' | 'ERR_SEALED_DECRYPT' | 'ERR_SEALED_BINDING' | 'ERR_SEALED_EXPIRED' | 'ERR_SEALED_NO_SESSION' | 'ERR_SEALED_RECIPIENT', message: string) {
    super(message);
    this.code = code;
    this.name = 'SealedDeliveryError';
  }
}

export function b64u(b: Uint8Array | string): string {
  return (typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString('base64url');
}

export function fromB64u(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'base64url'));
}

export function bindingClaim(b: KeyBinding, exp: number): BindingClaim {
  return { t: b.tenant, aid: b.aid.toUpperCase(), uid: b.uid.toUpperCase(), kn: b.keyNo, kv: b.version, exp };
}

/** Validate a reader public key: an EC P-256 JWK with a point on the curve. Throws ERR_SEALED_RECIPIENT. */
export function readerPublicKey(jwk: JWK): KeyObject {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string' || jwk.d !== undefined)
    throw new SealedDeliveryError('ERR_SEALED_RECIPIENT', 'reader key must be a public EC P-256 JWK');
  try {
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, format: 'jwk' });
  } catch {
    throw new SealedDeliveryError('ERR_SEALED_RECIPIENT', 'reader key is not a valid P-256 point');
  }
}

/** A fresh reader key pair (the reader agent keeps `privateKey`; `publicKey` goes to the CMS). */
export function generateReaderKeyPair(): { privateKey: KeyObject; publicKey: JWK } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' }) as JWK;
  return { privateKey, publicKey: { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! } };
}

// ---- JWE "dir" + A256GCM with node:crypto (both directions; jose interoperates) -------------

/** Encrypt `payload` as a compact JWE with alg "dir", enc "A256GCM" under `cek` (32 bytes / KeyObject). */
export function encryptDir(header: Record<string, unknown>, payload: Uint8Array, cek: KeyObject | Uint8Array, iv: Uint8Array = randomBytes(12)): string {
  return encryptDirJson(JSON.stringify({ alg: 'dir', enc: 'A256GCM', ...header }), payload, cek, iv);
}

/**
 * The protected header of a session-form delivery as JSON: exactly
 * `JSON.stringify({ alg: 'dir', enc: 'A256GCM', typ: DELIVERY_TYP, kid, dcms: claim })`, written
 * directly when every claim field is a string or a finite number (always, from custody), else by
 * JSON.stringify itself.
 */
export function deliveryHeaderJson(kid: string, c: BindingClaim): string {
  if (typeof kid === 'string' && typeof c.t === 'string' && typeof c.aid === 'string' && typeof c.uid === 'string' && Number.isFinite(c.kn) && Number.isFinite(c.kv) && Number.isFinite(c.exp))
    return `{"alg":"dir","enc":"A256GCM","typ":"${DELIVERY_TYP}","kid":${JSON.stringify(kid)},"dcms":{"t":${JSON.stringify(c.t)},"aid":${JSON.stringify(c.aid)},"uid":${JSON.stringify(c.uid)},"kn":${c.kn},"kv":${c.kv},"exp":${c.exp}}}`;
  return JSON.stringify({ alg: 'dir', enc: 'A256GCM', typ: DELIVERY_TYP, kid, dcms: c });
}

/** `encryptDir` with its protected header given as JSON text (it must say alg "dir", enc "A256GCM"). */
export function encryptDirJson(headerJson: string, payload: Uint8Array, cek: KeyObject | Uint8Array, iv: Uint8Array = randomBytes(12)): string {
  const protectedB64 = b64u(headerJson);
  const c = createCipheriv('aes-256-gcm', cek, iv);
  c.setAAD(Buffer.from(protectedB64, 'latin1'));
  let ct = c.update(payload);
  const last = c.final(); // GCM is a stream mode: final() adds no bytes, only the tag
  if (last.length > 0) ct = Buffer.concat([ct, last]);
  const tag = c.getAuthTag();
  return `${protectedB64}..${Buffer.from(iv.buffer, iv.byteOffset, iv.byteLength).toString('base64url')}.${ct.toString('base64url')}.${tag.toString('base64url')}`;
}

interface ParsedJwe {
  header: Record<string, unknown>;
  protectedB64: string;
  parts: string[];
}

export function parseCompact(jwe: string): ParsedJwe {
  if (typeof jwe !== 'string' || jwe.length > 16384) throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'not a JWE compact string');
  const parts = jwe.split('.');
  if (parts.length !== 5) throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'a compact JWE has five parts');
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
  } catch {
    throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'JWE protected header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'JWE protected header is not an object');
  return { header: header as Record<string, unknown>, protectedB64: parts[0]!, parts };
}

/** Decrypt a "dir"/A256GCM compact JWE. */
export function decryptDir(p: ParsedJwe, cek: KeyObject | Uint8Array): Uint8Array {
  if (p.header.alg !== 'dir' || p.header.enc !== 'A256GCM') throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'expected alg dir, enc A256GCM');
  const [, ek, ivS, ctS, tagS] = p.parts as [string, string, string, string, string];
  const iv = Buffer.from(ivS, 'base64url');
  const tag = Buffer.from(tagS, 'base64url');
  if (ek !== '' || iv.length !== 12 || tag.length !== 16) throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'malformed dir JWE');
  try {
    return openA256Gcm(cek, iv, tag, p.protectedB64, ctS);
  } catch {
    throw new SealedDeliveryError('ERR_SEALED_DECRYPT', 'delivery does not decrypt (wrong key or modified)');
  }
}

/**
 * The JWE A256GCM content decryption (the protected header is the AAD). Throws on a bad tag; the
 * caller turns that into its typed error. The intermediate buffer is wiped.
 */
export function openA256Gcm(cek: KeyObject | Uint8Array, iv: Uint8Array, tag: Uint8Array, protectedB64: string, ciphertextB64: string): Uint8Array {
  const d = createDecipheriv('aes-256-gcm', cek, iv);
  d.setAAD(Buffer.from(protectedB64, 'ascii'));
  d.setAuthTag(tag);
  const pt = Buffer.concat([d.update(Buffer.from(ciphertextB64, 'base64url')), d.final()]);
  const out = new Uint8Array(pt);
  pt.fill(0);
  return out;
}

function checkClaim(claim: unknown, expect: KeyBinding, nowSec: number): void {
  if (typeof claim !== 'object' || claim === null) throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'delivery has no binding claim');
  const c = claim as BindingClaim;
  const want = bindingClaim(expect, 0);
  if (c.t !== want.t || c.aid !== want.aid || c.uid !== want.uid || c.kn !== want.kn || c.kv !== want.kv)
    throw new SealedDeliveryError('ERR_SEALED_BINDING', 'delivery is bound to another tenant, AID, UID, key number or version');
  if (typeof c.exp !== 'number' || c.exp <= nowSec) throw new SealedDeliveryError('ERR_SEALED_EXPIRED', 'delivery has expired');
}

/** Decrypt an ECDH-ES+A256KW / A256GCM JWE with a private key or an agreement-only token key. */
export async function openEcdhEs(jwe: string, key: KeyObject | EcdhAgreement): Promise<Uint8Array> {
  if (isEcdhAgreement(key)) return decryptEcdhEsA256kw(jwe, key);
  return (await compactDecrypt(jwe, key, { keyManagementAlgorithms: ['ECDH-ES+A256KW'], contentEncryptionAlgorithms: ['A256GCM'] })).plaintext;
}

/**
 * The reader side: holds the reader's private key and the session keys it has received.
 * `unseal` returns the card key bytes (the caller wipes them after use).
 */
export class ReaderUnsealer {
  private readonly sessions = new Map<string, { key: Uint8Array; exp: number }>();

  constructor(
    readonly readerId: string,
    /** The reader's private key, or an agreement-only handle to one kept in a token (ecdh-es.ts). */
    private readonly privateKey: KeyObject | EcdhAgreement,
    private readonly now: () => number = Date.now,
  ) {}

  private async openSession(session: string, nowSec: number): Promise<void> {
    const p = parseCompact(session);
    const sid = p.header.sid;
    if (typeof sid !== 'string' || p.header.typ !== SESSION_TYP) throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'not a session JWE');
    const known = this.sessions.get(sid);
    if (known && known.exp > nowSec) return;
    if (p.header.alg !== 'ECDH-ES+A256KW' || p.header.enc !== 'A256GCM') throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'session JWE must be ECDH-ES+A256KW/A256GCM');
    if (p.header.kid !== this.readerId) throw new SealedDeliveryError('ERR_SEALED_BINDING', 'session sealed to another reader');
    const exp = p.header.exp;
    if (typeof exp !== 'number' || exp <= nowSec) throw new SealedDeliveryError('ERR_SEALED_EXPIRED', 'session has expired');
    let key: Uint8Array;
    try {
      key = await openEcdhEs(session, this.privateKey);
    } catch {
      throw new SealedDeliveryError('ERR_SEALED_DECRYPT', 'session JWE does not decrypt with this reader key');
    }
    if (key.length !== 32) throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'session key must be 32 bytes');
    if (known) wipe(known.key);
    // forget expired sessions so the map stays small
    for (const [id, x] of this.sessions)
      if (x.exp <= nowSec) {
        wipe(x.key);
        this.sessions.delete(id);
      }
    this.sessions.set(sid, { key, exp });
  }

  async unseal(sealed: SealedKey, expect: KeyBinding): Promise<Uint8Array> {
    const nowSec = Math.floor(this.now() / 1000);
    if (!sealed || sealed.format !== 'jwe-compact') throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'unknown delivery format');
    const p = parseCompact(sealed.jwe);
    if (p.header.typ !== DELIVERY_TYP) throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'not a key delivery');
    checkClaim(p.header.dcms, expect, nowSec);
    if (p.header.alg === 'dir') {
      if (sealed.session !== undefined) await this.openSession(sealed.session, nowSec);
      const sid = p.header.kid;
      const s = typeof sid === 'string' ? this.sessions.get(sid) : undefined;
      if (!s) throw new SealedDeliveryError('ERR_SEALED_NO_SESSION', 'no session key for this delivery');
      if (s.exp <= nowSec) throw new SealedDeliveryError('ERR_SEALED_EXPIRED', 'session has expired');
      return decryptDir(p, s.key);
    }
    if (p.header.alg === 'ECDH-ES+A256KW' && p.header.enc === 'A256GCM') {
      if (p.header.kid !== this.readerId) throw new SealedDeliveryError('ERR_SEALED_BINDING', 'delivery sealed to another reader');
      try {
        return await openEcdhEs(sealed.jwe, this.privateKey);
      } catch {
        throw new SealedDeliveryError('ERR_SEALED_DECRYPT', 'delivery does not decrypt with this reader key');
      }
    }
    throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'unsupported JWE algorithm');
  }

  /** Forget (and wipe) every session key, e.g. on power cycle. */
  clear(): void {
    for (const s of this.sessions.values()) wipe(s.key);
    this.sessions.clear();
  }
}


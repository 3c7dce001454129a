// ECDH-ES+A256KW / A256GCM JWE decryption (RFC 7518 §4.6, §5.3) with the key agreement done by
// the caller — for reader keys that never leave a PKCS#11 token (src/reader/pkcs11-keystore.ts):
// the token computes the ECDH shared secret Z with the sender's ephemeral key; Concat KDF, AES key
// unwrap and AES-GCM run here. Errors: SealedDeliveryError (ERR_SEALED_FORMAT / _DECRYPT).
import { createDecipheriv, createHash } from 'node:crypto';
import type { JWK } from 'jose';
import { wipe } from '../core/crypto/bytes.js';
import { openA256Gcm, parseCompact, SealedDeliveryError } from './sealed.js';

/** A P-256 private key that can only agree: Z = ECDH(own private key, peer public key) (x-coordinate, 32 bytes). */
export interface EcdhAgreement {
  agree(peer: JWK): Promise<Uint8Array>;
}

export function isEcdhAgreement(k: unknown): k is EcdhAgreement {
  return typeof (k as Partial<EcdhAgreement> | null)?.agree === 'function';
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const lenPrefixed = (b: Buffer) => Buffer.concat([u32(b.length), b]);

/** Concat KDF (NIST SP 800-56A, one SHA-256 round: 256 bits) as JWA specifies for ECDH-ES. */
function concatKdf(z: Uint8Array, alg: string, apu: Buffer, apv: Buffer): Buffer {
  return createHash('sha256')
    .update(u32(1))
    .update(z)
    .update(lenPrefixed(Buffer.from(alg, 'ascii')))
    .update(lenPrefixed(apu))
    .update(lenPrefixed(apv))
    .update(u32(256))
    .digest();
}

/** Decrypt a compact JWE `alg: ECDH-ES+A256KW, enc: A256GCM` with an agreement-only key; returns the plaintext. */
export async function decryptEcdhEsA256kw(jwe: string, key: EcdhAgreement): Promise<Uint8Array> {
  const p = parseCompact(jwe);
  const h = p.header as { alg?: string; enc?: string; epk?: JWK; apu?: string; apv?: string };
  if (h.alg !== 'ECDH-ES+A256KW' || h.enc !== 'A256GCM') throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'expected ECDH-ES+A256KW / A256GCM');
  const epk = h.epk;
  if (!epk || epk.kty !== 'EC' || epk.crv !== 'P-256' || typeof epk.x !== 'string' || typeof epk.y !== 'string') throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'JWE has no P-256 ephemeral key');
  const [, ekS, ivS, ctS, tagS] = p.parts as [string, string, string, string, string];
  const ek = Buffer.from(ekS, 'base64url');
  const iv = Buffer.from(ivS, 'base64url');
  const tag = Buffer.from(tagS, 'base64url');
  if (ek.length !== 40 || iv.length !== 12 || tag.length !== 16) throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'malformed ECDH-ES+A256KW JWE');
  let z: Uint8Array | undefined;
  let kek: Buffer | undefined;
  let cek: Buffer | undefined;
  try {
    try {
      z = await key.agree({ kty: 'EC', crv: 'P-256', x: epk.x, y: epk.y });
    } catch {
      throw new SealedDeliveryError('ERR_SEALED_DECRYPT', 'key agreement with the JWE ephemeral key failed');
    }
    kek = concatKdf(z, 'ECDH-ES+A256KW', Buffer.from(h.apu ?? '', 'base64url'), Buffer.from(h.apv ?? '', 'base64url'));
    try {
      const kw = createDecipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
      cek = Buffer.concat([kw.update(ek), kw.final()]);
      return openA256Gcm(cek, iv, tag, p.protectedB64, ctS);
    } catch {
      throw new SealedDeliveryError('ERR_SEALED_DECRYPT', 'JWE does not decrypt with this reader key');
    }
  } finally {
    if (z) wipe(z);
    kek?.fill(0);
    cek?.fill(0);
  }
}

// Operation tokens: short-lived, single-use, ES256-signed JWTs that authorise one reader to run one
// job. Claims: iss "desfire-cms", aud = reader id, job = job id, jti = 128-bit nonce, iat, exp.
// Verification checks signature, issuer, audience, job and lifetime, then consumes the jti in the
// nonce store passed in (memory or Redis), so a token is accepted once across all CMS processes.
//
// Signing and verification use node:crypto directly (ES256, IEEE P1363 signatures, RFC 7515 compact
// serialisation, as jose produces and reads them): a token costs one native ECDSA sign and one
// verify, without WebCrypto's job dispatch (the station path issues and verifies one per job).
// The CMS is the only party that reads these tokens, so verification is strict: the protected
// header must be exactly the one this module writes (no alg negotiation, no crit, no kid).
import { exportSPKI, importSPKI } from 'jose';
import { KeyObject, randomBytes, sign as ecSign, verify as ecVerify } from 'node:crypto';
import { EC_P256 } from './ca.js';
import { PkiError } from './errors.js';
import type { CryptoKey, CryptoKeyPair } from './webcrypto.js';
import { unwrapSigningKey, wrapPrivateKey, type CaKeyProtector, type CaKeyStore } from './keystore.js';

export const TOKEN_ISSUER = 'desfire-cms';
export const TOKEN_KEY_NAME = 'token-signing';
export const DEFAULT_TOKEN_TTL_S = 120;
export const MAX_TOKEN_TTL_S = 600;
const CLOCK_SKEW_S = 5;
const TOKEN_TYP = 'desfire-op+jwt';
const HEADER_B64 = Buffer.from(JSON.stringify({ alg: 'ES256', typ: TOKEN_TYP })).toString('base64url');
const B64URL_RE = /^[A-Za-z0-9_-]+$/;

/**
 * Single-use nonces. The CMS session store (src/cms/session `SessionStore`, memory or Redis)
 * satisfies it as is; kept as a one-method interface so the PKI needs nothing else of it.
 */
export interface NonceStore {
  /** True the first time `key` is seen within `ttlMs`; false on every later call. Atomic. */
  consumeOnce(key: string, ttlMs: number): Promise<boolean>;
}

export class MemoryNonceStore implements NonceStore {
  private readonly seen = new Map<string, number>();
  async consumeOnce(key: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    for (const [k, exp] of this.seen) if (exp <= now) this.seen.delete(k);
    if (this.seen.has(key)) return false;
    this.seen.set(key, now + ttlMs);
    return true;
  }
}

export interface OperationClaims {
  readerId: string;
  jobId: string;
  jti: string;
  issuedAt: number;
  expiresAt: number;
}

export class OperationTokens {
  private readonly signKey: KeyObject | undefined;
  private readonly verifyKey: KeyObject;

  private constructor(
    privateKey: CryptoKey | undefined,
    readonly publicKey: CryptoKey,
  ) {
    this.signKey = privateKey ? KeyObject.from(privateKey) : undefined;
    this.verifyKey = KeyObject.from(publicKey);
  }

  /** Open the stored signing key (or create it once). Every CMS process shares it. */
  static async openOrCreate(store: CaKeyStore, protector: CaKeyProtector): Promise<OperationTokens> {
    let rec = await store.load(TOKEN_KEY_NAME);
    if (!rec) {
      const keys = (await crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
      await store.saveIfAbsent(TOKEN_KEY_NAME, {
        publicPem: await exportSPKI(keys.publicKey),
        wrappedPrivateKey: await wrapPrivateKey(protector, TOKEN_KEY_NAME, keys.privateKey),
        createdAt: new Date().toISOString(),
      });
      rec = await store.load(TOKEN_KEY_NAME);
      if (!rec) throw new PkiError('ERR_PKI_CA_MISSING', 'token signing key was not stored');
    }
    const priv = await unwrapSigningKey(protector, TOKEN_KEY_NAME, rec, EC_P256, ['sign']);
    return new OperationTokens(priv, await importSPKI(rec.publicPem, 'ES256'));
  }

  /** A verifier only (e.g. for a process that must not mint tokens). */
  static async verifierFromPem(publicPem: string): Promise<OperationTokens> {
    return new OperationTokens(undefined, await importSPKI(publicPem, 'ES256'));
  }

  async issue(opts: { readerId: string; jobId: string; ttlSeconds?: number; now?: Date }): Promise<{ token: string } & OperationClaims> {
    if (!this.signKey) throw new PkiError('ERR_PKI_BAD_INPUT', 'this instance only verifies tokens');
    const ttl = opts.ttlSeconds ?? DEFAULT_TOKEN_TTL_S;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL_S) throw new PkiError('ERR_PKI_BAD_INPUT', `token ttl must be 1..${MAX_TOKEN_TTL_S} s`);
    if (!opts.readerId || !opts.jobId) throw new PkiError('ERR_PKI_BAD_INPUT', 'reader id and job id are required');
    const iat = Math.floor((opts.now ?? new Date()).getTime() / 1000);
    const jti = randomBytes(16).toString('base64url');
    // claim order as jose's SignJWT wrote them (job, iss, aud, jti, iat, exp)
    const payload = Buffer.from(JSON.stringify({ job: opts.jobId, iss: TOKEN_ISSUER, aud: opts.readerId, jti, iat, exp: iat + ttl })).toString('base64url');
    const input = `${HEADER_B64}.${payload}`;
    const token = `${input}.${ecSign('sha256', Buffer.from(input), { key: this.signKey!, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    return { token, readerId: opts.readerId, jobId: opts.jobId, jti, issuedAt: iat, expiresAt: iat + ttl };
  }

  /**
   * Verify a token presented by `readerId` (from its mTLS certificate) for `jobId`, and consume its
   * jti. Any failure is a PkiError; a second presentation is ERR_TOKEN_REPLAYED.
   */
  async verify(token: string, expect: { readerId: string; jobId?: string; now?: Date }, nonces: NonceStore): Promise<OperationClaims> {
    if (typeof token !== 'string' || token.length > 4096) throw new PkiError('ERR_TOKEN_INVALID', 'malformed token');
    const now = expect.now ?? new Date();
    const payload = this.checkSignature(token);
    if (payload.iss !== TOKEN_ISSUER || payload.aud !== expect.readerId) throw new PkiError('ERR_TOKEN_INVALID', 'operation token invalid');
    const { jti, exp, iat, job } = payload as { jti: unknown; exp: unknown; iat: unknown; job: unknown };
    if (typeof jti !== 'string' || typeof job !== 'string' || typeof exp !== 'number' || typeof iat !== 'number')
      throw new PkiError('ERR_TOKEN_INVALID', 'operation token claims malformed');
    const nowS = Math.floor(now.getTime() / 1000);
    if (exp + CLOCK_SKEW_S <= nowS) throw new PkiError('ERR_TOKEN_EXPIRED', 'operation token expired');
    if (iat - CLOCK_SKEW_S > nowS) throw new PkiError('ERR_TOKEN_INVALID', 'operation token issued in the future');
    if (exp - iat > MAX_TOKEN_TTL_S) throw new PkiError('ERR_TOKEN_INVALID', 'operation token lifetime too long');
    if (expect.jobId !== undefined && job !== expect.jobId) throw new PkiError('ERR_TOKEN_INVALID', 'operation token is for another job');
    const ttlMs = Math.max(1, exp + CLOCK_SKEW_S - nowS) * 1000;
    if (!(await nonces.consumeOnce(`optoken:${jti}`, ttlMs))) throw new PkiError('ERR_TOKEN_REPLAYED', 'operation token already used');
    return { readerId: expect.readerId, jobId: job, jti, issuedAt: iat, expiresAt: exp };
  }

  /** The payload of a token whose header is ours and whose ES256 signature verifies; else ERR_TOKEN_INVALID. */
  private checkSignature(token: string): Record<string, unknown> {
    const bad = () => new PkiError('ERR_TOKEN_INVALID', 'operation token invalid');
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== HEADER_B64 || !B64URL_RE.test(parts[1]!) || !B64URL_RE.test(parts[2]!)) throw bad();
    const signature = Buffer.from(parts[2]!, 'base64url');
    if (signature.length !== 64) throw bad();
    if (!ecVerify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), { key: this.verifyKey, dsaEncoding: 'ieee-p1363' }, signature)) throw bad();
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    } catch {
      throw bad();
    }
    if (!payload || typeof payload !== 'object' || Array.isArray(payload)) throw bad();
    return payload as Record<string, unknown>;
  }
}

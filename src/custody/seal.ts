// Custody's side of sealed deliveries (format in sealed.ts). A `Sealer` keeps, per reader, one
// session: a random 256-bit key sealed once to the reader's P-256 key with ECDH-ES+A256KW
// (jose), after which each delivery costs one AES-256-GCM encryption ("dir" JWE). Sessions end
// after `sessionTtlSeconds`, when the reader's public key changes, or on `clear()` (vault seal).
import { createHash, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { CompactEncrypt } from 'jose';
import { wipe } from '../core/crypto/bytes.js';
import { CustodyInputError } from './errors.js';
import { b64u, bindingClaim, deliveryHeaderJson, DELIVERY_TYP, encryptDirJson, readerPublicKey, type ReaderRecipient, type SealedKey, SESSION_TYP } from './sealed.js';
import type { KeyBinding, SealOptions } from './types.js';
import { lastIsoTime } from './iso-time.js';

interface ReaderSession {
  sid: string;
  /** Deterministic GCM IVs (NIST SP 800-38D §8.2.1): 4 random bytes fixed per session || 8-byte counter. */
  iv: Buffer;
  /** Deliveries sealed in this session (a number: exact far beyond the 2^32 limit below). */
  counter: number;
  key: KeyObject;
  raw: Uint8Array;
  exp: number;
  jwe: string;
  /** The reader public key (JWK x, y) the session key was sealed to. */
  pubX: string;
  pubY: string;
}

export const DEFAULT_DELIVERY_TTL = 600;
/** Deliveries per session before a new session (and IV prefix) is started. */
const MAX_SESSION_DELIVERIES = 2 ** 32;
export const MAX_DELIVERY_TTL = 86400;

export class Sealer {
  private readonly sessions = new Map<string, ReaderSession>();
  /** Per reader: its public key as last seen (x, y) and as a KeyObject. Compared by x and y (no string built per call). */
  private readonly pubKeys = new Map<string, { x: string; y: string; key: KeyObject }>();
  /** Per reader: the session being started (its key exchange in flight): concurrent seals join it. */
  private readonly starting = new Map<string, Promise<ReaderSession>>();
  /** Bumped when sessions are ended (endSession, clear): a session started before is not kept. */
  private epoch = 0;

  constructor(
    private readonly sessionTtlSeconds = 3600,
    private readonly now: () => number = Date.now,
  ) {}

  private publicKey(r: ReaderRecipient): { x: string; y: string; key: KeyObject } {
    const { x, y } = r.publicKey;
    const cached = this.pubKeys.get(r.readerId);
    if (cached && cached.x === x && cached.y === y) return cached;
    const entry = { key: readerPublicKey(r.publicKey), x: x!, y: y! }; // readerPublicKey checked x and y are strings
    this.pubKeys.set(r.readerId, entry);
    return entry;
  }

  /** Validate the recipient (before any key is unwrapped). */
  check(r: ReaderRecipient, opts: SealOptions = {}): void {
    if (!r || typeof r.readerId !== 'string' || r.readerId.length === 0 || r.readerId.length > 256) throw new CustodyInputError('recipient needs a readerId');
    try {
      this.publicKey(r);
    } catch (e) {
      throw new CustodyInputError((e as Error).message);
    }
    const ttl = opts.ttlSeconds ?? DEFAULT_DELIVERY_TTL;
    if (!Number.isInteger(ttl) || ttl <= 0 || ttl > MAX_DELIVERY_TTL) throw new CustodyInputError(`ttlSeconds must be an integer in 1..${MAX_DELIVERY_TTL}`);
    if (opts.mode !== undefined && opts.mode !== 'session' && opts.mode !== 'ecdh-es') throw new CustodyInputError("mode must be 'session' or 'ecdh-es'");
  }

  /** The reader's current session if it is still good for a delivery expiring at `minExp`. */
  private cached(r: ReaderRecipient, minExp: number): ReaderSession | undefined {
    const s = this.sessions.get(r.readerId);
    if (s && s.exp >= minExp && s.pubX === r.publicKey.x && s.pubY === r.publicKey.y) return s;
    return undefined;
  }

  /**
   * The reader's session, started if there is none good for `minExp`. Seals that arrive while a
   * session is being started (a station job's keys are sealed concurrently) wait for it and use
   * it: one key exchange and one session copy per reader, not one per key.
   */
  private async session(r: ReaderRecipient, nowSec: number, minExp: number): Promise<ReaderSession> {
    const pending = this.starting.get(r.readerId);
    if (pending) {
      await pending.catch(() => undefined);
      const s = this.cached(r, minExp);
      if (s) return s;
    }
    const p = this.start(r, nowSec, minExp);
    this.starting.set(r.readerId, p);
    try {
      return await p;
    } finally {
      if (this.starting.get(r.readerId) === p) this.starting.delete(r.readerId);
    }
  }

  private async start(r: ReaderRecipient, nowSec: number, minExp: number): Promise<ReaderSession> {
    const epoch = this.epoch;
    const pk = this.publicKey(r);
    const s = this.sessions.get(r.readerId);
    if (s && s.pubX === pk.x && s.pubY === pk.y && s.exp >= minExp) return s;
    if (s) this.drop(r.readerId);
    const raw = new Uint8Array(randomBytes(32));
    const sid = randomBytes(16).toString('base64url');
    const exp = Math.max(nowSec + this.sessionTtlSeconds, minExp);
    const jwe = await new CompactEncrypt(raw)
      .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', typ: SESSION_TYP, kid: r.readerId, sid, exp })
      .encrypt(pk.key);
    const iv = Buffer.alloc(12);
    randomBytes(4).copy(iv);
    const created: ReaderSession = { sid, iv, counter: 0, key: createSecretKey(raw), raw, exp, jwe, pubX: pk.x, pubY: pk.y };
    if (this.epoch === epoch) this.sessions.set(r.readerId, created); // not kept past an endSession/clear during its key exchange
    return created;
  }

  async seal(key: Uint8Array, binding: KeyBinding, r: ReaderRecipient, opts: SealOptions = {}): Promise<SealedKey> {
    const nowSec = Math.floor(this.now() / 1000);
    const exp = nowSec + (opts.ttlSeconds ?? DEFAULT_DELIVERY_TTL);
    if (opts.mode === 'ecdh-es') {
      const pk = this.publicKey(r);
      const dcms = bindingClaim(binding, exp);
      const jwe = await new CompactEncrypt(key).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', typ: DELIVERY_TYP, kid: r.readerId, dcms }).encrypt(pk.key);
      return { format: 'jwe-compact', jwe, expiresAt: this.expiresAt(exp) };
    }
    const s = this.cached(r, exp) ?? (await this.session(r, nowSec, exp));
    return this.sealIn(s, r.readerId, key, binding, exp);
  }

  /**
   * `seal` without a promise when it needs none: session mode with the reader's session cached
   * and good for this delivery. Undefined otherwise (nothing done: call `seal`).
   */
  sealCached(key: Uint8Array, binding: KeyBinding, r: ReaderRecipient, opts: SealOptions = {}): SealedKey | undefined {
    if (opts.mode === 'ecdh-es') return undefined;
    const exp = Math.floor(this.now() / 1000) + (opts.ttlSeconds ?? DEFAULT_DELIVERY_TTL);
    const s = this.cached(r, exp);
    return s && this.sealIn(s, r.readerId, key, binding, exp);
  }

  /** One delivery in session `s`: the next IV of the session (its invocation counter), one AES-GCM. */
  private sealIn(s: ReaderSession, readerId: string, key: Uint8Array, binding: KeyBinding, exp: number): SealedKey {
    s.counter += 1;
    if (s.counter >= MAX_SESSION_DELIVERIES) this.drop(readerId); // far below the 2^32 invocation limit; next call starts a new session
    // the 8-byte big-endian counter (as writeBigUInt64BE wrote it): high and low 32-bit halves
    s.iv.writeUInt32BE(Math.floor(s.counter / 2 ** 32), 4);
    s.iv.writeUInt32BE(s.counter >>> 0, 8);
    const jwe = encryptDirJson(deliveryHeaderJson(s.sid, bindingClaim(binding, exp)), key, s.key, s.iv);
    return { format: 'jwe-compact', jwe, session: s.jwe, expiresAt: this.expiresAt(exp) };
  }

  /** ISO 8601 of an expiry (deliveries of the same second share the string). */
  private readonly expiryIso = lastIsoTime();
  private expiresAt(exp: number): string {
    return this.expiryIso(exp * 1000);
  }

  private drop(readerId: string): void {
    const s = this.sessions.get(readerId);
    if (s) wipe(s.raw);
    this.sessions.delete(readerId);
  }

  /** End a reader's session (e.g. its certificate was revoked). */
  endSession(readerId: string): void {
    this.epoch++;
    this.starting.delete(readerId);
    this.drop(readerId);
  }

  /** Wipe every session key. */
  clear(): void {
    this.epoch++;
    this.starting.clear();
    for (const id of [...this.sessions.keys()]) this.drop(id);
    this.pubKeys.clear();
  }
}

/** A stable, non-secret fingerprint of a binding (hex, 16 chars) used to tell AAD mismatch from tampering. */
export function bindingFingerprint(aad: Uint8Array): string {
  return createHash('sha256').update(aad).digest('hex').slice(0, 16);
}

export { b64u };

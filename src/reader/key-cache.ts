// The offline key cache: per-card keys the reader received sealed (online), re-encrypted under a
// local AES-256 key that exists only in this process's memory. Each entry is valid for the offline
// TTL (default 10 minutes, 5 to 15) from the moment it was received; a restart loses the local key,
// so the cache is gone with it. `wipe()` zeroes the local key and forgets every entry (revocation).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { wipe } from '../core/crypto/bytes.js';
import { ReaderError } from './errors.js';

export const DEFAULT_OFFLINE_TTL_MS = 10 * 60_000;
export const MIN_OFFLINE_TTL_MS = 5 * 60_000;
export const MAX_OFFLINE_TTL_MS = 15 * 60_000;

export function checkOfflineTtl(ms: number): number {
  if (!Number.isInteger(ms) || ms < MIN_OFFLINE_TTL_MS || ms > MAX_OFFLINE_TTL_MS)
    throw new ReaderError('ERR_READER_CONFIG', `offline TTL must be between 5 and 15 minutes (got ${ms} ms)`);
  return ms;
}

export type CardKeyType = 'aes' | '3k3des';

/** Which key: (tenant, AID, UID, keyNo) and its version. */
export interface CachedKeyId {
  tenant: string;
  aid: string;
  uid: string;
  keyNo: number;
}

interface Entry {
  version: number;
  keyType: CardKeyType;
  storedAt: number;
  iv: Buffer;
  ct: Buffer;
  tag: Buffer;
}

const idOf = (k: CachedKeyId) => `${k.tenant}|${k.aid.toUpperCase()}|${k.uid.toUpperCase()}|${k.keyNo}`;

export class OfflineKeyCache {
  private localKey: Buffer = randomBytes(32);
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly ttlMs: number = DEFAULT_OFFLINE_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {
    checkOfflineTtl(ttlMs);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Age of the oldest cached key in ms (0 when empty): the reader metrics' cache age. */
  get oldestAgeMs(): number {
    let oldest = Infinity;
    for (const e of this.entries.values()) oldest = Math.min(oldest, e.storedAt);
    return oldest === Infinity ? 0 : Math.max(0, this.now() - oldest);
  }

  put(id: CachedKeyId, version: number, keyType: CardKeyType, key: Uint8Array): void {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.localKey, iv);
    c.setAAD(Buffer.from(`${idOf(id)}|${version}|${keyType}`));
    const ct = Buffer.concat([c.update(key), c.final()]);
    const old = this.entries.get(idOf(id));
    if (old) wipe(old.ct);
    this.entries.set(idOf(id), { version, keyType, storedAt: this.now(), iv, ct, tag: c.getAuthTag() });
  }

  /** The cached key (caller wipes it), or a typed refusal saying why. */
  get(id: CachedKeyId): { key: Uint8Array; version: number; keyType: CardKeyType; ageMs: number } {
    const e = this.entries.get(idOf(id));
    if (!e) throw new ReaderError('ERR_READER_OFFLINE_NO_KEY', `offline and no cached key for card ${id.uid} AID ${id.aid} key ${id.keyNo}`);
    const age = this.now() - e.storedAt;
    if (age > this.ttlMs) {
      wipe(e.ct);
      this.entries.delete(idOf(id));
      throw new ReaderError('ERR_READER_OFFLINE_EXPIRED', `offline cache entry expired: received ${Math.floor(age / 1000)} s ago, TTL ${this.ttlMs / 1000} s; reconnect to the CMS`);
    }
    const d = createDecipheriv('aes-256-gcm', this.localKey, e.iv);
    d.setAAD(Buffer.from(`${idOf(id)}|${e.version}|${e.keyType}`));
    d.setAuthTag(e.tag);
    const pt = Buffer.concat([d.update(e.ct), d.final()]);
    const key = new Uint8Array(pt);
    pt.fill(0);
    return { key, version: e.version, keyType: e.keyType, ageMs: age };
  }

  /** Drop entries past the TTL. */
  prune(): void {
    const t = this.now();
    for (const [k, e] of this.entries) {
      if (t - e.storedAt > this.ttlMs) {
        wipe(e.ct);
        this.entries.delete(k);
      }
    }
  }

  /** Forget everything and replace the local key (the old one is zeroed). */
  wipe(): void {
    for (const e of this.entries.values()) wipe(e.ct);
    this.entries.clear();
    wipe(this.localKey);
    this.localKey = randomBytes(32);
  }
}

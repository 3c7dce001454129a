// The session store: single-use operation tokens and nonces, short-lived values, rate limits
// and deny/blocklists, shared by every CMS process. Backends: in-memory (one process; the
// embedded default) and Redis (many processes). Every operation is atomic in the backend.

export interface RateLimitResult {
  /** Whether this hit is within the limit (a refused hit is not counted). */
  allowed: boolean;
  /** Hits still allowed in the current window after this one. */
  remaining: number;
  /** Milliseconds until a hit would be allowed again (0 when remaining > 0). */
  resetMs: number;
}

export type RateLimitMode = 'fixed' | 'sliding';

export interface SessionStore {
  readonly kind: 'memory' | 'redis';
  /**
   * Mark `id` used. True the first time (within ttlMs), false on every later call: in this
   * process and in every other process sharing the backend. Use for operation tokens and nonces
   * (ttlMs >= the token's lifetime, so a replay after expiry of the record is refused by the
   * token's own expiry).
   */
  consumeOnce(id: string, ttlMs: number): Promise<boolean>;
  /** Store a short-lived value (replaces any previous one). */
  setValue(key: string, value: string, ttlMs: number): Promise<void>;
  getValue(key: string): Promise<string | undefined>;
  /** Get and delete atomically: at most one caller ever receives the value. */
  takeValue(key: string): Promise<string | undefined>;
  deleteValue(key: string): Promise<void>;
  /**
   * Count a hit on `key` against `limit` hits per `windowMs`. 'fixed' (default): windows start
   * at the first hit; 'sliding': the last windowMs milliseconds (a log of hits).
   */
  hit(key: string, limit: number, windowMs: number, mode?: RateLimitMode): Promise<RateLimitResult>;
  /** Add a member to a named set (denylist/blocklist); with ttlMs it leaves by itself. */
  addToSet(set: string, member: string, ttlMs?: number): Promise<void>;
  removeFromSet(set: string, member: string): Promise<void>;
  isInSet(set: string, member: string): Promise<boolean>;
  close(): Promise<void>;
}

export type SessionErrorCode = 'ERR_SESSION_CONFIG' | 'ERR_SESSION_UNAVAILABLE' | 'ERR_SESSION_INPUT';

export class SessionStoreError extends Error {
  readonly code: SessionErrorCode;
  constructor(code: SessionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'SessionStoreError';
  }
}

const MAX_KEY = 512;
const MAX_TTL = 366 * 24 * 3600 * 1000;

/** Input checks shared by both backends: bad input changes no state. */
export function checkKey(what: string, key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY) {
    throw new SessionStoreError('ERR_SESSION_INPUT', `${what} must be a non-empty string of at most ${MAX_KEY} characters`);
  }
}

export function checkTtl(ttlMs: unknown): asserts ttlMs is number {
  if (typeof ttlMs !== 'number' || !Number.isInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TTL) {
    throw new SessionStoreError('ERR_SESSION_INPUT', 'ttlMs must be a positive integer number of milliseconds (at most a year)');
  }
}

export function checkLimit(limit: unknown, windowMs: unknown, mode: unknown): void {
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit <= 0 || limit > 1_000_000) {
    throw new SessionStoreError('ERR_SESSION_INPUT', 'limit must be a positive integer (at most 1,000,000)');
  }
  checkTtl(windowMs);
  if (mode !== 'fixed' && mode !== 'sliding') throw new SessionStoreError('ERR_SESSION_INPUT', "mode must be 'fixed' or 'sliding'");
}

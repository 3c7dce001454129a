// One-time enrolment codes. An operator creates one for a reader id; the reader presents it once
// with its CSR. Stored only as SHA-256 of the code (the code has 120 bits of entropy, so a fast
// hash is enough); single use, expiring. consume() must be atomic in every store.
import { createHash, randomBytes } from 'node:crypto';
import { PkiError } from './errors.js';

export interface EnrolmentCodeRecord {
  codeHash: string;
  readerId: string;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  usedAt?: number;
}

export interface EnrolmentCodeStore {
  insert(rec: EnrolmentCodeRecord): Promise<void>;
  /**
   * Atomically mark the code used and return its record, only if it exists, is unused and
   * `now < expiresAt`; otherwise return undefined and change nothing.
   */
  consume(codeHash: string, now: number): Promise<EnrolmentCodeRecord | undefined>;
}

export class MemoryEnrolmentCodeStore implements EnrolmentCodeStore {
  private readonly recs = new Map<string, EnrolmentCodeRecord>();
  async insert(rec: EnrolmentCodeRecord): Promise<void> {
    if (this.recs.has(rec.codeHash)) throw new PkiError('ERR_PKI_BAD_INPUT', 'duplicate enrolment code');
    this.recs.set(rec.codeHash, { ...rec });
  }
  async consume(codeHash: string, now: number): Promise<EnrolmentCodeRecord | undefined> {
    const r = this.recs.get(codeHash);
    if (!r || r.usedAt !== undefined || now >= r.expiresAt) return undefined;
    r.usedAt = now;
    return { ...r };
  }
}

const ALPHABET = 'ABCDEFGHJKMNPQRSTVWXYZ0123456789'; // 32 symbols, no I/L/O/U
export const READER_ID_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Canonical form: upper case, separators and spaces removed. */
export function normaliseCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]/g, '');
}

export function hashEnrolmentCode(code: string): string {
  return createHash('sha256').update(`desfire-cms:enrolment:${normaliseCode(code)}`).digest('hex');
}

export const DEFAULT_ENROLMENT_TTL_MS = 24 * 3600_000;
export const MAX_ENROLMENT_TTL_MS = 7 * 24 * 3600_000;

/** Create a code for `readerId`; the code is returned once and stored only hashed. */
export async function createEnrolmentCode(
  store: EnrolmentCodeStore,
  opts: { readerId: string; createdBy: string; ttlMs?: number; now?: number },
): Promise<{ code: string; expiresAt: number }> {
  if (!READER_ID_RE.test(opts.readerId)) throw new PkiError('ERR_PKI_BAD_INPUT', 'reader id must match [a-z0-9][a-z0-9._-]{0,62}');
  const ttl = opts.ttlMs ?? DEFAULT_ENROLMENT_TTL_MS;
  if (!Number.isInteger(ttl) || ttl <= 0 || ttl > MAX_ENROLMENT_TTL_MS)
    throw new PkiError('ERR_PKI_BAD_INPUT', `enrolment code ttl must be 1..${MAX_ENROLMENT_TTL_MS} ms`);
  const now = opts.now ?? Date.now();
  const raw = randomBytes(24);
  let sym = '';
  for (const b of raw) sym += ALPHABET[b & 31];
  const code = sym.match(/.{4}/g)!.join('-'); // 24 symbols × 5 bits = 120 bits
  const expiresAt = now + ttl;
  await store.insert({ codeHash: hashEnrolmentCode(code), readerId: opts.readerId, createdBy: opts.createdBy, createdAt: now, expiresAt });
  return { code, expiresAt };
}

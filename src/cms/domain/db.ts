// Shared helpers of the domain repositories.
import type { Kysely } from 'kysely';
import type { Database } from '../storage/database.js';
import { DomainError } from './errors.js';

export type Db = Kysely<Database>;

/** Run fn atomically: in a new transaction, or in the caller's if `db` already is one. */
export function atomic<T>(db: Db, fn: (tx: Db) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db) : db.transaction().execute(fn);
}

export const TENANT_ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
/**
 * The pseudo-tenant of the card issuer: custody bindings and audit entries of a card's CMK (AID
 * 000000) carry it, so a real tenant may never be called that (it would see the issuer's entries
 * in its audit view and own the CMK's key bindings).
 */
export const ISSUER_TENANT = 'issuer';

/** A tenant id a tenant may have: the pattern, and not the issuer's reserved id. */
export function checkTenantId(id: unknown): string {
  if (typeof id !== 'string' || !TENANT_ID_RE.test(id)) throw new DomainError('ERR_DOMAIN_BAD_INPUT', 'tenant id must match [a-z0-9][a-z0-9-]{0,62}');
  if (id === ISSUER_TENANT) throw new DomainError('ERR_DOMAIN_BAD_INPUT', `tenant id '${ISSUER_TENANT}' is reserved for the card issuer`);
  return id;
}
export const AID_RE = /^[0-9A-F]{6}$/;
export const UID_RE = /^([0-9A-F]{2}){4,10}$/;

export function checkUid(uid: unknown): string {
  if (typeof uid !== 'string' || !UID_RE.test(uid.toUpperCase()))
    throw new DomainError('ERR_DOMAIN_BAD_INPUT', 'card UID must be 4..10 bytes of hex');
  return uid.toUpperCase();
}

export function checkAid(aid: unknown): string {
  if (typeof aid !== 'string' || !AID_RE.test(aid.toUpperCase()) || aid === '000000')
    throw new DomainError('ERR_DOMAIN_BAD_INPUT', 'AID must be 6 hex digits (not 000000)');
  return aid.toUpperCase();
}

export function checkInt(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new DomainError('ERR_DOMAIN_BAD_INPUT', `${name} must be an integer in ${min}..${max}`);
  return v;
}

export const inserted = (r: { numInsertedOrUpdatedRows?: bigint } | undefined): boolean => (r?.numInsertedOrUpdatedRows ?? 0n) > 0n;
export const updated = (r: { numUpdatedRows?: bigint } | undefined): boolean => (r?.numUpdatedRows ?? 0n) > 0n;

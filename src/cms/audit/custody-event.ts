// Custody's AuditEvent (src/custody/audit.ts) as an audit log entry. Custody events carry
// identifiers only; the key *name* goes to details.keyName (never key bytes).
import type { AuditEvent } from '../../custody/audit.js';
import type { AuditInput, Json } from './entry.js';

/** One key of a batch seal, its members in canonical order. */
function sealDetails(x: NonNullable<AuditEvent['seals']>[number]): Record<string, Json> {
  const o: Record<string, Json> = { aid: x.binding.aid };
  if (x.keyVersion !== undefined) o.kekVersion = x.keyVersion;
  o.keyName = x.key;
  o.keyNo = x.binding.keyNo;
  o.tenant = x.binding.tenant;
  o.uid = x.binding.uid;
  o.version = x.binding.version;
  return o;
}

export function fromCustodyEvent(ev: AuditEvent): AuditInput {
  // the members added in canonical (sorted) key order: canonicalEntry then takes the object as it
  // is instead of copying it sorted (and the stored details column reads back sorted, so
  // verifying a stored entry skips that copy too); the same members and values as before
  const details: Record<string, Json> = { backend: ev.backend };
  if (ev.batch !== undefined) details.batch = { ...ev.batch, first: { ...ev.batch.first }, last: { ...ev.batch.last } };
  if (ev.code !== undefined) details.code = ev.code;
  if (ev.keyVersion !== undefined) details.kekVersion = ev.keyVersion;
  if (ev.key !== undefined) details.keyName = ev.key;
  if (ev.keys !== undefined) details.keyNames = [...ev.keys];
  if (ev.mode !== undefined) details.mode = ev.mode;
  details.purpose = ev.purpose;
  // a batch seal: every binding in the details (a compromised reader's key set reads them);
  // the card column when every key is of one card (a station job)
  if (ev.seals !== undefined) details.seals = ev.seals.map(sealDetails);
  details.source = ev.source;
  const t = parseIsoTime(ev.time);
  const oneUid = ev.seals?.length && ev.seals.every((x) => x.binding.uid === ev.seals![0]!.binding.uid) ? ev.seals[0]!.binding.uid : undefined;
  // the tenant and AID columns when every key is of one (tenant, AID): custody writes a batch as
  // one event per (tenant, AID), so each tenant's view (selected by these columns) shows its part
  const s0 = ev.seals?.[0]?.binding;
  const oneTenant = typeof s0?.tenant === 'string' && ev.seals!.every((x) => x.binding.tenant === s0.tenant) ? s0.tenant : undefined;
  const oneAid = typeof s0?.aid === 'string' && /^[0-9A-Fa-f]{6}$/.test(s0.aid) && ev.seals!.every((x) => x.binding.aid === s0.aid) ? s0.aid : undefined;
  const b = ev.binding;
  // built without a leading conditional spread (`...(ok ? { time } : {})`): V8 builds such a
  // literal on its slow path, ~8 us per call measured here — a few % of a key delivery's CPU
  const input: AuditInput = {
    actor: ev.actor || null,
    readerId: ev.recipient ?? null,
    cardUid: b?.uid ?? oneUid ?? null,
    tenant: b?.tenant ?? ev.master?.tenant ?? oneTenant ?? null,
    aid: b?.aid ?? ev.master?.aid ?? oneAid ?? null,
    keyNo: b?.keyNo ?? ev.master?.keyNo ?? null,
    keyVersion: b?.version ?? ev.keyVersion ?? null,
    operation: `custody.${ev.op}`,
    result: ev.outcome,
    correlationId: ev.correlationId || null,
    details,
  };
  if (Number.isFinite(t)) input.time = t;
  return input;
}

const DAYS_BEFORE_MONTH = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/** The value of 4 (or fewer) ASCII digits at s[i..i+n), or -1. */
function digits(s: string, i: number, n: number): number {
  let v = 0;
  for (let j = i; j < i + n; j++) {
    const c = s.charCodeAt(j) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/**
 * Date.parse(time), computed directly for the form custody writes (Date#toISOString:
 * `YYYY-MM-DDTHH:mm:ss.sssZ`, years 1970-9999, every field in range) and by Date.parse for any
 * other text: the same number for every input (a property test compares them), without the
 * engine's general date parser (~0.2 us per entry).
 */
export function parseIsoTime(time: string): number {
  if (typeof time !== 'string' || time.length !== 24 || time.charCodeAt(4) !== 45 || time.charCodeAt(7) !== 45 || time.charCodeAt(10) !== 84 || time.charCodeAt(13) !== 58 || time.charCodeAt(16) !== 58 || time.charCodeAt(19) !== 46 || time.charCodeAt(23) !== 90) {
    return Date.parse(time);
  }
  const y = digits(time, 0, 4);
  const mo = digits(time, 5, 2);
  const d = digits(time, 8, 2);
  const h = digits(time, 11, 2);
  const mi = digits(time, 14, 2);
  const sec = digits(time, 17, 2);
  const ms = digits(time, 20, 3);
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 28 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 || ms < 0) return Date.parse(time);
  // days since 1970-01-01: whole years (leap days of the years before y), months, days
  const leapsBefore = Math.floor((y - 1969) / 4) - Math.floor((y - 1901) / 100) + Math.floor((y - 1601) / 400);
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  const days = (y - 1970) * 365 + leapsBefore + DAYS_BEFORE_MONTH[mo - 1]! + (leap && mo > 2 ? 1 : 0) + d - 1;
  return ((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms;
}

/** One per-card key named by a 'custody.seal_batch' entry (its details.seals). */
export interface SealedBinding {
  tenant: string;
  aid: string;
  uid: string;
  keyNo: number;
  version: number;
}

/** The per-card keys a 'custody.seal_batch' entry released (details as stored: object or JSON text); malformed items are skipped. */
export function sealBatchBindings(details: unknown): SealedBinding[] {
  let d = details;
  if (typeof d === 'string') {
    try {
      d = JSON.parse(d);
    } catch {
      return [];
    }
  }
  const seals = (d as { seals?: unknown } | null)?.seals;
  if (!Array.isArray(seals)) return [];
  return seals.flatMap((x: unknown) => {
    const b = x as Record<string, unknown> | null;
    return b && typeof b.tenant === 'string' && typeof b.aid === 'string' && typeof b.uid === 'string' && Number.isInteger(b.keyNo) && Number.isInteger(b.version)
      ? [{ tenant: b.tenant, aid: b.aid, uid: b.uid, keyNo: b.keyNo as number, version: b.version as number }]
      : [];
  });
}

/**
 * The (tenant, AID) of every key an entry released: each binding of a seal batch, else the entry's
 * own (one key). For counting releases (metrics, the mass-release alert) the same way whether a
 * station job's keys were sealed one by one or in one batch.
 */
export function releasedKeys(e: { operation: string; tenant: string | null; aid: string | null; details?: unknown }): { tenant: string | null; aid: string | null }[] {
  if (e.operation === 'custody.seal_batch') return sealBatchBindings(e.details).map((b) => ({ tenant: b.tenant, aid: b.aid }));
  return [{ tenant: e.tenant, aid: e.aid }];
}

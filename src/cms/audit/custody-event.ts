// Custody's AuditEvent (src/custody/audit.ts) as an audit log entry. Custody events carry
// identifiers only; the key *name* goes to details.keyName (never key bytes).
import type { AuditEvent } from '../../custody/audit.js';
import type { AuditInput, Json } from './entry.js';

export function fromCustodyEvent(ev: AuditEvent): AuditInput {
  const details: Record<string, Json> = { source: ev.source, backend: ev.backend, purpose: ev.purpose };
  if (ev.key !== undefined) details.keyName = ev.key;
  if (ev.keyVersion !== undefined) details.kekVersion = ev.keyVersion;
  if (ev.mode !== undefined) details.mode = ev.mode;
  if (ev.code !== undefined) details.code = ev.code;
  if (ev.batch !== undefined) details.batch = { ...ev.batch, first: { ...ev.batch.first }, last: { ...ev.batch.last } };
  // a batch seal: every binding in the details (a compromised reader's key set reads them);
  // the card column when every key is of one card (a station job)
  if (ev.seals !== undefined) details.seals = ev.seals.map((x) => ({ keyName: x.key, ...(x.keyVersion !== undefined ? { kekVersion: x.keyVersion } : {}), tenant: x.binding.tenant, aid: x.binding.aid, uid: x.binding.uid, keyNo: x.binding.keyNo, version: x.binding.version }));
  if (ev.keys !== undefined) details.keyNames = [...ev.keys];
  const t = Date.parse(ev.time);
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

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
  const t = Date.parse(ev.time);
  const b = ev.binding;
  return {
    ...(Number.isFinite(t) ? { time: t } : {}),
    actor: ev.actor || null,
    readerId: ev.recipient ?? null,
    cardUid: b?.uid ?? null,
    tenant: b?.tenant ?? ev.master?.tenant ?? null,
    aid: b?.aid ?? ev.master?.aid ?? null,
    keyNo: b?.keyNo ?? ev.master?.keyNo ?? null,
    keyVersion: b?.version ?? ev.keyVersion ?? null,
    operation: `custody.${ev.op}`,
    result: ev.outcome,
    correlationId: ev.correlationId || null,
    details,
  };
}

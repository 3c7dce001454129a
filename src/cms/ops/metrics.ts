// The metrics hooks of the CMS: one small interface the services call, with a no-op default, so
// nothing below the composition root depends on prom-client (custody and the audit log emit through
// callbacks; the Prometheus implementation is in ./prometheus.ts). Every hook is cheap (a counter
// increment or a histogram observation) and must never throw into the caller.
import type { AuditEntry } from '../audit/entry.js';

export interface HttpObservation {
  method: string;
  /** The route pattern (`/v1/readers/:id`), never the raw URL (bounded label values). */
  route: string;
  status: number;
  seconds: number;
}

export interface CustodyObservation {
  backend: string;
  op: string;
  result: 'ok' | 'error';
  seconds: number;
}

export interface CmsMetrics {
  httpRequest(o: HttpObservation): void;
  custodyOp(o: CustodyObservation): void;
  /** Entries the audit log committed (key releases and refusals are counted from them). */
  auditCommitted(entries: readonly AuditEntry[]): void;
  /** One audit group commit: entries in the batch, duration in milliseconds. */
  auditBatch(entries: number, ms: number): void;
  alertRaised(rule: string, severity: string): void;
  /** A reader made an authenticated request (readers online/offline). */
  readerSeen(readerId: string, now?: number): void;
}

export const NO_METRICS: CmsMetrics = {
  httpRequest() {},
  custodyOp() {},
  auditCommitted() {},
  auditBatch() {},
  alertRaised() {},
  readerSeen() {},
};

/** Operations that release key material (sealed deliveries — one key, a station job's batch, an offline master —, exports to a station). */
const RELEASE_OPS = new Set(['custody.seal', 'custody.seal_batch', 'custody.seal_master', 'custody.export_for_card']);

/**
 * The key-release outcome an audit entry stands for, or undefined when it is not a release.
 * Custody's 'requested' events are not counted (their outcome follows); refusals before custody
 * (`*.key_delivery` refused/denied) are counted as 'refused'.
 */
export function keyReleaseOf(e: Pick<AuditEntry, 'operation' | 'result'>): 'ok' | 'error' | 'refused' | undefined {
  if (RELEASE_OPS.has(e.operation)) {
    if (e.result === 'ok') return 'ok';
    if (e.result === 'error') return 'error';
    return undefined;
  }
  if (e.operation.endsWith('.key_delivery') && (e.result === 'refused' || e.result === 'denied')) return 'refused';
  return undefined;
}

// The audit contract of custody. Every KeyCustody call produces an AuditEvent and appends it to
// an AuditSink BEFORE anything is released: `append` resolving means the event is durable; when
// it rejects, the operation is refused with ERR_CUSTODY_AUDIT (fail closed). State-changing
// operations append a 'requested' event first (refused if that fails) and an outcome event after.
//
// Events never contain key bytes: only names, versions, bindings (tenant, AID, UID, keyNo,
// version — identifiers, not secrets), the reader id a delivery was sealed to, and error codes.
// The CMS's tamper-evident audit log (src/cms/audit) implements AuditSink.
import type { CallerContext, KeyBinding } from './types.js';

export type CustodyOp =
  | 'create_key'
  | 'import_key'
  | 'rotate_key'
  | 'get_key'
  | 'get_keys'
  | 'list_keys'
  | 'list_versions'
  | 'set_min_versions'
  | 'disable_version'
  | 'destroy_version'
  | 'wrap'
  | 'generate_key'
  | 'generate_batch'
  | 'rewrap'
  | 'rewrap_batch'
  | 'verify_wrapped'
  | 'seal'
  | 'seal_batch'
  | 'export_for_card'
  | 'export_key'
  | 'seal_master'
  | 'vault_init'
  | 'vault_unseal'
  | 'vault_seal';

export type AuditOutcome = 'requested' | 'ok' | 'error';

export interface AuditEvent {
  /** ISO 8601 time the event was produced. */
  time: string;
  source: 'custody';
  backend: string;
  op: CustodyOp;
  outcome: AuditOutcome;
  actor: string;
  purpose: string;
  correlationId: string;
  /** Key name and version involved (KEK or master). */
  key?: string;
  keyVersion?: number;
  binding?: KeyBinding;
  /**
   * For 'seal_master': the (tenant, AID, keyNo) whose AN10922 master was released — the key of
   * every card of it (the audit entry has no card UID), so a compromised reader's blast radius
   * covers all those cards.
   */
  master?: { tenant: string; aid: string; keyNo: number };
  /** For seal: the reader the delivery was sealed to, and the sealing mode. */
  recipient?: string;
  mode?: string;
  /**
   * A batch call writes one event per (tenant, AID) of its keys, each listing only those keys.
   * For 'seal_batch': every key (of the event's part) sealed to `recipient` in the call, in order: its binding (tenant,
   * AID, UID, keyNo, version) and the KEK or master (`key`) with the version used — what one
   * 'seal' event per key would name. A compromised reader's key set reads these
   * (src/cms/compromise). For 'generate_batch': every key generated in the call, in order (its
   * KEK as `key`, the KEK version used, its binding); no recipient — nothing is released, the keys
   * exist only wrapped.
   */
  seals?: { key: string; keyVersion?: number; binding: KeyBinding }[];
  /** For 'get_keys': the key names read. */
  keys?: string[];
  /** Stable error code when outcome is 'error'. */
  code?: string;
  /**
   * For 'rewrap_batch': the blobs rewrapped in the batch (keyVersion is the target version):
   * how many, how many from each source version, the first and last binding in batch order, and
   * `sha256:<hex>` of the concatenated encoded bindings (each followed by a newline), so the set
   * can be checked against the stored blobs.
   */
  batch?: { count: number; fromVersions: Record<string, number>; first: KeyBinding; last: KeyBinding; digest: string };
}

export interface AuditSink {
  /** Durable when it resolves. A rejection refuses the operation. */
  append(event: AuditEvent): Promise<void>;
  /**
   * Optional, all or nothing: every event durable when it resolves (the CMS audit log: one
   * transaction), none of them when it rejects. Custody hands a batch's per-(tenant, AID) events
   * to it as one unit; sinks without it get one append per event (a sink accepting some and
   * refusing others keeps the accepted parts of a refused call).
   */
  appendAll?(events: AuditEvent[]): Promise<void>;
}

/** An in-memory sink for tests and the CLI's local runs; `failing = true` makes it refuse. */
export class MemoryAuditSink implements AuditSink {
  readonly events: AuditEvent[] = [];
  failing = false;

  async append(event: AuditEvent): Promise<void> {
    if (this.failing) throw new Error('audit sink unavailable');
    this.events.push(event);
  }

  clear(): void {
    this.events.length = 0;
  }
}

/** Validates a caller context (all three fields non-empty strings of sane length). */
export function isCallerContext(ctx: unknown): ctx is CallerContext {
  if (typeof ctx !== 'object' || ctx === null) return false;
  const c = ctx as Record<string, unknown>;
  return ['actor', 'purpose', 'correlationId'].every((k) => typeof c[k] === 'string' && (c[k] as string).length > 0 && (c[k] as string).length <= 256);
}

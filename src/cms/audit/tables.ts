// The audit log's tables (Kysely types). Migrations: storage/migrations/0002_audit.ts, 0003_audit_alerts.ts.

/** One audit entry's body: the fields that are hashed (see entry.ts for the canonical form). */
export interface AuditEntryTable {
  /** Position in the log, 0-based, consecutive: the Merkle leaf index. */
  idx: number;
  /** Milliseconds since the epoch (UTC). */
  time: number;
  actor: string | null;
  reader_id: string | null;
  card_uid: string | null;
  tenant: string | null;
  aid: string | null;
  key_no: number | null;
  key_version: number | null;
  operation: string;
  result: string;
  correlation_id: string | null;
  /** JSON text (canonical). */
  details: string;
}

/**
 * Leaf hashes, kept even after an entry body is pruned by retention, so the tree (and every
 * checkpoint and proof) stays computable.
 */
export interface AuditLeafTable {
  idx: number;
  /** SHA-256(0x00 || canonical entry), 32 bytes. */
  leaf_hash: Uint8Array;
}

/** Signed checkpoints (C2SP tlog-checkpoint as a signed note), one per tree size. */
export interface AuditCheckpointTable {
  tree_size: number;
  root_hash: Uint8Array;
  /** The whole signed note text. */
  note: string;
  created_at: number;
}

/** Alerts raised by the rules engine. */
export interface AuditAlertTable {
  id: string;
  time: number;
  rule: string;
  severity: string;
  /** What the alert is about, e.g. "card:04A1..." or "reader:r-12". */
  subject: string;
  message: string;
  /** JSON text. */
  details: string;
  /** Index of the entry that triggered it. */
  entry_idx: number | null;
  /** 0 = not yet delivered to the webhook, 1 = delivered, 2 = gave up. */
  delivery: number;
  delivery_attempts: number;
}

export interface AuditTables {
  audit_entries: AuditEntryTable;
  audit_leaves: AuditLeafTable;
  audit_checkpoints: AuditCheckpointTable;
  audit_alerts: AuditAlertTable;
}

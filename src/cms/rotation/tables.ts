// Tables of key rotation, approvals and KEK rewrap (engineer J). Migration: ./migrations/0050_rotation.ts.
// Times are milliseconds since the epoch. No column ever holds key material: names, numbers, versions.

/** The version lifecycle of one application key (tenant, AID, keyNo): which versions readers accept. */
export interface KeyVersionTable {
  tenant_id: string;
  aid: string;
  key_no: number;
  version: number;
  /** 'pending' (created, not yet in use) | 'current' | 'previous' (accepted during grace) | 'retired'. */
  state: string;
  /** Until when a 'previous' version is still accepted (and a rollback is possible). */
  grace_until: number | null;
  created_at: number;
  updated_at: number;
}

export interface RotationCampaignTable {
  id: string;
  tenant_id: string;
  aid: string;
  key_no: number;
  from_version: number;
  to_version: number;
  /** awaiting_approval | ready | running | paused | completed | rolling_back | rolled_back | cancelled */
  state: string;
  /** JSON: { kind: 'all' } | { kind: 'list', uids } | { kind: 'query', ... } */
  target: string;
  card_count: number;
  batch_size: number;
  /** Cards per second (0 = unlimited). */
  rate: number;
  /** JSON { startHour, endHour } (UTC) or null. */
  window: string | null;
  max_attempts: number;
  grace_ms: number;
  approval_id: string | null;
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface RotationItemTable {
  campaign_id: string;
  uid: string;
  batch_no: number;
  /** pending | done | failed | reverted */
  state: string;
  attempts: number;
  /** The card's key version as last observed and verified (null before any contact). */
  card_version: number | null;
  error: string | null;
  updated_at: number;
}

export interface ApprovalRequestTable {
  id: string;
  kind: string;
  /** JSON: the full request approvers see. */
  payload: string;
  summary: string;
  requested_by: string;
  required: number;
  role: string;
  /** pending | approved | rejected | expired | consumed */
  state: string;
  created_at: number;
  expires_at: number;
  updated_at: number;
}

export interface ApprovalVoteTable {
  request_id: string;
  approver: string;
  decision: string;
  created_at: number;
}

export interface KekRewrapRunTable {
  id: string;
  kek: string;
  target_version: number;
  /** running | done | failed */
  state: string;
  /** Checkpoint: the last (uid, aid, key_no, key_version) handled, JSON array, or null. */
  last_key: string | null;
  rewrapped: number;
  skipped: number;
  failed: number;
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface CompromiseCaseTable {
  id: string;
  /** reader | card | kek */
  kind: string;
  subject: string;
  /** JSON report (key set, campaigns proposed, ...). */
  report: string;
  created_by: string;
  created_at: number;
}

/** A field rotation: a runtime reader upgrading one card of a running campaign (single use). */
export interface FieldRotationOpTable {
  id: string;
  /** SHA-256 (hex) of the operation token given to the reader. */
  token_hash: string;
  campaign_id: string;
  uid: string;
  reader_id: string;
  from_version: number;
  to_version: number;
  /** issued | done | failed */
  state: string;
  card_version: number | null;
  expires_at: number;
  created_at: number;
  updated_at: number;
}

export interface RotationTables {
  key_versions: KeyVersionTable;
  rotation_campaigns: RotationCampaignTable;
  rotation_items: RotationItemTable;
  approval_requests: ApprovalRequestTable;
  approval_votes: ApprovalVoteTable;
  kek_rewrap_runs: KekRewrapRunTable;
  compromise_cases: CompromiseCaseTable;
  rotation_field_ops: FieldRotationOpTable;
}

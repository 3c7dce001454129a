// Consent and authorisation tables (Kysely types). Migration: ./migrations/0060_consent.ts.
// Times are milliseconds since the epoch. No column ever holds key material.

export interface ConsentAuthorisationTable {
  /** Public id (auth_…): named by the job, the receipt and the audit entry it allowed. */
  id: string;
  tenant_id: string;
  aid: string;
  /** 'install' | 'rotate' | 'delete' */
  operation: string;
  /** 'card' (one UID) | 'batch' (a list of UIDs) | 'policy' (every card of a card profile) */
  scope: string;
  /** JSON array of upper-case UIDs (scope card/batch), else null. */
  card_uids: string | null;
  /** Card profile name (scope policy; '*' = every card), else null. */
  card_profile: string | null;
  valid_from: number;
  expires_at: number;
  /** Who granted it: `operator:tok_…` (a tenant admin) or `cardholder:<ref>` (a consent withdrawal). */
  granted_by: string;
  /** The request it answered, if any. */
  request_id: string | null;
  created_at: number;
  revoked_at: number | null;
  revoked_by: string | null;
}

export interface ConsentRequestTable {
  /** Public id (areq_…). */
  id: string;
  tenant_id: string;
  aid: string;
  operation: string;
  scope: string;
  card_uids: string | null;
  card_profile: string | null;
  /** Validity asked for, seconds. */
  ttl_seconds: number;
  reason: string;
  /** 'pending' | 'granted' | 'refused' | 'cancelled' */
  state: string;
  requested_by: string;
  created_at: number;
  decided_by: string | null;
  decided_at: number | null;
  decision_reason: string | null;
  authorisation_id: string | null;
}

export interface CardholderConsentTable {
  /** Public id (cns_…). */
  id: string;
  uid: string;
  aid: string;
  tenant_id: string;
  /** An opaque cardholder reference chosen by the deployment (never the card key, never PII by design). */
  cardholder: string;
  /** 'given' | 'withdrawn' */
  state: string;
  given_at: number;
  recorded_by: string;
  /** Where the agreement is kept (form id, URL…), free text. */
  evidence: string | null;
  withdrawn_at: number | null;
  withdrawn_by: string | null;
}

export interface PendingDeletionTable {
  uid: string;
  aid: string;
  tenant_id: string;
  /** 'consent_withdrawn' */
  reason: string;
  consent_id: string | null;
  /** The delete authorisation the withdrawal created (the deletion job runs under it). */
  authorisation_id: string;
  /** 'pending' | 'done' | 'cancelled' */
  state: string;
  created_at: number;
  done_at: number | null;
}

export interface ConsentTables {
  consent_authorisations: ConsentAuthorisationTable;
  consent_requests: ConsentRequestTable;
  cardholder_consents: CardholderConsentTable;
  pending_deletions: PendingDeletionTable;
}

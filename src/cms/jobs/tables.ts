// Station job tables (Kysely types). Migration: ./migrations/0030_station.ts.
// No column holds key material: wrapped blobs are custody's opaque ciphertext bound to
// (tenant, AID, UID, keyNo, version); plans list key numbers and versions only.

export interface StationJobTable {
  id: string;
  /** 'issue' | 'install' | 'delete' | 'personalise'. */
  kind: string;
  reader_id: string;
  uid: string;
  /** AID (6 hex digits) for install/delete; '000000' for issue and personalise (its AIDs are in the plan). */
  aid: string;
  /** 'created' → 'claimed' → 'completed' | 'failed' | 'unknown' → 'reconciled'. */
  state: string;
  /** The operation token's jti (the receipt must name it). */
  jti: string;
  /** JSON: what the job does (key numbers and versions, PICC settings), no key bytes. */
  plan: string;
  /** JSON of the verified receipt's results, or the reconciliation's findings. */
  outcome: string | null;
  created_at: number;
  expires_at: number;
  updated_at: number;
}

/** Random per-card keys (CMKs and `derivation: random` application keys), wrapped in custody. */
export interface CardKeyBlobTable {
  uid: string;
  /** '000000' for the CMK. */
  aid: string;
  key_no: number;
  key_version: number;
  kek: string;
  blob: string;
  /** 'pending' (job issued, no receipt yet) | 'active' (on the card per a verified receipt). */
  state: string;
  job_id: string;
  created_at: number;
}

export interface JobTables {
  station_jobs: StationJobTable;
  card_key_blobs: CardKeyBlobTable;
}

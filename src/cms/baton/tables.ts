// The reader-baton tables (Kysely types). Migration: ./migrations/0040_baton.ts.
import type { Generated } from 'kysely';

// Times are milliseconds since the epoch. No key material: key numbers and versions only.

/** One entry of a reader's audit baton, as received (verified) by the CMS. */
export interface ReaderBatonTable {
  reader_id: string;
  seq: number;
  time: number;
  card_uid: string;
  aid: string;
  key_no: number;
  key_version: number;
  op: string;
  result: string;
  prev: string;
  hash: string;
  received_at: number;
}

/** Cards readers must refuse (clone suspected, lost, stolen). */
export interface CardDenylistTable {
  uid: string;
  reason: string;
  created_by: string;
  created_at: number;
}

/** One card going on (denied 1) or off (0) the denylist; written by triggers (migration 0081). */
export interface CardDenylistChangesTable {
  version: Generated<number>;
  uid: string;
  denied: number;
  nonce: Generated<string>;
}

export interface BatonTables {
  reader_baton: ReaderBatonTable;
  card_denylist: CardDenylistTable;
  card_denylist_changes: CardDenylistChangesTable;
}

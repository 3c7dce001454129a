// The reader-baton tables (Kysely types). Migration: ./migrations/0040_baton.ts.
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

export interface BatonTables {
  reader_baton: ReaderBatonTable;
  card_denylist: CardDenylistTable;
}

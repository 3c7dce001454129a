// The baton chain hash, CMS side. The same definition as the reader's (src/reader/baton.ts; the
// layer rules keep the two apart, test/reader/baton-chain.test.ts pins both to one vector).
import { createHash } from 'node:crypto';

export const GENESIS = '0'.repeat(64);
const DOMAIN = 'dcms-baton-v1\n';

export interface BatonWireEntry {
  seq: number;
  time: number;
  readerId: string;
  cardUid: string;
  aid: string;
  keyNo: number;
  keyVersion: number;
  op: string;
  result: string;
  prev: string;
  hash: string;
}

export function batonHash(e: Omit<BatonWireEntry, 'hash'>): string {
  const ser = JSON.stringify([e.seq, e.time, e.readerId, e.cardUid, e.aid, e.keyNo, e.keyVersion, e.op, e.result, e.prev]);
  return createHash('sha256').update(DOMAIN).update(ser).digest('hex');
}

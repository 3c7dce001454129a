// The baton chain hash, CMS side. The same definition as the reader's (src/reader/baton.ts; the
// layer rules keep the two apart, test/reader/baton-chain.test.ts pins both to one vector).
import { sha256Hex } from '../../core/crypto/hash.js';

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
  return sha256Hex(DOMAIN + JSON.stringify([e.seq, e.time, e.readerId, e.cardUid, e.aid, e.keyNo, e.keyVersion, e.op, e.result, e.prev]));
}

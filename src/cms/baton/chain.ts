// The baton chain hash, CMS side. The same definition as the reader's (src/reader/baton.ts; the
// layer rules keep the two apart, test/reader/baton-chain.test.ts pins both to one vector).
import * as nodeCrypto from 'node:crypto';

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

/**
 * One-shot SHA-256 (Node >= 20.12 `crypto.hash`): no Hash object built, updated twice and
 * finalised per entry (the CMS hashes every entry of every upload). Older Node: the streaming
 * form. Same bytes hashed either way.
 */
const sha256Hex: (data: string) => string =
  typeof (nodeCrypto as { hash?: unknown }).hash === 'function'
    ? (data) => (nodeCrypto as unknown as { hash: (alg: string, data: string, enc: 'hex') => string }).hash('sha256', data, 'hex')
    : (data) => nodeCrypto.createHash('sha256').update(data).digest('hex');

export function batonHash(e: Omit<BatonWireEntry, 'hash'>): string {
  return sha256Hex(DOMAIN + JSON.stringify([e.seq, e.time, e.readerId, e.cardUid, e.aid, e.keyNo, e.keyVersion, e.op, e.result, e.prev]));
}

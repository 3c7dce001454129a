// Test fixture for the reader agent: virtual cards carrying the campus layout's runtime
// applications (access A1C001, purse CAFE01, library 11B001) with random per-card AES keys, and a
// delivery source that seals those keys to the reader with custody's real Sealer (the same JWE the
// CMS delivers), reached only after a real mTLS round trip to the CMS (so a stopped CMS is really
// unreachable and a revoked reader really refused).
import { randomBytes } from 'node:crypto';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { DesfireClient } from '../../src/core/client/client.js';
import { toHex } from '../../src/core/crypto/bytes.js';
import { Sealer } from '../../src/custody/seal.js';
import type { KeyDelivery, OnlineKeySource } from '../../src/reader/agent.js';
import type { CmsClient } from '../../src/reader/cms-client.js';
import { ReaderError } from '../../src/reader/errors.js';
import { encodeCredential } from '../../src/reader/transactions.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import type { JWK } from 'jose';

export interface TestCard {
  card: VirtualCard;
  transport: InProcessTransport;
  uid: string;
  /** keys[aid][keyNo] */
  keys: Record<string, Uint8Array[]>;
}

const ZERO_AES = new Uint8Array(16);
const NEVER = 0xf;
const FREE = 0xe;

async function app(c: DesfireClient, aid: number, keyCount: number, keys: Uint8Array[]): Promise<void> {
  await c.selectApplication(0);
  await c.authenticate(0, new Uint8Array(8), { method: 'd40', keyType: 'des' });
  await c.createApplication({ aid, settings: { masterKeyChangeable: true, freeDirectoryList: false, freeCreateDelete: false, configurationChangeable: true, changeKeyAccess: 0 }, keyCount, keyType: 'aes', isoFileIds: false });
  await c.selectApplication(aid);
  await c.authenticate(0, ZERO_AES, { method: 'ev2' });
  for (let k = 1; k < keyCount; k++) await c.changeKey(k, keys[k]!, { keyType: 'aes', keyVersion: 1, oldKey: ZERO_AES, oldKeyType: 'aes' });
}

/** A card with the three runtime applications, a valid credential (zones 0..3) and `balance` cents. */
export async function makeCard(opts: { balance?: number; credential?: Partial<Parameters<typeof encodeCredential>[0]> } = {}): Promise<TestCard> {
  const card = VirtualCard.create();
  const transport = new InProcessTransport(card);
  const c = new DesfireClient(transport);
  const gen = () => [ZERO_AES, new Uint8Array(randomBytes(16)), new Uint8Array(randomBytes(16))];
  const keys: Record<string, Uint8Array[]> = { A1C001: gen(), CAFE01: gen(), '11B001': gen() };
  // access: credential, read key 1, write key 2, comm full
  await app(c, 0xa1c001, 3, keys.A1C001!);
  await c.createStdDataFile({ fileNo: 1, comm: 'full', access: { read: 1, write: 2, readWrite: NEVER, change: 0 }, fileSize: 32 });
  await c.authenticate(2, keys.A1C001![2]!, { method: 'ev2' });
  const now = Math.floor(Date.now() / 1000);
  await c.writeData(1, 0, encodeCredential({ version: 1, blocked: false, zones: 0x000f, validFrom: now - 3600, validUntil: now + 86400, holder: new TextEncoder().encode('student-00000042'), ...opts.credential }), { comm: 'full' });
  // purse: read(debit) key 1, readWrite(credit) key 2
  await app(c, 0xcafe01, 3, keys.CAFE01!);
  await c.createValueFile({ fileNo: 1, comm: 'full', access: { read: 1, write: NEVER, readWrite: 2, change: 0 }, lowerLimit: 0, upperLimit: 50000, value: 0, limitedCreditEnabled: false, freeGetValue: false });
  if (opts.balance) {
    await c.authenticate(2, keys.CAFE01![2]!, { method: 'ev2' });
    await c.credit(1, opts.balance, { comm: 'full' });
    await c.commitTransaction();
  }
  // library: cyclic loan log (read key 1, write key 2, comm mac), 16-byte records
  await app(c, 0x11b001, 3, keys['11B001']!);
  await c.createCyclicRecordFile({ fileNo: 1, comm: 'mac', access: { read: 1, write: 2, readWrite: NEVER, change: 0 }, recordSize: 16, maxRecords: 11 });
  void FREE;
  card.reset();
  return { card, transport, uid: toHex(card.uid), keys };
}

const TENANT: Record<string, string> = { A1C001: 'access', CAFE01: 'cafeteria', '11B001': 'library' };

export const CAMPUS_ROLES = [
  { tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver', 'offline'] },
  { tenantId: 'cafeteria', aid: 'CAFE01', keyNo: 1, operations: ['deliver', 'offline'] },
  { tenantId: 'library', aid: '11B001', keyNo: 1, operations: ['deliver', 'offline'] },
  { tenantId: 'library', aid: '11B001', keyNo: 2, operations: ['deliver', 'offline'] },
];

/**
 * Delivery for tests: one real mTLS call to the CMS (GET /v1/readers/self/sync) per key — a
 * stopped CMS is unreachable, a revoked reader refused — then the key sealed with custody's Sealer.
 */
export class SealingKeySource implements OnlineKeySource {
  readonly sealer = new Sealer(3600);
  calls = 0;
  constructor(
    private readonly readerId: string,
    private readonly publicKey: JWK,
    private readonly cards: () => TestCard[],
    private readonly cms?: CmsClient,
  ) {}
  async fetch(req: { tenant: string; aid: string; uid: string; keyNo: number }): Promise<KeyDelivery> {
    this.calls++;
    if (this.cms) await this.cms.call('GET', '/v1/readers/self/sync');
    const c = this.cards().find((x) => x.uid === req.uid);
    if (!c || TENANT[req.aid] !== req.tenant) throw new ReaderError('ERR_READER_CMS', 'unknown card');
    const binding = { tenant: req.tenant, aid: req.aid, uid: req.uid, keyNo: req.keyNo, version: 1 };
    const sealed = await this.sealer.seal(c.keys[req.aid]![req.keyNo]!, binding, { readerId: this.readerId, publicKey: this.publicKey }, { ttlSeconds: 60 });
    return { binding, keyType: 'aes', sealed };
  }
}

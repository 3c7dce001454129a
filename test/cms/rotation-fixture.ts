// Test fixture for rotation: a migrated SQLite CMS database, an embedded custody with a
// diversification master per rotated key, N in-process virtual cards carrying application
// A1B2C3 whose key 0 is the card's diversified key of version 1, and the matching CMS rows.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { VirtualCard, type CardImage } from '../../src/card/index.js';
import { DesfireClient } from '../../src/core/client/index.js';
import { fromHex, toHex } from '../../src/core/crypto/bytes.js';
import type { Transport } from '../../src/core/transport.js';
import { MemoryAuditSink, type AuditSink } from '../../src/custody/audit.js';
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { MemoryVaultStore } from '../../src/custody/store.js';
import type { CallerContext, KeyCustody } from '../../src/custody/types.js';
import { ApprovalService } from '../../src/cms/approvals/service.js';
import { DEFAULT_APPROVAL_POLICY, type ApprovalPolicy } from '../../src/cms/approvals/policy.js';
import type { AuditInput } from '../../src/cms/audit/entry.js';
import { CampaignService } from '../../src/cms/rotation/campaigns.js';
import { openDatabase, type DatabaseHandle } from '../../src/cms/storage/index.js';
import { TransportError } from '../../src/transport/errors.js';
import { rotateOneCard, type CardRotationJob } from '../../src/reader/station/rotate.js';
import type { CardExecutor } from '../../src/cms/rotation/runner.js';

export const TENANT = 'acme';
export const AID = 'A1B2C3';
export const MASTER = 'acme.A1B2C3.0';
export const CTX: CallerContext = { actor: 'test', purpose: 'rotation test', correlationId: 'c-1' };

export class MemoryRecorder {
  readonly entries: AuditInput[] = [];
  async record(e: AuditInput): Promise<void> {
    this.entries.push(e);
  }
}

export type TearMode = 'none' | 'before-once' | 'after-once' | 'before-always';

/** A transport to a virtual card that can tear the card out of the field at ChangeKey (INS C4). */
export class TearingTransport implements Transport {
  changeKeysProcessed = 0;
  private torn = 0;
  constructor(
    readonly card: VirtualCard,
    public mode: TearMode = 'none',
  ) {}
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (apdu[1] === 0xc4) {
      const tear = this.mode === 'before-always' || ((this.mode === 'before-once' || this.mode === 'after-once') && this.torn === 0);
      if (tear) {
        this.torn++;
        if (this.mode === 'after-once') {
          this.card.process(apdu);
          this.changeKeysProcessed++;
        }
        this.card.tear();
        throw new TransportError('ERR_PCSC_NO_CARD', 'card removed from the field');
      }
      this.changeKeysProcessed++;
    }
    return this.card.process(apdu);
  }
}

export interface Fixture {
  dir: string;
  handle: DatabaseHandle;
  custody: KeyCustody;
  audit: MemoryRecorder;
  approvals: ApprovalService;
  campaigns: CampaignService;
  cards: Map<string, TearingTransport>;
  executor: CardExecutor;
  /** The key version of key 0 of AID on the card itself (from its image). */
  cardVersion(uid: string): number;
  close(): Promise<void>;
}

const aidLsb = (aid: string): Uint8Array => fromHex(aid).reverse();
export const divInput = (uid: string): Uint8Array => Uint8Array.from([...fromHex(uid), ...aidLsb(AID)]);

export async function makeFixture(n: number, opts: { policy?: Partial<ApprovalPolicy>; now?: () => number; file?: string; open?: () => Promise<DatabaseHandle>; sink?: (h: DatabaseHandle) => Promise<AuditSink> } = {}): Promise<Fixture> {
  const dir = mkdtempSync(path.join(tmpdir(), 'desfire-rotation-'));
  const handle = opts.open ? await opts.open() : await openDatabase({ kind: 'sqlite', file: opts.file ?? path.join(dir, 'cms.sqlite') });
  const vault = await EmbeddedVault.open(new MemoryVaultStore());
  await vault.init({ passphrase: 'correct horse battery staple', scrypt: { N: 2 ** 10, r: 8, p: 1 } });
  const custody = vault.custody(opts.sink ? await opts.sink(handle) : new MemoryAuditSink());
  await custody.createKey(CTX, MASTER, { purpose: 'diversify', alg: 'aes128' });
  const audit = new MemoryRecorder();
  const approvals = new ApprovalService({ db: handle.db, audit, policy: { ...DEFAULT_APPROVAL_POLICY, ...opts.policy }, ...(opts.now ? { now: opts.now } : {}) });
  const campaigns = new CampaignService({
    db: handle.db,
    audit,
    approvals,
    newVersion: async () => (await custody.rotateKey(CTX, MASTER)).latestVersion,
    ...(opts.now ? { now: opts.now } : {}),
  });
  const db = handle.db;
  const now = Date.now();
  await db.insertInto('tenants').values({ id: TENANT, name: 'Acme', created_at: now }).execute();
  await db.insertInto('applications').values({ aid: AID, tenant_id: TENANT, name: 'doors', key_type: 'aes', key_count: 1, layout_name: 'test', definition: '{}', created_at: now }).execute();
  const template = VirtualCard.create({ uid: fromHex('04000000000000') }).toImage();
  const cards = new Map<string, TearingTransport>();
  const rows: { uid: string }[] = [];
  for (let i = 0; i < n; i++) {
    const uid = '04' + (0x100000 + i).toString(16).toUpperCase().padStart(6, '0') + 'A0B0C0';
    const key = await custody.exportForCard(CTX, { kind: 'diversified', master: MASTER, masterVersion: 1, input: divInput(uid), binding: { tenant: TENANT, aid: AID, uid, keyNo: 0, version: 1 } });
    const img: CardImage = {
      ...template,
      uid,
      apps: [{ aid: AID, keySettings: 0x0f, keyType: 'aes', keys: [{ key: toHex(key), version: 1 }], isoFileIds: false, files: [] }],
    };
    key.fill(0);
    cards.set(uid, new TearingTransport(VirtualCard.fromImage(img)));
    rows.push({ uid });
  }
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500);
    await db.insertInto('cards').values(chunk.map(({ uid }) => ({ uid, state: 'active', random_uid: 0, picc_key_version: 1, created_at: now, updated_at: now }))).execute();
    await db.insertInto('card_applications').values(chunk.map(({ uid }) => ({ uid, aid: AID, installed_at: now }))).execute();
    await db.insertInto('card_keys').values(chunk.map(({ uid }) => ({ uid, aid: AID, key_no: 0, key_version: 1, updated_at: now }))).execute();
  }
  const executor: CardExecutor = {
    rotate: (req) =>
      rotateOneCard(
        {
          present: async (uid) => cards.get(uid),
          key: (job: CardRotationJob, version: number) =>
            custody.exportForCard(CTX, { kind: 'diversified', master: MASTER, masterVersion: version, input: divInput(job.uid), binding: { tenant: job.tenantId, aid: job.aid, uid: job.uid, keyNo: job.keyNo, version } }),
          client: (t) => new DesfireClient(t),
        },
        req,
      ),
  };
  return {
    dir,
    handle,
    custody,
    audit,
    approvals,
    campaigns,
    cards,
    executor,
    cardVersion: (uid) => cards.get(uid)!.card.toImage().apps[0]!.keys[0]!.version,
    async close() {
      await custody.close();
      await handle.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

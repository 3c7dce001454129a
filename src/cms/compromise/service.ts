// Compromise workflows. Each one records a case (compromise_cases) and audit entries.
//
// - Reader compromised: the reader is revoked (its certificate with it, in one transaction), its
//   unclaimed station jobs are failed (their single-use operation tokens can no longer be
//   claimed), and the exact set of (tenant, AID, keyNo, version) it ever received is computed
//   from the audit log: every successful custody.seal whose recipient is the reader (with the
//   card UIDs for per-card deliveries), every binding of its successful custody.seal_batch
//   entries (station jobs), and its custody.seal_master entries (every card). For each affected key a rotation campaign is proposed,
//   from the key's current version, over exactly the cards whose keys the reader received, and
//   it always needs approval.
// - Card compromised (clone suspected): the UID goes on the denylist readers sync on every
//   contact, and an active card is suspended.
// - KEK compromised: rotate the KEK (approved request), rewrap every blob, and propose rotation
//   campaigns (approval needed) for every card key stored under it.
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { CallerContext } from '../../custody/types.js';
import { sealBatchBindings } from '../audit/custody-event.js';
import type { Json } from '../audit/entry.js';
import type { KekService } from '../kek/rewrap.js';
import type { AuditRecorder } from '../rotation/audit.js';
import type { CampaignService } from '../rotation/campaigns.js';
import { RotationError } from '../rotation/errors.js';
import { currentVersion } from '../rotation/versions.js';
import type { Database } from '../storage/index.js';

type Db = Kysely<Database>;

const READER_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const UID_RE = /^([0-9A-F]{2}){4,10}$/;

/** One key version a reader received: the cards it got it for (uids), or every card (a master). */
export interface ReceivedKey {
  tenant: string;
  aid: string;
  keyNo: number;
  version: number;
  /** Deliveries (successful seals) counted. */
  deliveries: number;
  /** true when a delivery was not bound to a card (a diversification master: every card). */
  allCards: boolean;
  uids: string[];
}

export interface ProposedCampaign {
  tenant: string;
  aid: string;
  keyNo: number;
  campaignId?: string;
  approvalId?: string | null;
  cards?: number;
  skipped?: string;
}

export interface ReaderCompromiseReport {
  caseId: string;
  readerId: string;
  revoked: boolean;
  jobsBlocked: number;
  keys: ReceivedKey[];
  campaigns: ProposedCampaign[];
}

export interface CompromiseServiceOptions {
  db: Db;
  audit: AuditRecorder;
  campaigns: CampaignService;
  kek?: KekService;
  now?: () => number;
}

/**
 * The audit operations that mean "key material was released to this reader": a per-card sealed
 * key, or an AN10922 master (no card UID: every card of that key is exposed).
 */
export const RELEASE_OPERATIONS = ['custody.seal', 'custody.seal_master'] as const;
/** A batch of per-card keys sealed to one reader (a station job): every binding in `details.seals`. */
export const BATCH_RELEASE_OPERATION = 'custody.seal_batch';

export class CompromiseService {
  private readonly now: () => number;

  constructor(private readonly o: CompromiseServiceOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Exactly what the audit log says the reader received (successful seals to it, single or in a batch). */
  async readerKeySet(readerId: string): Promise<ReceivedKey[]> {
    if (!READER_RE.test(String(readerId))) throw new RotationError('ERR_COMPROMISE_BAD_INPUT', 'reader id is malformed');
    const single = await this.o.db
      .selectFrom('audit_entries')
      .select(['tenant', 'aid', 'key_no', 'key_version', 'card_uid', (eb) => eb.fn.countAll<number>().as('n')])
      .where('reader_id', '=', readerId)
      .where('operation', 'in', [...RELEASE_OPERATIONS])
      .where('result', '=', 'ok')
      .groupBy(['tenant', 'aid', 'key_no', 'key_version', 'card_uid'])
      .execute();
    // batch seals (station jobs): one entry per batch, every binding in its details
    const batches = await this.o.db.selectFrom('audit_entries').select('details').where('reader_id', '=', readerId).where('operation', '=', BATCH_RELEASE_OPERATION).where('result', '=', 'ok').execute();
    const rows: { tenant: string | null; aid: string | null; key_no: number | null; key_version: number | null; card_uid: string | null; n: number | string | bigint }[] = [...single];
    for (const b of batches) for (const x of sealBatchBindings(b.details)) rows.push({ tenant: x.tenant, aid: x.aid, key_no: x.keyNo, key_version: x.version, card_uid: x.uid, n: 1 });
    const keys = new Map<string, ReceivedKey>();
    for (const r of rows) {
      if (r.tenant === null || r.aid === null || r.key_no === null || r.key_version === null) continue;
      const k = `${r.tenant}|${r.aid}|${r.key_no}|${r.key_version}`;
      let e = keys.get(k);
      if (!e) keys.set(k, (e = { tenant: r.tenant, aid: r.aid, keyNo: Number(r.key_no), version: Number(r.key_version), deliveries: 0, allCards: false, uids: [] }));
      e.deliveries += Number(r.n);
      if (r.card_uid && UID_RE.test(r.card_uid)) e.uids.push(r.card_uid);
      else e.allCards = true;
    }
    const out = [...keys.values()];
    for (const e of out) e.uids = [...new Set(e.uids)].sort();
    return out.sort((a, b) => a.tenant.localeCompare(b.tenant) || a.aid.localeCompare(b.aid) || a.keyNo - b.keyNo || a.version - b.version);
  }

  private async record(kind: 'reader' | 'card' | 'kek', subject: string, report: Record<string, Json>, actor: string): Promise<string> {
    const id = randomUUID();
    await this.o.db.insertInto('compromise_cases').values({ id, kind, subject, report: JSON.stringify(report), created_by: actor, created_at: this.now() }).execute();
    return id;
  }

  /** Propose one approval-gated campaign per affected key, over the cards concerned. */
  private async propose(affected: { tenant: string; aid: string; keyNo: number; allCards: boolean; uids: string[] }[], actor: string, reason: string): Promise<ProposedCampaign[]> {
    const out: ProposedCampaign[] = [];
    for (const a of affected) {
      const ref = { tenant: a.tenant, aid: a.aid, keyNo: a.keyNo };
      try {
        const from = await currentVersion(this.o.db, { tenantId: a.tenant, aid: a.aid, keyNo: a.keyNo });
        const c = await this.o.campaigns.create(
          {
            tenantId: a.tenant,
            aid: a.aid,
            keyNo: a.keyNo,
            ...(from !== undefined ? { fromVersion: from } : { fromVersion: await this.mostCommonVersion(a.aid, a.keyNo) }),
            target: a.allCards ? { kind: 'all' } : { kind: 'list', uids: a.uids },
            requireApproval: true,
            reason,
          },
          actor,
        );
        out.push({ ...ref, campaignId: c.id, approvalId: c.approvalId, cards: c.cardCount });
      } catch (e) {
        out.push({ ...ref, skipped: (e as { code?: string }).code ?? 'ERR' });
      }
    }
    return out;
  }

  private async mostCommonVersion(aid: string, keyNo: number): Promise<number> {
    const r = await this.o.db
      .selectFrom('card_keys')
      .select(['key_version', (eb) => eb.fn.countAll<number>().as('n')])
      .where('aid', '=', aid)
      .where('key_no', '=', keyNo)
      .groupBy('key_version')
      .orderBy(sql`count(*)`, 'desc')
      .limit(1)
      .executeTakeFirst();
    if (!r) throw new RotationError('ERR_COMPROMISE_BAD_INPUT', `no card carries key ${keyNo} of ${aid}`);
    return Number(r.key_version);
  }

  async readerCompromised(readerId: string, actor: string, opts: { propose?: boolean } = {}): Promise<ReaderCompromiseReport> {
    if (!READER_RE.test(String(readerId))) throw new RotationError('ERR_COMPROMISE_BAD_INPUT', 'reader id is malformed');
    const db = this.o.db;
    const now = this.now();
    const reader = await db.selectFrom('readers').select(['state', 'cert_serial']).where('id', '=', readerId).executeTakeFirst();
    if (!reader) throw new RotationError('ERR_COMPROMISE_BAD_INPUT', `reader ${readerId} not found`);
    let revoked = false;
    let jobsBlocked = 0;
    await db.transaction().execute(async (tx) => {
      if (reader.state !== 'revoked') {
        await tx.updateTable('readers').set({ state: 'revoked', updated_at: now }).where('id', '=', readerId).execute();
        revoked = true;
      }
      if (reader.cert_serial) {
        const serial = reader.cert_serial.toLowerCase().replace(/^0+(?=.)/, '');
        await tx.insertInto('revoked_certificates').values({ serial, reason: 'keyCompromise', revoked_at: now }).onConflict((oc) => oc.column('serial').doNothing()).execute();
      }
      const u = await tx
        .updateTable('station_jobs')
        .set({ state: 'failed', outcome: JSON.stringify({ source: 'compromise' }), expires_at: now, updated_at: now })
        .where('reader_id', '=', readerId)
        .where('state', '=', 'created')
        .executeTakeFirst();
      jobsBlocked = Number(u.numUpdatedRows ?? 0n);
    });
    const keys = await this.readerKeySet(readerId);
    const affected = new Map<string, { tenant: string; aid: string; keyNo: number; allCards: boolean; uids: Set<string> }>();
    for (const k of keys) {
      const id = `${k.tenant}|${k.aid}|${k.keyNo}`;
      let a = affected.get(id);
      if (!a) affected.set(id, (a = { tenant: k.tenant, aid: k.aid, keyNo: k.keyNo, allCards: false, uids: new Set() }));
      a.allCards ||= k.allCards;
      for (const u of k.uids) a.uids.add(u);
    }
    const campaigns =
      opts.propose === false ? [] : await this.propose([...affected.values()].map((a) => ({ ...a, uids: [...a.uids] })), actor, `reader ${readerId} compromised`);
    const summary = { readerId, revoked, jobsBlocked, keys: keys.map((k) => ({ tenant: k.tenant, aid: k.aid, keyNo: k.keyNo, version: k.version, deliveries: k.deliveries, cards: k.allCards ? 'all' : k.uids.length })), campaigns: campaigns as unknown as Json };
    const caseId = await this.record('reader', readerId, summary as unknown as Record<string, Json>, actor);
    await this.o.audit.record({ actor, readerId, operation: 'compromise.reader', result: 'ok', correlationId: caseId, details: { keys: keys.length, campaigns: campaigns.filter((c) => c.campaignId).length, jobsBlocked } });
    return { caseId, readerId, revoked, jobsBlocked, keys, campaigns };
  }

  async cardCompromised(uid: string, actor: string, reason = 'clone suspected'): Promise<{ caseId: string; denylisted: boolean; suspended: boolean }> {
    const u = String(uid).toUpperCase();
    if (!UID_RE.test(u)) throw new RotationError('ERR_COMPROMISE_BAD_INPUT', 'uid must be 4..10 bytes of hex');
    const now = this.now();
    let suspended = false;
    await this.o.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('card_denylist')
        .values({ uid: u, reason: String(reason).slice(0, 200), created_by: actor, created_at: now })
        .onConflict((oc) => oc.column('uid').doUpdateSet({ reason: String(reason).slice(0, 200), created_by: actor }))
        .execute();
      const r = await tx.updateTable('cards').set({ state: 'suspended', updated_at: now }).where('uid', '=', u).where('state', '=', 'active').executeTakeFirst();
      suspended = Number(r.numUpdatedRows ?? 0n) > 0;
    });
    const caseId = await this.record('card', u, { uid: u, reason: String(reason).slice(0, 200), suspended }, actor);
    await this.o.audit.record({ actor, cardUid: u, operation: 'compromise.card', result: 'ok', correlationId: caseId, details: { suspended } });
    return { caseId, denylisted: true, suspended };
  }

  /** Rotate a compromised KEK (approval needed), rewrap all its blobs, propose campaigns for the keys under it. */
  async kekCompromised(ctx: CallerContext, kek: string, approvalId: string, opts: { onProgress?: (p: { rewrapped: number }) => void } = {}) {
    if (!this.o.kek) throw new RotationError('ERR_COMPROMISE_BAD_INPUT', 'KEK workflows need the KEK service');
    const { version, run } = await this.o.kek.rotate(ctx, kek, approvalId);
    const done = await this.o.kek.runRewrap(ctx, run.id, { ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
    const census = await this.o.kek.census(kek);
    const rows = await this.o.db
      .selectFrom('card_key_blobs as b')
      .leftJoin('applications as a', 'a.aid', 'b.aid')
      .select(['a.tenant_id', 'b.aid', 'b.key_no'])
      .where('b.kek', '=', kek)
      .where('b.aid', '!=', '000000')
      .distinct()
      .execute();
    const affected = rows.filter((r) => r.tenant_id).map((r) => ({ tenant: r.tenant_id!, aid: r.aid, keyNo: Number(r.key_no), allCards: true, uids: [] as string[] }));
    const campaigns = await this.propose(affected, ctx.actor, `KEK ${kek} compromised`);
    const caseId = await this.record('kek', kek, { kek, version, run: done.id, rewrapped: done.rewrapped, failed: done.failed, census: census as unknown as Json, campaigns: campaigns as unknown as Json }, ctx.actor);
    await this.o.audit.record({ actor: ctx.actor, operation: 'compromise.kek', result: 'ok', correlationId: caseId, details: { keyName: kek, kekVersion: version, rewrapped: done.rewrapped, failed: done.failed } });
    return { caseId, version, run: done, census, campaigns };
  }
}

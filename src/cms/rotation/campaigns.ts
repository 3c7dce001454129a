// Rotation campaigns: plan (targets -> items in batches, in SQL: planning a million cards is one
// INSERT ... SELECT), approvals over the card threshold, start / pause / resume, rollback within
// the grace period, completion that retires the old version, and progress per batch.
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { ApprovalService } from '../approvals/service.js';
import type { Database } from '../storage/index.js';
import type { AuditRecorder } from './audit.js';
import { RotationError } from './errors.js';
import { currentVersion, setVersionState, type KeyRef } from './versions.js';

type Db = Kysely<Database>;

export type CampaignState = 'awaiting_approval' | 'ready' | 'running' | 'paused' | 'completed' | 'rolling_back' | 'rolled_back' | 'cancelled';

export type Target =
  | { kind: 'all' }
  | { kind: 'list'; uids: string[] }
  /** Cards in a lifecycle state and/or with a UID prefix (hex). */
  | { kind: 'query'; cardState?: string; uidPrefix?: string };

export interface TimeWindow {
  /** UTC hours [startHour, endHour); may wrap midnight (22 -> 6). */
  startHour: number;
  endHour: number;
}

export interface CampaignSpec {
  tenantId: string;
  aid: string;
  keyNo: number;
  /** Version cards are on now; default: the key's current managed version. */
  fromVersion?: number;
  /** The new version (it must exist in custody); default: opts.newVersion(). */
  toVersion?: number;
  target: Target;
  batchSize?: number;
  /** Cards per second, 0 = unlimited. */
  rate?: number;
  window?: TimeWindow | null;
  maxAttempts?: number;
  /** How long the old version stays accepted (and a rollback possible) after the start. */
  graceMs?: number;
  /** Force an approval even under the threshold (compromise proposals). */
  requireApproval?: boolean;
  reason?: string;
}

export interface Campaign {
  id: string;
  tenantId: string;
  aid: string;
  keyNo: number;
  fromVersion: number;
  toVersion: number;
  state: CampaignState;
  target: Target;
  cardCount: number;
  batchSize: number;
  rate: number;
  window: TimeWindow | null;
  maxAttempts: number;
  graceMs: number;
  approvalId: string | null;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

export interface BatchProgress {
  batch: number;
  done: number;
  pending: number;
  failed: number;
  reverted: number;
  cancelled: number;
}

export interface Progress {
  campaign: Campaign;
  totals: Omit<BatchProgress, 'batch'>;
  batches: BatchProgress[];
  /** Failed cards with their verified version (null: never reached). */
  failures: { uid: string; cardVersion: number | null; error: string | null }[];
}

export interface CampaignServiceOptions {
  db: Db;
  audit: AuditRecorder;
  approvals: ApprovalService;
  /** Create the next version of a key in custody (e.g. rotate its diversification master); returns it. */
  newVersion?: (k: KeyRef) => Promise<number>;
  /**
   * Disable a retired version in custody, so it can no longer be derived or unwrapped (readers
   * then cannot get it): called after the state change that retires it has committed (cancel: the
   * new version; completion: the old one; end of a rollback: the new one). Must be idempotent (a
   * version already disabled is done). If it fails, the operation answers ERR_ROTATION_RETIRE and
   * calling it again on the campaign (now in its final state) retries the custody step.
   */
  retireVersion?: (k: KeyRef, version: number, who: { actor: string; correlationId: string }) => Promise<void>;
  now?: () => number;
  /** Tenant consent (src/cms/consent ConsentService.requireAuthorisationForCards): every target card needs the tenant's rotate authorisation, else the campaign is cancelled and the refusal thrown. */
  authorise?: (q: { tenant: string; aid: string; operation: 'rotate'; at: number; cards: { uid: string }[] }, who: { actor: string; correlationId?: string }) => Promise<Map<string, string>>;
}

const UID_RE = /^([0-9A-F]{2}){4,10}$/;
const AID_RE = /^[0-9A-F]{6}$/;
const TENANT_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const DAY = 24 * 3600 * 1000;
const int = (name: string, v: unknown, min: number, max: number): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new RotationError('ERR_ROTATION_BAD_INPUT', `${name} must be an integer in ${min}..${max}`);
  return v;
};

function checkTarget(t: unknown): Target {
  const x = t as Target;
  if (!x || typeof x !== 'object') throw new RotationError('ERR_ROTATION_BAD_INPUT', 'target must be {kind: all|list|query}');
  if (x.kind === 'all') return { kind: 'all' };
  if (x.kind === 'list') {
    if (!Array.isArray(x.uids) || x.uids.length === 0 || x.uids.length > 1_000_000) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'target.uids must be a non-empty list');
    const uids = [...new Set(x.uids.map((u) => String(u).toUpperCase()))];
    for (const u of uids) if (!UID_RE.test(u)) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'target.uids holds a malformed UID');
    return { kind: 'list', uids };
  }
  if (x.kind === 'query') {
    const q: Target = { kind: 'query' };
    if (x.cardState !== undefined) {
      if (typeof x.cardState !== 'string' || !/^[a-z]{1,20}$/.test(x.cardState)) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'target.cardState is malformed');
      q.cardState = x.cardState;
    }
    if (x.uidPrefix !== undefined) {
      const p = String(x.uidPrefix).toUpperCase();
      if (!/^[0-9A-F]{1,20}$/.test(p)) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'target.uidPrefix must be hex');
      q.uidPrefix = p;
    }
    return q;
  }
  throw new RotationError('ERR_ROTATION_BAD_INPUT', 'target.kind must be all, list or query');
}

function checkWindow(w: unknown): TimeWindow | null {
  if (w === undefined || w === null) return null;
  const x = w as TimeWindow;
  int('window.startHour', x.startHour, 0, 23);
  int('window.endHour', x.endHour, 0, 24);
  if (x.startHour === x.endHour) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'window must not be empty');
  return { startHour: x.startHour, endHour: x.endHour };
}

export function inWindow(w: TimeWindow | null, now: number): boolean {
  if (!w) return true;
  const h = new Date(now).getUTCHours();
  return w.startHour < w.endHour ? h >= w.startHour && h < w.endHour : h >= w.startHour || h < w.endHour;
}

type Row = Database['rotation_campaigns'];
function toCampaign(r: Row): Campaign {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    aid: r.aid,
    keyNo: Number(r.key_no),
    fromVersion: Number(r.from_version),
    toVersion: Number(r.to_version),
    state: r.state as CampaignState,
    target: JSON.parse(r.target) as Target,
    cardCount: Number(r.card_count),
    batchSize: Number(r.batch_size),
    rate: Number(r.rate),
    window: r.window ? (JSON.parse(r.window) as TimeWindow) : null,
    maxAttempts: Number(r.max_attempts),
    graceMs: Number(r.grace_ms),
    approvalId: r.approval_id,
    createdBy: r.created_by,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

const OPEN: CampaignState[] = ['awaiting_approval', 'ready', 'running', 'paused', 'rolling_back'];

export class CampaignService {
  private readonly now: () => number;

  constructor(readonly o: CampaignServiceOptions) {
    this.now = o.now ?? Date.now;
  }

  get db(): Db {
    return this.o.db;
  }

  async get(id: string): Promise<Campaign | undefined> {
    if (typeof id !== 'string' || id.length > 64) return undefined;
    const r = await this.o.db.selectFrom('rotation_campaigns').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? toCampaign(r) : undefined;
  }

  async require(id: string): Promise<Campaign> {
    const c = await this.get(id);
    if (!c) throw new RotationError('ERR_ROTATION_NOT_FOUND', `campaign ${String(id).slice(0, 64)} not found`);
    return c;
  }

  async list(): Promise<Campaign[]> {
    return (await this.o.db.selectFrom('rotation_campaigns').selectAll().orderBy('created_at', 'desc').limit(500).execute()).map(toCampaign);
  }

  /**
   * Plan a campaign: validate, pick versions, insert one item per target card (in SQL), count, and
   * ask for approval when the count is over the threshold. Nothing is written when input is bad.
   */
  async create(spec: CampaignSpec, actor: string): Promise<Campaign> {
    if (!spec || typeof spec !== 'object') throw new RotationError('ERR_ROTATION_BAD_INPUT', 'campaign spec must be an object');
    const tenantId = String(spec.tenantId);
    if (!TENANT_RE.test(tenantId)) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'tenantId is malformed');
    const aid = String(spec.aid).toUpperCase();
    if (!AID_RE.test(aid)) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'aid must be 6 hex digits');
    const keyNo = int('keyNo', spec.keyNo, 0, 13);
    const target = checkTarget(spec.target);
    const batchSize = int('batchSize', spec.batchSize ?? 500, 1, 100_000);
    const rate = int('rate', spec.rate ?? 0, 0, 1_000_000);
    const window = checkWindow(spec.window);
    const maxAttempts = int('maxAttempts', spec.maxAttempts ?? 3, 1, 100);
    const graceMs = int('graceMs', spec.graceMs ?? 30 * DAY, 0, 3650 * DAY);
    const k: KeyRef = { tenantId, aid, keyNo };
    const fromVersion = spec.fromVersion ?? (await currentVersion(this.o.db, k));
    if (fromVersion === undefined) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'fromVersion is needed: the key has no managed current version yet');
    int('fromVersion', fromVersion, 0, 255);
    const open = await this.o.db
      .selectFrom('rotation_campaigns')
      .select('id')
      .where('tenant_id', '=', tenantId)
      .where('aid', '=', aid)
      .where('key_no', '=', keyNo)
      .where('state', 'in', OPEN)
      .executeTakeFirst();
    if (open) throw new RotationError('ERR_ROTATION_CONFLICT', `campaign ${open.id} is already open for this key`);
    let toVersion = spec.toVersion;
    if (toVersion === undefined) {
      if (!this.o.newVersion) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'toVersion is needed');
      toVersion = await this.o.newVersion(k);
    }
    int('toVersion', toVersion, 0, 255);
    if (toVersion === fromVersion) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'toVersion must differ from fromVersion');

    const id = randomUUID();
    const now = this.now();
    const count = await this.o.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('rotation_campaigns')
        .values({
          id, tenant_id: tenantId, aid, key_no: keyNo, from_version: fromVersion, to_version: toVersion, state: 'ready',
          target: JSON.stringify(target), card_count: 0, batch_size: batchSize, rate, window: window ? JSON.stringify(window) : null,
          max_attempts: maxAttempts, grace_ms: graceMs, approval_id: null, created_by: actor, created_at: now, updated_at: now,
        })
        .execute();
      const n = await planItems(tx, id, k, fromVersion, target, batchSize, now);
      await tx.updateTable('rotation_campaigns').set({ card_count: n }).where('id', '=', id).execute();
      const fromRow = await tx.selectFrom('key_versions').select('state').where('tenant_id', '=', tenantId).where('aid', '=', aid).where('key_no', '=', keyNo).where('version', '=', fromVersion).executeTakeFirst();
      if (!fromRow) await setVersionState(tx, k, fromVersion, 'current', null, now);
      await setVersionState(tx, k, toVersion, 'pending', null, now);
      return n;
    });
    let authorisations: string[] | undefined;
    if (this.o.authorise) {
      const uids = await this.o.db.selectFrom('rotation_items').select('uid').where('campaign_id', '=', id).execute();
      try {
        authorisations = [...new Set((await this.o.authorise({ tenant: tenantId, aid, operation: 'rotate', at: now, cards: uids.map((r) => ({ uid: r.uid })) }, { actor, correlationId: id })).values())].sort();
      } catch (e) {
        await this.cancel(id, actor);
        throw e;
      }
    }
    let state: CampaignState = 'ready';
    let approvalId: string | null = null;
    if (spec.requireApproval || count > this.o.approvals.policy.campaignCardThreshold) {
      const a = await this.o.approvals.request(
        'rotation_campaign',
        { campaignId: id, tenantId, aid, keyNo, fromVersion, toVersion, cardCount: count, target: target.kind === 'list' ? { kind: 'list', count: target.uids.length } : target, batchSize, rate, graceMs, reason: String(spec.reason ?? '').slice(0, 200) },
        actor,
        `rotate ${tenantId}/${aid}/key ${keyNo} v${fromVersion} -> v${toVersion} on ${count} cards`,
      );
      state = 'awaiting_approval';
      approvalId = a.id;
      await this.o.db.updateTable('rotation_campaigns').set({ state, approval_id: approvalId }).where('id', '=', id).execute();
    }
    await this.o.audit.record({ actor, tenant: tenantId, aid, keyNo, keyVersion: toVersion, operation: 'rotation.create', result: 'ok', correlationId: id, details: { fromVersion, cards: count, state, batchSize, ...(authorisations ? { authorisations } : {}) } });
    return this.require(id);
  }

  private async move(c: Campaign, from: CampaignState[], to: CampaignState, extra: (tx: Db, now: number) => Promise<void> = async () => undefined): Promise<Campaign> {
    if (!from.includes(c.state)) throw new RotationError('ERR_ROTATION_STATE', `campaign ${c.id} is ${c.state}`);
    const now = this.now();
    await this.o.db.transaction().execute(async (tx) => {
      const u = await tx.updateTable('rotation_campaigns').set({ state: to, updated_at: now }).where('id', '=', c.id).where('state', '=', c.state).executeTakeFirst();
      if ((u.numUpdatedRows ?? 0n) === 0n) throw new RotationError('ERR_ROTATION_CONFLICT', `campaign ${c.id} changed concurrently`);
      await extra(tx, now);
    });
    return this.require(c.id);
  }

  /** Start: consumes the approval when one is needed; the new version becomes current, the old one previous (grace). */
  async start(id: string, actor: string): Promise<Campaign> {
    const c = await this.require(id);
    if (c.state === 'awaiting_approval') {
      try {
        await this.o.approvals.consume(c.approvalId ?? '', 'rotation_campaign', actor, (p) => p.campaignId === c.id);
      } catch (e) {
        await this.o.audit.record({ actor, tenant: c.tenantId, aid: c.aid, keyNo: c.keyNo, operation: 'rotation.start', result: 'denied', correlationId: c.id, details: { code: (e as RotationError).code ?? 'ERR' } });
        throw e;
      }
    }
    const k = { tenantId: c.tenantId, aid: c.aid, keyNo: c.keyNo };
    const out = await this.move(c, ['awaiting_approval', 'ready'], 'running', async (tx, now) => {
      await setVersionState(tx, k, c.toVersion, 'current', null, now);
      await setVersionState(tx, k, c.fromVersion, 'previous', now + c.graceMs, now);
    });
    await this.o.audit.record({ actor, tenant: c.tenantId, aid: c.aid, keyNo: c.keyNo, keyVersion: c.toVersion, operation: 'rotation.start', result: 'ok', correlationId: c.id, details: { fromVersion: c.fromVersion, cards: c.cardCount } });
    return out;
  }

  async pause(id: string, actor: string): Promise<Campaign> {
    const out = await this.move(await this.require(id), ['running'], 'paused');
    await this.o.audit.record({ actor, operation: 'rotation.pause', result: 'ok', correlationId: id, tenant: out.tenantId, aid: out.aid, keyNo: out.keyNo });
    return out;
  }

  async resume(id: string, actor: string): Promise<Campaign> {
    const out = await this.move(await this.require(id), ['paused'], 'running');
    await this.o.audit.record({ actor, operation: 'rotation.resume', result: 'ok', correlationId: id, tenant: out.tenantId, aid: out.aid, keyNo: out.keyNo });
    return out;
  }

  /** Cancel a campaign that has not started (the pending version is retired). */
  async cancel(id: string, actor: string): Promise<Campaign> {
    const c = await this.require(id);
    if (c.state === 'cancelled') return this.retire(c, c.toVersion, actor);
    const out = await this.move(c, ['awaiting_approval', 'ready'], 'cancelled', async (tx, now) => {
      await setVersionState(tx, { tenantId: c.tenantId, aid: c.aid, keyNo: c.keyNo }, c.toVersion, 'retired', null, now);
      await tx.updateTable('rotation_items').set({ state: 'cancelled', updated_at: now }).where('campaign_id', '=', c.id).where('state', '=', 'pending').execute();
    });
    await this.o.audit.record({ actor, operation: 'rotation.cancel', result: 'ok', correlationId: id, tenant: c.tenantId, aid: c.aid, keyNo: c.keyNo });
    return this.retire(out, c.toVersion, actor);
  }

  /**
   * Roll back to the old version while it is within its grace period: the old version is current
   * again, the new one stays accepted until every card that moved has been changed back (items
   * 'revert_pending', run by the same runner), untouched cards are cancelled.
   */
  async rollback(id: string, actor: string): Promise<Campaign> {
    const c = await this.require(id);
    if (!['running', 'paused'].includes(c.state)) throw new RotationError('ERR_ROTATION_STATE', `campaign ${c.id} is ${c.state}: only a started, uncompleted campaign rolls back`);
    const k = { tenantId: c.tenantId, aid: c.aid, keyNo: c.keyNo };
    const prev = await this.o.db.selectFrom('key_versions').select(['grace_until']).where('tenant_id', '=', c.tenantId).where('aid', '=', c.aid).where('key_no', '=', c.keyNo).where('version', '=', c.fromVersion).executeTakeFirst();
    if (!prev || Number(prev.grace_until ?? 0) <= this.now()) {
      await this.o.audit.record({ actor, operation: 'rotation.rollback', result: 'denied', correlationId: id, tenant: c.tenantId, aid: c.aid, keyNo: c.keyNo, details: { code: 'ERR_ROTATION_GRACE_OVER' } });
      throw new RotationError('ERR_ROTATION_GRACE_OVER', `the grace period of version ${c.fromVersion} is over`);
    }
    const out = await this.move(c, ['running', 'paused'], 'rolling_back', async (tx, now) => {
      await setVersionState(tx, k, c.fromVersion, 'current', null, now);
      await setVersionState(tx, k, c.toVersion, 'previous', Number(prev.grace_until), now);
      await tx
        .updateTable('rotation_items')
        .set({ state: 'revert_pending', attempts: 0, updated_at: now })
        .where('campaign_id', '=', c.id)
        .where((eb) => eb.or([eb('state', '=', 'done'), eb('card_version', '=', c.toVersion)]))
        .execute();
      await tx.updateTable('rotation_items').set({ state: 'cancelled', updated_at: now }).where('campaign_id', '=', c.id).where('state', 'in', ['pending', 'failed']).execute();
    });
    await this.o.audit.record({ actor, operation: 'rotation.rollback', result: 'ok', correlationId: id, tenant: c.tenantId, aid: c.aid, keyNo: c.keyNo, keyVersion: c.fromVersion });
    return out;
  }

  /** Complete: no item may be pending; the old version is retired (no longer accepted). */
  async complete(id: string, actor: string): Promise<Campaign> {
    const c = await this.require(id);
    if (c.state === 'completed') return this.retire(c, c.fromVersion, actor);
    if (c.state === 'rolled_back') return this.retire(c, c.toVersion, actor);
    const pending = await this.o.db.selectFrom('rotation_items').select('uid').where('campaign_id', '=', c.id).where('state', '=', 'pending').limit(1).executeTakeFirst();
    if (pending && c.state !== 'rolling_back') throw new RotationError('ERR_ROTATION_STATE', `campaign ${c.id} still has pending cards`);
    const k = { tenantId: c.tenantId, aid: c.aid, keyNo: c.keyNo };
    if (c.state === 'rolling_back') {
      const rp = await this.o.db.selectFrom('rotation_items').select('uid').where('campaign_id', '=', c.id).where('state', '=', 'revert_pending').limit(1).executeTakeFirst();
      if (rp) throw new RotationError('ERR_ROTATION_STATE', `campaign ${c.id} still has cards to change back`);
      const out = await this.move(c, ['rolling_back'], 'rolled_back', async (tx, now) => setVersionState(tx, k, c.toVersion, 'retired', null, now));
      await this.o.audit.record({ actor, operation: 'rotation.rolled_back', result: 'ok', correlationId: id, tenant: c.tenantId, aid: c.aid, keyNo: c.keyNo, keyVersion: c.fromVersion });
      return this.retire(out, c.toVersion, actor);
    }
    const out = await this.move(c, ['running', 'paused'], 'completed', async (tx, now) => setVersionState(tx, k, c.fromVersion, 'retired', null, now));
    await this.o.audit.record({ actor, operation: 'rotation.complete', result: 'ok', correlationId: id, tenant: c.tenantId, aid: c.aid, keyNo: c.keyNo, keyVersion: c.toVersion, details: { retired: c.fromVersion } });
    return this.retire(out, c.fromVersion, actor);
  }

  /** The custody step of a retirement (see CampaignServiceOptions.retireVersion); audited either way. */
  private async retire(c: Campaign, version: number, actor: string): Promise<Campaign> {
    if (!this.o.retireVersion) return c;
    const base = { actor, operation: 'rotation.retire', correlationId: c.id, tenant: c.tenantId, aid: c.aid, keyNo: c.keyNo, keyVersion: version };
    try {
      await this.o.retireVersion({ tenantId: c.tenantId, aid: c.aid, keyNo: c.keyNo }, version, { actor, correlationId: c.id });
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'ERR';
      await this.o.audit.record({ ...base, result: 'error', details: { code } });
      throw new RotationError('ERR_ROTATION_RETIRE', `version ${version} is retired in the CMS but custody did not disable it (${code}); retry the operation`);
    }
    await this.o.audit.record({ ...base, result: 'ok' });
    return c;
  }

  async progress(id: string, opts: { failures?: number } = {}): Promise<Progress> {
    const c = await this.require(id);
    const rows = await this.o.db
      .selectFrom('rotation_items')
      .select(['batch_no', 'state', (eb) => eb.fn.countAll<number>().as('n')])
      .where('campaign_id', '=', id)
      .groupBy(['batch_no', 'state'])
      .orderBy('batch_no')
      .execute();
    const batches = new Map<number, BatchProgress>();
    const totals = { done: 0, pending: 0, failed: 0, reverted: 0, cancelled: 0 };
    for (const r of rows) {
      const b = Number(r.batch_no);
      let p = batches.get(b);
      if (!p) batches.set(b, (p = { batch: b, done: 0, pending: 0, failed: 0, reverted: 0, cancelled: 0 }));
      const key = r.state === 'revert_pending' ? 'pending' : (r.state as keyof typeof totals);
      if (key in totals) {
        p[key] += Number(r.n);
        totals[key] += Number(r.n);
      }
    }
    const failures = await this.o.db
      .selectFrom('rotation_items')
      .select(['uid', 'card_version', 'error'])
      .where('campaign_id', '=', id)
      .where('state', '=', 'failed')
      .orderBy('uid')
      .limit(opts.failures ?? 100)
      .execute();
    return {
      campaign: c,
      totals,
      batches: [...batches.values()],
      failures: failures.map((f) => ({ uid: f.uid, cardVersion: f.card_version === null ? null : Number(f.card_version), error: f.error })),
    };
  }
}

/** Insert the campaign's items: one per target card on `fromVersion`, numbered into batches by UID order. */
async function planItems(tx: Db, id: string, k: KeyRef, fromVersion: number, target: Target, batchSize: number, now: number): Promise<number> {
  if (target.kind === 'list') {
    let n = 0;
    for (let i = 0; i < target.uids.length; i += 500) {
      const chunk = target.uids.slice(i, i + 500);
      const have = await tx.selectFrom('card_keys').select('uid').where('aid', '=', k.aid).where('key_no', '=', k.keyNo).where('key_version', '=', fromVersion).where('uid', 'in', chunk).execute();
      const uids = have.map((h) => h.uid).sort();
      if (uids.length) {
        await tx
          .insertInto('rotation_items')
          .values(uids.map((uid, j) => ({ campaign_id: id, uid, batch_no: Math.floor((n + j) / batchSize), state: 'pending', attempts: 0, card_version: null, error: null, updated_at: now })))
          .execute();
      }
      n += uids.length;
    }
    return n;
  }
  const state = target.kind === 'query' && target.cardState ? sql`and c.state = ${target.cardState}` : sql``;
  const prefix = target.kind === 'query' && target.uidPrefix ? sql`and k.uid like ${target.uidPrefix + '%'}` : sql``;
  const join = target.kind === 'query' && target.cardState ? sql`join cards c on c.uid = k.uid` : sql``;
  await sql`insert into rotation_items (campaign_id, uid, batch_no, state, attempts, card_version, error, updated_at)
    select ${id}, k.uid, cast((row_number() over (order by k.uid) - 1) / cast(${batchSize} as integer) as integer), 'pending', 0, null, null, ${now}
    from card_keys k ${join}
    where k.aid = ${k.aid} and k.key_no = ${k.keyNo} and k.key_version = ${fromVersion} ${state} ${prefix}`.execute(tx);
  const r = await tx.selectFrom('rotation_items').select((eb) => eb.fn.countAll<number>().as('n')).where('campaign_id', '=', id).executeTakeFirstOrThrow();
  return Number(r.n);
}

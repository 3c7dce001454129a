// Runs a campaign's batches through a CardExecutor (the reader fleet, a station, or in-process
// virtual cards). Card outcomes are committed in small groups (items + the CardUID <-> key version
// mapping in one transaction), so a crash loses at most one group of outcomes, and those cards are
// not changed twice: on resume the card step probes GetKeyVersion first and reports 'already'.
//
// An item ends 'done' (verified on the new version), or 'failed' with the version the card was
// verified to hold (cardVersion), never in an unknown state unless the card never answered.
import type { Kysely } from 'kysely';
import type { Database } from '../storage/index.js';
import type { AuditRecorder } from './audit.js';
import { inWindow, type Campaign, type CampaignService } from './campaigns.js';
import { RotationError } from './errors.js';

type Db = Kysely<Database>;

export interface CardRotationRequest {
  campaignId: string;
  uid: string;
  tenantId: string;
  aid: string;
  keyNo: number;
  fromVersion: number;
  toVersion: number;
  /** 1-based attempt number. */
  attempt: number;
}

export interface CardRotationReport {
  /** true: verified on toVersion. */
  ok: boolean;
  /** The version the card was verified to hold after this attempt (null: not reached). */
  cardVersion: number | null;
  /** Error code when !ok (never key material). */
  code?: string;
}

/** What runs the card-side step (src/reader/station/rotate.ts) for one card. */
export interface CardExecutor {
  rotate(req: CardRotationRequest): Promise<CardRotationReport>;
}

export interface RunProgress {
  campaignId: string;
  batch: number;
  processed: number;
  done: number;
  failed: number;
  retried: number;
}

export interface RunOptions {
  /** Stop after this many batches (default: all). */
  maxBatches?: number;
  /** Cards in flight at once (default 1). */
  concurrency?: number;
  onProgress?: (p: RunProgress) => void;
  signal?: AbortSignal;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /**
   * Card outcomes committed per transaction (default 100). A crash loses at most this many
   * outcomes; those cards are probed again on resume and reported 'already' (no second ChangeKey).
   */
  commitEvery?: number;
}

export type RunResult = 'finished' | 'paused' | 'outside_window' | 'aborted' | 'max_batches';

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class CampaignRunner {
  private readonly db: Db;

  constructor(
    private readonly campaigns: CampaignService,
    private readonly executor: CardExecutor,
    private readonly audit: AuditRecorder,
  ) {
    this.db = campaigns.db;
  }

  /** Run until every item is settled, the campaign is paused, outside its window, or aborted. */
  async run(id: string, opts: RunOptions = {}): Promise<RunResult> {
    const now = opts.now ?? Date.now;
    const sleep = opts.sleep ?? defaultSleep;
    let batches = 0;
    const stats: RunProgress = { campaignId: id, batch: -1, processed: 0, done: 0, failed: 0, retried: 0 };
    for (;;) {
      if (opts.signal?.aborted) return 'aborted';
      const c = await this.campaigns.require(id);
      if (c.state === 'paused') return 'paused';
      if (c.state !== 'running' && c.state !== 'rolling_back') throw new RotationError('ERR_ROTATION_STATE', `campaign ${c.id} is ${c.state}`);
      if (!inWindow(c.window, now())) return 'outside_window';
      const wanted = c.state === 'running' ? 'pending' : 'revert_pending';
      const next = await this.db
        .selectFrom('rotation_items')
        .select('batch_no')
        .where('campaign_id', '=', id)
        .where('state', '=', wanted)
        .orderBy('batch_no')
        .limit(1)
        .executeTakeFirst();
      if (!next) return 'finished';
      if (opts.maxBatches !== undefined && batches >= opts.maxBatches) return 'max_batches';
      stats.batch = Number(next.batch_no);
      const r = await this.runBatch(c, stats.batch, wanted, stats, opts, sleep);
      batches++;
      if (r !== 'ok') return r;
      await this.audit.record({ actor: 'system', operation: 'rotation.batch', result: 'ok', correlationId: id, tenant: c.tenantId, aid: c.aid, keyNo: c.keyNo, details: { batch: stats.batch, done: stats.done, failed: stats.failed } });
    }
  }

  private async runBatch(c: Campaign, batch: number, wanted: 'pending' | 'revert_pending', stats: RunProgress, opts: RunOptions, sleep: (ms: number) => Promise<void>): Promise<'ok' | 'paused' | 'aborted'> {
    const reverting = wanted === 'revert_pending';
    const from = reverting ? c.toVersion : c.fromVersion;
    const to = reverting ? c.fromVersion : c.toVersion;
    const concurrency = Math.max(1, opts.concurrency ?? 1);
    const flushEvery = Math.max(1, opts.commitEvery ?? 100);
    const started = Date.now();
    let sent = 0;
    // retry passes within the batch until every item settles
    for (;;) {
      const items = await this.db
        .selectFrom('rotation_items')
        .select(['uid', 'attempts'])
        .where('campaign_id', '=', c.id)
        .where('batch_no', '=', batch)
        .where('state', '=', wanted)
        .orderBy('uid')
        .execute();
      if (items.length === 0) return 'ok';
      let idx = 0;
      let stop: 'paused' | 'aborted' | undefined;
      let pendingWrites: { uid: string; attempt: number; rep: CardRotationReport }[] = [];
      const flush = async (): Promise<void> => {
        const w = pendingWrites;
        pendingWrites = [];
        if (w.length) await this.settle(c, w, wanted, to);
      };
      const worker = async (): Promise<void> => {
        while (idx < items.length && !stop) {
          const it = items[idx++]!;
          if (opts.signal?.aborted) {
            stop = 'aborted';
            return;
          }
          if (c.rate > 0) {
            const due = started + (sent * 1000) / c.rate;
            sent++;
            const wait = due - Date.now();
            if (wait > 0) await sleep(wait);
          }
          const attempt = Number(it.attempts) + 1;
          let rep: CardRotationReport;
          try {
            rep = await this.executor.rotate({ campaignId: c.id, uid: it.uid, tenantId: c.tenantId, aid: c.aid, keyNo: c.keyNo, fromVersion: from, toVersion: to, attempt });
          } catch (e) {
            rep = { ok: false, cardVersion: null, code: (e as { code?: string }).code ?? 'ERR_EXECUTOR' };
          }
          pendingWrites.push({ uid: it.uid, attempt, rep });
          if (pendingWrites.length >= flushEvery) await flush();
          stats.processed++;
          if (rep.ok) stats.done++;
          else if (attempt >= c.maxAttempts) stats.failed++;
          else stats.retried++;
          opts.onProgress?.({ ...stats });
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
      } finally {
        await flush();
      }
      if (stop) return stop;
      const cur = await this.campaigns.require(c.id);
      if (cur.state === 'paused') return 'paused';
    }
  }
  private async settle(c: Campaign, group: { uid: string; attempt: number; rep: CardRotationReport }[], wanted: string, to: number): Promise<void> {
    await settleOutcomes(this.db, this.audit, c, group, wanted, to);
  }
}

/**
 * Commit a group of card outcomes in one transaction (items + the CardUID <-> key version mapping):
 * ok -> 'done' ('reverted' when reverting) on `to`; a failure -> 'failed' with the card's verified
 * version once the attempts are used up, else back to `wanted` for a retry. An item no longer in
 * state `wanted` is left alone. Shared by the runner and the field rotations of runtime readers.
 * Returns how many items changed.
 */
export async function settleOutcomes(db: Db, audit: AuditRecorder, c: Campaign, group: { uid: string; attempt: number; rep: CardRotationReport }[], wanted: string, to: number, actor = 'system'): Promise<number> {
  const now = Date.now();
  const failedNow: { uid: string; rep: CardRotationReport }[] = [];
  let changed = 0;
  await db.transaction().execute(async (tx) => {
    for (const { uid, attempt, rep } of group) {
      const state = rep.ok ? (wanted === 'revert_pending' ? 'reverted' : 'done') : attempt >= c.maxAttempts ? 'failed' : wanted;
      const version = rep.ok ? to : rep.cardVersion;
      const u = await tx
        .updateTable('rotation_items')
        .set({ state, attempts: attempt, card_version: version, error: rep.ok ? null : (rep.code ?? 'ERR_ROTATION_CARD').slice(0, 100), updated_at: now })
        .where('campaign_id', '=', c.id)
        .where('uid', '=', uid)
        .where('state', '=', wanted)
        .executeTakeFirst();
      if ((u.numUpdatedRows ?? 0n) === 0n) continue;
      changed++;
      if (!rep.ok && attempt >= c.maxAttempts) failedNow.push({ uid, rep });
      if (version !== null) {
        await tx.updateTable('card_keys').set({ key_version: version, updated_at: now }).where('uid', '=', uid).where('aid', '=', c.aid).where('key_no', '=', c.keyNo).execute();
      }
    }
  });
  // every card that ends failed is in the audit log with its verified version (successes are
  // counted per batch; the readers' batons carry each ChangeKey)
  for (const f of failedNow) {
    await audit.record({
      actor,
      operation: 'rotation.card',
      result: 'error',
      correlationId: c.id,
      cardUid: f.uid,
      tenant: c.tenantId,
      aid: c.aid,
      keyNo: c.keyNo,
      keyVersion: f.rep.cardVersion,
      details: { code: f.rep.code ?? 'ERR_ROTATION_CARD' },
    });
  }
  return changed;
}

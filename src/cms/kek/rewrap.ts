// KEK rotation and rewrap of every stored blob (card_key_blobs), without plaintext leaving custody.
//
// - census / dry run: blobs per (KEK, KEK version), streamed by keyset pagination (bounded memory).
// - rotate: a KEK rotation is a critical operation: it consumes an approved 'kek_rotation' request.
// - rewrap run: walks the KEK's blobs in primary-key order, page by page; each page's new blobs
//   and the run's checkpoint (the last key handled + counters) are committed in ONE transaction,
//   so after a crash the run resumes after the last committed page: nothing is lost and nothing
//   is counted or rewrapped twice (a blob already under the target version is skipped anyway).
//   Updates are compare-and-set on the old blob, so a concurrent writer is never overwritten.
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { parseBlob } from '../../custody/binding.js';
import type { CallerContext, KeyBinding, KeyCustody } from '../../custody/types.js';
import type { ApprovalService } from '../approvals/service.js';
import type { Database } from '../storage/index.js';
import type { AuditRecorder } from '../rotation/audit.js';
import { RotationError } from '../rotation/errors.js';

type Db = Kysely<Database>;

export const ISSUER_TENANT = 'issuer';
export const PICC_AID = '000000';
const KEK_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface CensusRow {
  kek: string;
  kekVersion: number;
  blobs: number;
}

export interface RewrapRun {
  id: string;
  kek: string;
  targetVersion: number;
  state: 'running' | 'done';
  lastKey: [string, string, number, number] | null;
  rewrapped: number;
  skipped: number;
  failed: number;
  createdBy: string;
}

export interface RewrapProgress {
  runId: string;
  rewrapped: number;
  skipped: number;
  failed: number;
}

export interface KekServiceOptions {
  db: Db;
  custody: KeyCustody;
  audit: AuditRecorder;
  approvals: ApprovalService;
  now?: () => number;
}

type BlobKey = [string, string, number, number];

function checkKek(kek: unknown): string {
  if (typeof kek !== 'string' || !KEK_RE.test(kek)) throw new RotationError('ERR_KEK_BAD_INPUT', 'kek must be a custody key name');
  return kek;
}

function blobVersion(blob: string): number {
  try {
    return parseBlob(blob).version;
  } catch {
    return 0;
  }
}

export class KekService {
  private readonly now: () => number;

  constructor(private readonly o: KekServiceOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Stream the blobs of `kek` (or all KEKs) after `after`, in primary-key order. */
  private async page(kek: string | undefined, after: BlobKey | null, limit: number) {
    let q = this.o.db
      .selectFrom('card_key_blobs as b')
      .leftJoin('applications as a', 'a.aid', 'b.aid')
      .select(['b.uid', 'b.aid', 'b.key_no', 'b.key_version', 'b.kek', 'b.blob', 'a.tenant_id'])
      .orderBy('b.uid')
      .orderBy('b.aid')
      .orderBy('b.key_no')
      .orderBy('b.key_version')
      .limit(limit);
    if (kek !== undefined) q = q.where('b.kek', '=', kek);
    if (after) q = q.where(sql<boolean>`(b.uid, b.aid, b.key_no, b.key_version) > (${after[0]}, ${after[1]}, ${after[2]}, ${after[3]})`);
    return q.execute();
  }

  /** Blobs per (KEK, KEK version): the dry-run report and the final census. Bounded memory. */
  async census(kek?: string, pageSize = 5000): Promise<CensusRow[]> {
    if (kek !== undefined) checkKek(kek);
    const counts = new Map<string, CensusRow>();
    let after: BlobKey | null = null;
    for (;;) {
      const rows = await this.page(kek, after, pageSize);
      if (rows.length === 0) break;
      for (const r of rows) {
        const v = blobVersion(r.blob);
        const k = `${r.kek}\u0000${v}`;
        const c = counts.get(k);
        if (c) c.blobs++;
        else counts.set(k, { kek: r.kek, kekVersion: v, blobs: 1 });
      }
      const l = rows[rows.length - 1]!;
      after = [l.uid, l.aid, Number(l.key_no), Number(l.key_version)];
      if (rows.length < pageSize) break;
    }
    return [...counts.values()].sort((a, b) => a.kek.localeCompare(b.kek) || a.kekVersion - b.kekVersion);
  }

  /** What a rewrap would do: the census of `kek` and how many blobs are under an older version. */
  async dryRun(ctx: CallerContext, kek: string): Promise<{ kek: string; latestVersion: number; census: CensusRow[]; toRewrap: number }> {
    checkKek(kek);
    const latest = (await this.o.custody.getKey(ctx, kek)).latestVersion;
    const census = await this.census(kek);
    return { kek, latestVersion: latest, census, toRewrap: census.filter((c) => c.kekVersion < latest).reduce((n, c) => n + c.blobs, 0) };
  }

  /** Ask for the approvals a KEK rotation needs. */
  async requestRotation(kek: string, actor: string, reason = ''): Promise<string> {
    checkKek(kek);
    const a = await this.o.approvals.request('kek_rotation', { kek, reason: String(reason).slice(0, 200) }, actor, `rotate KEK ${kek} and rewrap its blobs`);
    return a.id;
  }

  /** Rotate the KEK (approved request needed) and start a rewrap run to the new version. */
  async rotate(ctx: CallerContext, kek: string, approvalId: string): Promise<{ version: number; run: RewrapRun }> {
    checkKek(kek);
    try {
      await this.o.approvals.consume(approvalId, 'kek_rotation', ctx.actor, (p) => p.kek === kek);
    } catch (e) {
      await this.o.audit.record({ actor: ctx.actor, operation: 'kek.rotate', result: 'denied', correlationId: ctx.correlationId, details: { keyName: kek, code: (e as RotationError).code ?? 'ERR' } });
      throw e;
    }
    const info = await this.o.custody.rotateKey(ctx, kek);
    await this.o.audit.record({ actor: ctx.actor, operation: 'kek.rotate', result: 'ok', correlationId: ctx.correlationId, details: { keyName: kek, kekVersion: info.latestVersion } });
    return { version: info.latestVersion, run: await this.startRewrap(ctx, kek) };
  }

  /** A new rewrap run of `kek`'s blobs to its latest version (no approval: it changes no key). */
  async startRewrap(ctx: CallerContext, kek: string): Promise<RewrapRun> {
    checkKek(kek);
    const latest = (await this.o.custody.getKey(ctx, kek)).latestVersion;
    const now = this.now();
    const id = randomUUID();
    await this.o.db
      .insertInto('kek_rewrap_runs')
      .values({ id, kek, target_version: latest, state: 'running', last_key: null, rewrapped: 0, skipped: 0, failed: 0, created_by: ctx.actor, created_at: now, updated_at: now })
      .execute();
    await this.o.audit.record({ actor: ctx.actor, operation: 'kek.rewrap.start', result: 'ok', correlationId: id, details: { keyName: kek, kekVersion: latest } });
    return (await this.getRun(id))!;
  }

  async getRun(id: string): Promise<RewrapRun | undefined> {
    if (typeof id !== 'string' || id.length > 64) return undefined;
    const r = await this.o.db.selectFrom('kek_rewrap_runs').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) return undefined;
    return {
      id: r.id,
      kek: r.kek,
      targetVersion: Number(r.target_version),
      state: r.state as RewrapRun['state'],
      lastKey: r.last_key ? (JSON.parse(r.last_key) as BlobKey) : null,
      rewrapped: Number(r.rewrapped),
      skipped: Number(r.skipped),
      failed: Number(r.failed),
      createdBy: r.created_by,
    };
  }

  async listRuns(): Promise<RewrapRun[]> {
    const ids = await this.o.db.selectFrom('kek_rewrap_runs').select('id').orderBy('created_at', 'desc').limit(100).execute();
    const out: RewrapRun[] = [];
    for (const { id } of ids) out.push((await this.getRun(id))!);
    return out;
  }

  /** The unfinished runs (to resume after a restart). */
  async unfinished(): Promise<RewrapRun[]> {
    return (await this.listRuns()).filter((r) => r.state === 'running');
  }

  /**
   * Run (or resume) a rewrap from its checkpoint until done or aborted. Memory is bounded by the
   * page size. Returns the run as committed.
   */
  async runRewrap(ctx: CallerContext, id: string, opts: { pageSize?: number; signal?: AbortSignal; onProgress?: (p: RewrapProgress) => void; maxPages?: number } = {}): Promise<RewrapRun> {
    const run = await this.getRun(id);
    if (!run) throw new RotationError('ERR_KEK_RUN_STATE', `rewrap run ${String(id).slice(0, 64)} not found`);
    if (run.state !== 'running') return run;
    const pageSize = Math.min(Math.max(1, opts.pageSize ?? 2000), 20_000);
    let after = run.lastKey;
    let counts = { rewrapped: run.rewrapped, skipped: run.skipped, failed: run.failed };
    let pages = 0;
    for (;;) {
      if (opts.signal?.aborted || (opts.maxPages !== undefined && pages >= opts.maxPages)) return (await this.getRun(id))!;
      const rows = await this.page(run.kek, after, pageSize);
      if (rows.length === 0) break;
      const todo: { row: (typeof rows)[number]; binding: KeyBinding }[] = [];
      let skipped = 0;
      for (const r of rows) {
        if (blobVersion(r.blob) >= run.targetVersion) {
          skipped++;
          continue;
        }
        const tenant = r.aid === PICC_AID ? ISSUER_TENANT : r.tenant_id;
        if (!tenant) {
          skipped++;
          continue;
        }
        todo.push({ row: r, binding: { tenant, aid: r.aid, uid: r.uid, keyNo: Number(r.key_no), version: Number(r.key_version) } });
      }
      const results = todo.length ? await this.o.custody.rewrapMany(ctx, run.kek, todo.map((t) => ({ blob: t.row.blob, binding: t.binding }))) : [];
      const l = rows[rows.length - 1]!;
      const last: BlobKey = [l.uid, l.aid, Number(l.key_no), Number(l.key_version)];
      const next = { ...counts, skipped: counts.skipped + skipped };
      const now = this.now();
      await this.o.db.transaction().execute(async (tx) => {
        for (let i = 0; i < todo.length; i++) {
          const res = results[i]!;
          const r = todo[i]!.row;
          if ('error' in res) {
            next.failed++;
            continue;
          }
          await tx
            .updateTable('card_key_blobs')
            .set({ blob: res.blob })
            .where('uid', '=', r.uid)
            .where('aid', '=', r.aid)
            .where('key_no', '=', r.key_no)
            .where('key_version', '=', r.key_version)
            .where('blob', '=', r.blob)
            .execute();
          next.rewrapped++;
        }
        const u = await tx
          .updateTable('kek_rewrap_runs')
          .set({ last_key: JSON.stringify(last), rewrapped: next.rewrapped, skipped: next.skipped, failed: next.failed, updated_at: now })
          .where('id', '=', id)
          .where('state', '=', 'running')
          .where('rewrapped', '=', counts.rewrapped)
          .where('skipped', '=', counts.skipped)
          .where('failed', '=', counts.failed)
          .executeTakeFirst();
        if ((u.numUpdatedRows ?? 0n) === 0n) throw new RotationError('ERR_KEK_RUN_STATE', `rewrap run ${id} advanced concurrently`);
      });
      counts = next;
      after = last;
      pages++;
      opts.onProgress?.({ runId: id, ...counts });
      if (rows.length < pageSize) break;
    }
    await this.o.db.updateTable('kek_rewrap_runs').set({ state: 'done', updated_at: this.now() }).where('id', '=', id).execute();
    await this.o.audit.record({ actor: ctx.actor, operation: 'kek.rewrap.done', result: 'ok', correlationId: id, details: { keyName: run.kek, kekVersion: run.targetVersion, ...counts } });
    return (await this.getRun(id))!;
  }
}

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
import type BetterSqlite3 from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';
import { dialectOf } from '../storage/dialect.js';
import { parseBlob } from '../../custody/binding.js';
import type { CallerContext, KeyBinding, KeyCustody } from '../../custody/types.js';
import type { ApprovalService } from '../approvals/service.js';
import { ISSUER_TENANT } from '../domain/index.js';
import { type Database, walRestartGate } from '../storage/index.js';
import type { AuditRecorder } from '../rotation/audit.js';
import { RotationError } from '../rotation/errors.js';

type Db = Kysely<Database>;

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
  /** SQLite: the native connection (DatabaseHandle.sqlite) for the prepared page commit. */
  sqlite?: BetterSqlite3.Database;
}

type BlobKey = [string, string, number, number];
/** [uid, aid, keyNo, keyVersion, oldBlob, newBlob] */
type BlobUpdate = [string, string, number, number, string, string];
type Counts = { rewrapped: number; skipped: number; failed: number };

function checkKek(kek: unknown): string {
  if (typeof kek !== 'string' || !KEK_RE.test(kek)) throw new RotationError('ERR_KEK_BAD_INPUT', 'kek must be a custody key name');
  return kek;
}

/** Rows per UPDATE statement (6 parameters each: within SQLite's and PostgreSQL's limits). */
const UPDATE_CHUNK = 1000;

/**
 * PostgreSQL: set the new blobs of `rows` in ONE statement, each only where the stored blob is
 * still the old one; returns how many rows changed. (Not used on SQLite: its planner scans the
 * whole table for this join, so SQLite runs one prepared UPDATE per blob instead.)
 */
async function updateBlobsBulk(tx: Db, rows: BlobUpdate[]): Promise<number> {
  if (!rows.length) return 0;
  const values = sql.join(rows.map((r) => sql`(${r[0]}, ${r[1]}, cast(${r[2]} as integer), cast(${r[3]} as integer), ${r[4]}, ${r[5]})`));
  const res = await sql`with v (uid, aid, key_no, key_version, old_blob, new_blob) as (values ${values})
    update card_key_blobs set blob = v.new_blob from v
    where card_key_blobs.uid = v.uid and card_key_blobs.aid = v.aid and card_key_blobs.key_no = v.key_no
      and card_key_blobs.key_version = v.key_version and card_key_blobs.blob = v.old_blob`.execute(tx);
  return Number(res.numAffectedRows ?? 0n);
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
  private native?: { blob: BetterSqlite3.Statement; checkpoint: BetterSqlite3.Statement; restarting?: () => Promise<unknown> | undefined };

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
   * Commit one page: the new blobs (compare-and-set on the old blob: one changed meanwhile by
   * another writer is left alone and counted as skipped) and the run's checkpoint (compare-and-set
   * on the previous counters), in ONE transaction. SQLite with the native connection: prepared
   * statements in one BEGIN IMMEDIATE under Kysely's connection lock; PostgreSQL: one
   * UPDATE ... FROM (VALUES ...) per chunk; SQLite through Kysely only: one UPDATE per blob.
   * `next` gets the final counts.
   */
  private async commitPage(id: string, upd: BlobUpdate[], prev: Counts, next: Counts, last: BlobKey, now: number): Promise<void> {
    const lost = () => new RotationError('ERR_KEK_RUN_STATE', `rewrap run ${id} advanced concurrently`);
    const n = this.o.sqlite;
    if (n) {
      const st = (this.native ??= {
        blob: n.prepare('update card_key_blobs set blob = ? where uid = ? and aid = ? and key_no = ? and key_version = ? and blob = ?'),
        checkpoint: n.prepare(
          "update kek_rewrap_runs set last_key = ?, rewrapped = ?, skipped = ?, failed = ?, updated_at = ? where id = ? and state = 'running' and rewrapped = ? and skipped = ? and failed = ?",
        ),
        restarting: walRestartGate(n),
      });
      await this.o.db.connection().execute(async () => {
        // the native BEGIN IMMEDIATE bypasses the Kysely dialect's gate (src/cms/storage/open.ts):
        // while the file's checkpointer thread restarts the WAL (it holds the write lock), wait
        // here, not in SQLite's busy handler on the event loop
        const restart = st.restarting?.();
        if (restart) await restart;
        return n
          .transaction(() => {
            let updated = 0;
            for (const u of upd) updated += st.blob.run(u[5], u[0], u[1], u[2], u[3], u[4]).changes;
            next.rewrapped += updated;
            next.skipped += upd.length - updated;
            const r = st.checkpoint.run(JSON.stringify(last), next.rewrapped, next.skipped, next.failed, now, id, prev.rewrapped, prev.skipped, prev.failed);
            if (r.changes === 0) throw lost();
          })
          .immediate();
      });
      return;
    }
    const pg = dialectOf(this.o.db) === 'postgres';
    await this.o.db.transaction().execute(async (tx) => {
      let updated = 0;
      if (pg) for (let i = 0; i < upd.length; i += UPDATE_CHUNK) updated += await updateBlobsBulk(tx, upd.slice(i, i + UPDATE_CHUNK));
      else
        for (const u of upd) {
          const r = await tx.updateTable('card_key_blobs').set({ blob: u[5] }).where('uid', '=', u[0]).where('aid', '=', u[1]).where('key_no', '=', u[2]).where('key_version', '=', u[3]).where('blob', '=', u[4]).executeTakeFirst();
          updated += Number(r.numUpdatedRows ?? 0n);
        }
      next.rewrapped += updated;
      next.skipped += upd.length - updated;
      const u = await tx
        .updateTable('kek_rewrap_runs')
        .set({ last_key: JSON.stringify(last), rewrapped: next.rewrapped, skipped: next.skipped, failed: next.failed, updated_at: now })
        .where('id', '=', id)
        .where('state', '=', 'running')
        .where('rewrapped', '=', prev.rewrapped)
        .where('skipped', '=', prev.skipped)
        .where('failed', '=', prev.failed)
        .executeTakeFirst();
      if ((u.numUpdatedRows ?? 0n) === 0n) throw lost();
    });
  }

  /** Read the page after `after` and start rewrapping its blobs in custody (not awaited: the caller overlaps it with the previous page's commit). */
  private async preparePage(ctx: CallerContext, run: RewrapRun, after: BlobKey | null, pageSize: number) {
    const rows = await this.page(run.kek, after, pageSize);
    if (rows.length === 0) return undefined;
    const todo: { row: (typeof rows)[number]; binding: KeyBinding }[] = [];
    let skipped = 0;
    for (const r of rows) {
      const tenant = r.aid === PICC_AID ? ISSUER_TENANT : r.tenant_id;
      if (blobVersion(r.blob) >= run.targetVersion || !tenant) {
        skipped++;
        continue;
      }
      todo.push({ row: r, binding: { tenant, aid: r.aid, uid: r.uid, keyNo: Number(r.key_no), version: Number(r.key_version) } });
    }
    const results = todo.length ? this.o.custody.rewrapMany(ctx, run.kek, todo.map((t) => ({ blob: t.row.blob, binding: t.binding }))) : Promise.resolve([]);
    results.catch(() => undefined); // awaited (and its error thrown) by the caller, or dropped on abort
    const l = rows[rows.length - 1]!;
    const last: BlobKey = [l.uid, l.aid, Number(l.key_no), Number(l.key_version)];
    return { todo, skipped, results, last, full: rows.length === pageSize };
  }

  /**
   * Run (or resume) a rewrap from its checkpoint until done or aborted. Memory is bounded by the
   * page size (two pages in flight: while page N is committed, page N+1 is being rewrapped on
   * custody's worker threads). Pages commit in order, each with its checkpoint, so a crash or an
   * abort loses at most the uncommitted page, which the next run does again. Returns the run as
   * committed.
   */
  async runRewrap(ctx: CallerContext, id: string, opts: { pageSize?: number; signal?: AbortSignal; onProgress?: (p: RewrapProgress) => void; maxPages?: number } = {}): Promise<RewrapRun> {
    const run = await this.getRun(id);
    if (!run) throw new RotationError('ERR_KEK_RUN_STATE', `rewrap run ${String(id).slice(0, 64)} not found`);
    if (run.state !== 'running') return run;
    const pageSize = Math.min(Math.max(1, opts.pageSize ?? 2000), 20_000);
    let counts = { rewrapped: run.rewrapped, skipped: run.skipped, failed: run.failed };
    let pages = 0;
    const stop = () => opts.signal?.aborted || (opts.maxPages !== undefined && pages >= opts.maxPages);
    if (stop()) return run;
    let cur = await this.preparePage(ctx, run, run.lastKey, pageSize);
    while (cur) {
      const results = await cur.results;
      // start the next page before committing this one (its custody work runs on the workers meanwhile)
      const ahead = cur.full && !(opts.maxPages !== undefined && pages + 1 >= opts.maxPages) ? this.preparePage(ctx, run, cur.last, pageSize) : undefined;
      ahead?.catch(() => undefined);
      const next = { ...counts, skipped: counts.skipped + cur.skipped };
      const upd: BlobUpdate[] = [];
      for (let i = 0; i < cur.todo.length; i++) {
        const res = results[i]!;
        const r = cur.todo[i]!.row;
        if ('error' in res) next.failed++;
        else upd.push([r.uid, r.aid, Number(r.key_no), Number(r.key_version), r.blob, res.blob]);
      }
      await this.commitPage(id, upd, counts, next, cur.last, this.now());
      counts = next;
      pages++;
      opts.onProgress?.({ runId: id, ...counts });
      if (!cur.full) break;
      if (stop()) {
        await ahead?.then((p) => p?.results).catch(() => undefined); // let custody finish the page it started (its result is dropped)
        return (await this.getRun(id))!;
      }
      cur = await ahead;
    }
    await this.o.db.updateTable('kek_rewrap_runs').set({ state: 'done', updated_at: this.now() }).where('id', '=', id).execute();
    await this.o.audit.record({ actor: ctx.actor, operation: 'kek.rewrap.done', result: 'ok', correlationId: id, details: { keyName: run.kek, kekVersion: run.targetVersion, ...counts } });
    return (await this.getRun(id))!;
  }
}

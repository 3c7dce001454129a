// Resume the work a previous process parked (or lost in a crash) from its committed checkpoint:
// unfinished KEK rewrap runs. Rotation campaigns need no resuming here: their state lives in the
// database and their card steps are driven by readers/stations, which simply continue.
import type { CallerContext, KeyCustody } from '../../custody/types.js';
import { ApprovalService } from '../approvals/service.js';
import type { AuditLog } from '../audit/log.js';
import { KekService, type KekServiceOptions } from '../kek/rewrap.js';
import type { Database } from '../storage/index.js';
import type { Kysely } from 'kysely';
import type { BackgroundWork, Job } from './shutdown.js';

/** Page size of resumed rewrap runs: one page is one transaction, so it also bounds how long a SIGTERM waits. */
export const RESUME_PAGE_SIZE = 250;

export async function resumeParkedWork(d: { db: Kysely<Database>; custody: KeyCustody; audit: AuditLog; work: BackgroundWork; sqlite?: KekServiceOptions['sqlite'] }): Promise<Job[]> {
  const kek = new KekService({ db: d.db, custody: d.custody, audit: d.audit, approvals: new ApprovalService({ db: d.db, audit: d.audit }), ...(d.sqlite ? { sqlite: d.sqlite } : {}) });
  const jobs: Job[] = [];
  for (const run of await kek.unfinished()) {
    const ctx: CallerContext = { actor: 'system:cms-server', purpose: 'resume a parked KEK rewrap run', correlationId: run.id };
    await d.audit.record({ actor: ctx.actor, operation: 'kek.rewrap.resume', result: 'ok', correlationId: run.id, details: { keyName: run.kek, rewrapped: run.rewrapped, skipped: run.skipped } });
    jobs.push(d.work.run('kek-rewrap', (signal) => kek.runRewrap(ctx, run.id, { signal, pageSize: RESUME_PAGE_SIZE }), `kek-rewrap-${run.id}`));
  }
  return jobs;
}

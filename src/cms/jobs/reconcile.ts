// Reconciliation: a job whose outcome is unknown (claimed, no receipt) or failed part-way is
// settled by probing the card — GetApplicationIDs, GetKeyVersion, authentication with the old
// and new keys — never guessed. The probe runs on the CMS (keys exported from custody, audited,
// wiped after use) over any Transport: in-process, PC/SC, or the remote-mode relay through a reader.
//
//   issue    CMK authenticates and the PICC key settings are the planned ones → card issued
//            (recorded as if the receipt had come); factory DES key still authenticates → nothing
//            happened (pending CMK discarded, card stays blank); otherwise unresolved
//   install  AID absent → nothing installed (pending keys discarded); AID present with every key
//            at its planned version, each authenticating with its new key, every file present →
//            installed (recorded); anything else → 'partial' (nothing recorded; delete and retry)
//   delete   AID absent → deleted (recorded); present → not deleted
//   personalise  each step probed as its own job would be, in order: the issue first (not
//            applied → nothing else can have happened: no installation runs without the CMK),
//            then every AID of the plan. Recorded: the issue and each installation the probe
//            verified ('applied'); the pending keys of an AID found absent are discarded; a
//            'partial' AID records nothing (delete it and retry). Verdict: 'applied' when every
//            step is, 'not-applied' when the issue is not, otherwise 'partial'.
import type { Kysely } from 'kysely';
import { DesfireClient } from '../../core/client/index.js';
import { wipe } from '../../core/crypto/bytes.js';
import type { Transport } from '../../core/transport.js';
import type { CallerContext, KeySource } from '../../custody/types.js';
import type { Database } from '../storage/index.js';
import { JobError } from './errors.js';
import type { InstallPlan, IssuePlan, Job, JobState, PersonalisePlan, PersonaliseSteps } from './plan.js';
import type { StationJobs } from './service.js';

export type ReconcileVerdict = 'applied' | 'not-applied' | 'partial';

export interface ReconcileResult {
  jobId: string;
  verdict: ReconcileVerdict;
  findings: string[];
  /** personalise: the verdict of each step ('issue', then each AID), as probed. */
  steps?: { step: string; verdict: ReconcileVerdict }[];
}

async function withExported<T>(jobs: StationJobs, ctx: CallerContext, source: KeySource, fn: (k: Uint8Array) => Promise<T>): Promise<T> {
  const k = await jobs.o.custody.exportForCard(ctx, source);
  try {
    return await fn(k);
  } finally {
    wipe(k);
  }
}

async function authenticates(c: DesfireClient, keyNo: number, key: Uint8Array, opts: Parameters<DesfireClient['authenticate']>[2]): Promise<boolean> {
  try {
    await c.authenticate(keyNo, key, opts);
    return true;
  } catch (e) {
    // the card refused (0xAE and the like) or its answer did not verify with this key
    if ((e as { code?: string }).code === 'ERR_AUTHENTICATION' || typeof (e as { status?: unknown }).status === 'number') return false;
    throw e;
  }
}

/** A personalise job probed step by step with the probes of the separate jobs (never guessed). */
async function probePersonalise(jobs: StationJobs, ctx: CallerContext, job: Job, transport: Transport): Promise<ReconcileResult> {
  const p = job.plan as PersonalisePlan;
  const issue: Job = { ...job, kind: 'issue', aid: '000000', plan: { cmkVersion: p.cmkVersion, piccKeySettings: p.piccKeySettings, randomUid: p.randomUid } };
  const first = await probeJob(jobs, ctx, issue, transport);
  const findings = first.findings.map((f) => `issue: ${f}`);
  const steps: NonNullable<ReconcileResult['steps']> = [{ step: 'issue', verdict: first.verdict }];
  if (first.verdict !== 'applied') {
    // no installation runs before the CMK and the PICC settings are in place
    for (const i of p.installs) steps.push({ step: i.aid, verdict: 'not-applied' });
    return { jobId: job.id, verdict: first.verdict, findings, steps };
  }
  for (const i of p.installs) {
    const install: Job = { ...job, kind: 'install', aid: i.aid, plan: { cmkVersion: p.cmkVersion, keys: i.keys, files: i.files, ...(i.authorisation ? { authorisation: i.authorisation } : {}) } };
    const r = await probeJob(jobs, ctx, install, transport);
    findings.push(...r.findings.map((f) => `${i.aid}: ${f}`));
    steps.push({ step: i.aid, verdict: r.verdict });
  }
  const verdict = steps.every((s) => s.verdict === 'applied') ? 'applied' : 'partial';
  return { jobId: job.id, verdict, findings, steps };
}

export async function probeJob(jobs: StationJobs, ctx: CallerContext, job: Job, transport: Transport): Promise<ReconcileResult> {
  if (job.kind === 'personalise') return probePersonalise(jobs, ctx, job, transport);
  const c = new DesfireClient(transport);
  const db = jobs.db;
  const findings: string[] = [];
  const aesAuth = { method: 'ev2' as const, keyType: 'aes' as const };
  const cmkSource = await jobs.keys.cmkSource(db, job.uid, job.plan.cmkVersion);
  await c.selectApplication(0);
  const cmkOk = await withExported(jobs, ctx, cmkSource, (k) => authenticates(c, 0, k, aesAuth));
  if (job.kind === 'issue') {
    const p = job.plan as IssuePlan;
    if (cmkOk) {
      const ks = await c.getKeySettings();
      const settingsOk = ks.settings === p.piccKeySettings;
      findings.push('CMK authenticates', settingsOk ? 'PICC key settings as planned' : 'PICC key settings differ from the plan');
      return { jobId: job.id, verdict: settingsOk ? 'applied' : 'partial', findings };
    }
    await c.selectApplication(0);
    const factory = await authenticates(c, 0, new Uint8Array(8), { method: 'd40', keyType: 'des' });
    findings.push(factory ? 'factory key still authenticates' : 'neither the CMK nor the factory key authenticates');
    return { jobId: job.id, verdict: factory ? 'not-applied' : 'partial', findings };
  }
  if (!cmkOk) throw new JobError('ERR_JOB_PROBE_FAILED', `the card's CMK does not authenticate: is this card ${job.uid}?`);
  const aids = (await c.getApplicationIds()).map((a) => a.toString(16).toUpperCase().padStart(6, '0'));
  const present = aids.includes(job.aid);
  if (job.kind === 'delete') {
    findings.push(present ? `${job.aid} still on the card` : `${job.aid} absent`);
    return { jobId: job.id, verdict: present ? 'not-applied' : 'applied', findings };
  }
  if (!present) {
    findings.push(`${job.aid} absent`);
    return { jobId: job.id, verdict: 'not-applied', findings };
  }
  const p = job.plan as InstallPlan;
  const app = await jobs.o.tenants.application(job.aid);
  if (!app) throw new JobError('ERR_JOB_NOT_FOUND', `application ${job.aid} is not registered`);
  const auth = app.keyType === '3k3des' ? { method: 'iso' as const, keyType: '3k3des' as const } : aesAuth;
  await c.selectApplication(parseInt(job.aid, 16));
  let complete = true;
  for (const k of p.keys) {
    const v = await c.getKeyVersion(k.keyNo).catch(() => -1);
    if (v !== k.version) {
      findings.push(`key ${k.keyNo} at version ${v}, planned ${k.version}`);
      complete = false;
      continue;
    }
    const ok = await withExported(jobs, ctx, await jobs.keys.appSource(db, app, job.uid, k.keyNo, k.version), (key) => authenticates(c, k.keyNo, key, auth));
    findings.push(`key ${k.keyNo} v${k.version} ${ok ? 'authenticates' : 'does not authenticate'}`);
    if (!ok) complete = false;
  }
  if (complete) {
    const amk = p.keys.find((k) => k.keyNo === 0)!;
    await withExported(jobs, ctx, await jobs.keys.appSource(db, app, job.uid, 0, amk.version), (key) => c.authenticate(0, key, auth));
    const files = await c.getFileIds();
    const missing = p.files.filter((f) => !files.includes(f));
    if (missing.length) {
      findings.push(`files missing: ${missing.join(', ')}`);
      complete = false;
    } else findings.push('every file present');
  }
  return { jobId: job.id, verdict: complete ? 'applied' : 'partial', findings };
}

/** Probe, then record the verdict in one transaction (the mapping only for 'applied'). */
export async function reconcileJob(jobs: StationJobs, ctx: CallerContext, jobId: string, transport: Transport): Promise<ReconcileResult> {
  const job = await jobs.get(jobId);
  if (job.state !== 'unknown' && job.state !== 'failed' && job.state !== 'claimed') throw new JobError('ERR_JOB_STATE', `job ${jobId} is ${job.state}: nothing to reconcile`);
  const result = await probeJob(jobs, ctx, job, transport);
  await jobs.db.transaction().execute(async (tx: Kysely<Database>) => {
    const u = await tx
      .updateTable('station_jobs')
      .set({ state: 'reconciled', outcome: JSON.stringify({ source: 'probe', ...result }), updated_at: Date.now() })
      .where('id', '=', job.id)
      .where('state', '=', job.state)
      .executeTakeFirst();
    if ((u.numUpdatedRows ?? 0n) === 0n) throw new JobError('ERR_JOB_STATE', `job ${jobId} changed state concurrently`);
    if (job.kind === 'personalise') {
      // the verified steps recorded; the pending keys of the steps found not applied discarded
      const steps = result.steps ?? [];
      const issued = steps.some((s) => s.step === 'issue' && s.verdict === 'applied');
      const applied: PersonaliseSteps = { issue: issued, aids: issued ? steps.filter((s) => s.step !== 'issue' && s.verdict === 'applied').map((s) => s.step) : [] };
      if (issued) await jobs.apply(tx, job, applied);
      const absent = steps.filter((s) => s.verdict === 'not-applied').map((s) => (s.step === 'issue' ? '000000' : s.step));
      if (absent.length) await tx.deleteFrom('card_key_blobs').where('uid', '=', job.uid).where('job_id', '=', job.id).where('state', '=', 'pending').where('aid', 'in', absent).execute();
    } else if (result.verdict === 'applied') await jobs.apply(tx, job);
    else if (result.verdict === 'not-applied' && job.kind !== 'delete') await tx.deleteFrom('card_key_blobs').where('uid', '=', job.uid).where('job_id', '=', job.id).where('state', '=', 'pending').execute();
  });
  await jobs.auditReconciled(ctx, job, result);
  return result;
}

// ---- operator-requested reconciliation --------------------------------------------------------
// An operator designates a station to probe the card of a job whose outcome is unknown
// (POST /v1/jobs/:id/reconcile); the station, when that card is in front of it, asks which
// reconciliations it was asked for (POST /v1/station/reconcile {uid}) and runs each through the
// remote-mode relay (op 'reconcile': the CMS probes, the station only relays APDUs). The request
// lives in the session store (memory or Redis, shared by every CMS process) for a day; nothing is
// decided until the probe has run.

/** The part of the session store a reconcile request needs. */
export interface RequestStore {
  setValue(key: string, value: string, ttlMs: number): Promise<void>;
  getValue(key: string): Promise<string | undefined>;
}

/** For a CMS whose rate limiter is not a session store (tests): requests in this process's memory. */
export class MemoryRequestStore implements RequestStore {
  private readonly m = new Map<string, { v: string; until: number }>();
  async setValue(key: string, value: string, ttlMs: number): Promise<void> {
    this.m.set(key, { v: value, until: Date.now() + ttlMs });
  }
  async getValue(key: string): Promise<string | undefined> {
    const e = this.m.get(key);
    if (e && e.until <= Date.now()) this.m.delete(key);
    return e && e.until > Date.now() ? e.v : undefined;
  }
}

export const RECONCILE_REQUEST_TTL_MS = 24 * 3600_000;
const requestKey = (jobId: string) => `reconcile:request:${jobId}`;
/** Jobs whose outcome a probe settles: 'unknown' (claimed, no receipt) and 'failed'. A claimed job may still get its receipt. */
const OPEN: readonly JobState[] = ['unknown', 'failed'];

/** The station may probe the job's card: active, holding 'issue' (issue jobs) or 'install' on the job's AID (personalise: both, on every AID of the plan). */
export async function assertMayProbe(jobs: StationJobs, readerId: string, job: Job): Promise<void> {
  const readers = jobs.o.readers;
  const reader = await readers.get(readerId);
  if (reader?.state !== 'active') throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId} is ${reader?.state ?? 'unknown'}`);
  const roles = await readers.roles(readerId);
  const mayInstall = (aid: string) => roles.some((r) => r.aid === aid && r.operations.includes('install'));
  const ok =
    job.kind === 'issue'
      ? roles.some((r) => r.operations.includes('issue'))
      : job.kind === 'personalise'
        ? roles.some((r) => r.operations.includes('issue')) && (job.plan as PersonalisePlan).installs.every((i) => mayInstall(i.aid))
        : mayInstall(job.aid);
  if (!ok) throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId} may not probe ${job.kind} jobs${job.kind === 'issue' ? '' : ` of ${job.aid}`}`);
}

export interface ReconcileRequest {
  jobId: string;
  readerId: string;
  uid: string;
  kind: Job['kind'];
  aid: string;
  expiresAt: number;
}

/** An operator asks `readerId` to probe the card of job `jobId` (audited); the verdict comes from the probe only. */
export async function requestReconcile(jobs: StationJobs, store: RequestStore, ctx: CallerContext, jobId: string, readerId: string): Promise<ReconcileRequest> {
  const job = await jobs.get(jobId);
  if (!OPEN.includes(job.state)) throw new JobError('ERR_JOB_STATE', `job ${jobId} is ${job.state}: only unknown or failed jobs are reconciled${job.state === 'claimed' ? ' (a claimed job may still get its receipt; it becomes unknown at its expiry)' : ''}`);
  await assertMayProbe(jobs, readerId, job);
  await store.setValue(requestKey(job.id), readerId, RECONCILE_REQUEST_TTL_MS);
  await jobs.o.audit.append({ time: new Date().toISOString(), source: 'cms', op: 'job_reconcile', outcome: 'ok', actor: ctx.actor, correlationId: ctx.correlationId, readerId, jobId: job.id, uid: job.uid, aid: job.aid, code: 'requested' });
  return { jobId: job.id, readerId, uid: job.uid, kind: job.kind, aid: job.aid, expiresAt: Date.now() + RECONCILE_REQUEST_TTL_MS };
}

/** Open jobs of a card read per page while looking for requests (StationJobs.list's maximum). */
const REQUESTED_PAGE = 1000;

/**
 * The reconciliations `readerId` was asked to run on card `uid` (still open): every open job of the
 * card is looked at, page after page (a request behind more than a page of older open jobs of the
 * same card is found too).
 */
export async function requestedFor(jobs: StationJobs, store: RequestStore, readerId: string, uid: string): Promise<{ jobId: string; kind: Job['kind']; aid: string }[]> {
  const out: { jobId: string; kind: Job['kind']; aid: string }[] = [];
  for (const state of OPEN) {
    let after: { createdAt: number; id: string } | undefined;
    for (;;) {
      const page = await jobs.list({ uid, state, limit: REQUESTED_PAGE, ...(after ? { after } : {}) });
      for (const j of page) {
        if ((await store.getValue(requestKey(j.id))) === readerId) out.push({ jobId: j.id, kind: j.kind, aid: j.aid });
      }
      if (page.length < REQUESTED_PAGE) break;
      const last = page[page.length - 1]!;
      after = { createdAt: last.createdAt, id: last.id };
    }
  }
  return out;
}

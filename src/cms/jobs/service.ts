// Station jobs, CMS side: plan, hand out (sealed keys + single-use operation token), accept the
// signed receipt and record the CardUID <-> AID <-> key versions mapping in one transaction, or
// reconcile a job whose outcome is unknown by probing the card (./reconcile.ts).
//
//   POST create  → job row 'created' (+ pending wrapped blobs for random keys), token issued
//   claim(token) → token verified and its jti consumed (single use, across CMS processes);
//                  every key sealed to the reader's certificate key (custody audits each release)
//   receipt(jws) → signature checked with the reader's certificate, job/jti/UID and the steps
//                  matched against the plan; success: mapping recorded, blobs 'active',
//                  job 'completed' — all in one transaction; a card refusal: job 'failed'
//   no receipt   → after expiry the job is 'unknown' until reconciled; never guessed
//
// The job types, plans and request checks: ./plan.ts; a receipt's steps matched against the
// plan: ./receipt-check.ts.
import { randomBytes } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { type Kysely, sql } from 'kysely';
import { type Prepared, prepare } from '../delivery/prepared.js';
import { dialectOf } from '../storage/index.js';
import type { ReaderRecipient } from '../../custody/sealed.js';
import type { CallerContext, KeyCustody, KeySource } from '../../custody/types.js';
import { CARD_INSTALLABLE, CardRepository, type Application, type ReaderRepository, type TenantRepository } from '../domain/index.js';
import { applicationPlan, type LayoutApplication } from '../layout/index.js';
import { type NonceStore, type OperationTokens, verifyReceipt } from '../pki/index.js';
import type { Database } from '../storage/index.js';
import { appendEach, type StationAuditEvent, type StationAuditSink } from './audit.js';
import { GroupCommit } from './commit.js';
import { JobError } from './errors.js';
import { type BlobRow, CardKeys, PICC_AID } from './keys.js';
import {
  authorisationDigest,
  checkAidHex,
  checkUidHex,
  type DeletePlan,
  type InstallPlan,
  type IssuePlan,
  type Job,
  type JobKind,
  type JobPlan,
  type JobRequest,
  type JobState,
  MAX_PERSONALISE_AIDS,
  MAX_RECEIPT_STEPS,
  type PersonaliseInstall,
  type PersonalisePlan,
  type PersonaliseSteps,
  personaliseStepCount,
  personaliseSteps,
  piccPlanOf,
} from './plan.js';
import { checkSteps } from './receipt-check.js';
import { RecipientCache } from './recipient.js';
import type { ApplicationWire, JobKeyWire, StationJobWire } from './wire.js';
import { type TxStatement, txStatement } from './writes.js';

export interface StationJobsOptions {
  db: Kysely<Database>;
  custody: KeyCustody;
  tenants: TenantRepository;
  readers: ReaderRepository;
  tokens: OperationTokens;
  nonces: NonceStore;
  audit: StationAuditSink;
  keys?: CardKeys;
  /** Job (and token, and sealed delivery) lifetime in seconds; default 120. */
  ttlSeconds?: number;
  now?: () => number;
  /** Tenant consent (src/cms/consent ConsentService.requireAuthorisation): install/delete run only under an authorisation, named in the plan and the audit entries. */
  authorise?: (q: { tenant: string; aid: string; operation: 'install' | 'delete'; cardUid: string; at: number; issueProfile?: string }, who: { actor: string; correlationId?: string }) => Promise<string>;
  /**
   * The same check for every installation of a personalise job at once (ConsentService.requireAuthorisationForCard:
   * one query; the ids in order, or the refusal naming the first AID not authorised). Used only together with
   * `authorise` (without it no job checks consent); without it a personalise job checks each AID with `authorise`.
   */
  authoriseCard?: (q: { cardUid: string; operation: 'install'; at: number; apps: { tenant: string; aid: string }[]; issueProfile?: string }, who: { actor: string; correlationId?: string }) => Promise<string[]>;
  /** The native SQLite connection behind `db`, if any: hot reads run as statements prepared once. */
  sqlite?: BetterSqlite3.Database;
}

const OPEN_STATES: JobState[] = ['created', 'claimed', 'unknown'];

/** What an issue/personalise job writes to its card, in its own transaction (storeJob). */
interface CardWrite {
  /** No record yet: create it blank. */
  create: boolean;
  randomUid: boolean;
  /** The profile asked (a new card's, or set on the blank record). */
  profile?: string;
}

type Row = Database['station_jobs'];
interface TargetRow {
  reader_state: string;
  role_ops: string | null;
  card_state: string | null;
  picc_key_version: number | null;
  installed: number | null;
  busy_id: string | null;
}

function toJob(r: { [K in keyof Row]: Row[K] }): Job {
  return {
    id: r.id,
    kind: r.kind as JobKind,
    readerId: r.reader_id,
    uid: r.uid,
    aid: r.aid,
    state: r.state as JobState,
    jti: r.jti,
    plan: JSON.parse(r.plan) as JobPlan,
    outcome: r.outcome === null ? null : (JSON.parse(r.outcome) as unknown),
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    updatedAt: Number(r.updated_at),
  };
}

export class StationJobs {
  readonly db: Kysely<Database>;
  readonly keys: CardKeys;
  readonly recipients: RecipientCache;
  private readonly ttl: number;
  private readonly now: () => number;
  /** Job writes of concurrent requests share one commit (one fsync on SQLite). */
  private readonly commits: GroupCommit;
  private readonly q: {
    job: Prepared<[string], Row>;
    /** A reader's state and certificate (the sealing recipient, the receipt's verification key). */
    reader: Prepared<[string], { state: string; cert_pem: string | null }>;
    /** Every role of a reader (personalise: issue + install on each AID). */
    roles: Prepared<[string], { aid: string; key_no: number; operations: string }>;
    card: Prepared<[string], { state: string; profile: string | null }>;
    app: Prepared<[string], Database['applications']>;
    /** An open (unexpired created/claimed) or unreconciled ('unknown') job of a card. */
    busy: Prepared<[string, number], { id: string }>;
  };
  /**
   * The reads of an install/delete create as one lookup: the reader's state, its role's
   * operations on (AID, key 0), the card's state and CMK version, whether the application is
   * on the card, and an open or unreconciled job of the card. No row: the reader is unknown.
   */
  private readonly target: Prepared<[string, string, string, string, string, string, number], TargetRow>;
  /** The statements of the job-write transactions, compiled (and on SQLite prepared) once. */
  private readonly w: {
    /** Under the transaction: an open job of the card (created/claimed, unexpired). */
    open: TxStatement<[string, number], { id: string }>;
    insertJob: TxStatement<[string, string, string, string, string, string, string, string, number, number, number], unknown>;
    storeBlob: TxStatement<[string, string, number, number, string, string, string, number], unknown>;
    setState: TxStatement<[string, number, string, string], unknown>;
    setOutcome: TxStatement<[string, string, number, string, string], unknown>;
    activateBlobs: TxStatement<[string, string], unknown>;
    /** personalise receipt: the blank card issued with its CMK version (no row: it is no longer blank). */
    issueCard: TxStatement<[number, number, string], unknown>;
    /** personalise receipt: one application on the card (no row: already recorded). */
    cardApp: TxStatement<[string, string, number], unknown>;
    cardKey: TxStatement<[string, string, number, number, number], unknown>;
    /** A card seen for the first time, created blank with its job (CardRepository.createBlank's row, with the profile asked or none). */
    newCard: TxStatement<[string, number, string | null, number, number], unknown>;
    /** An issue/personalise job's profile onto a blank card's record (CardRepository.setProfile's write, blank cards only). */
    blankProfile: TxStatement<[string, number, string], unknown>;
    cardState: TxStatement<[string], { state: string }>;
  };

  constructor(readonly o: StationJobsOptions) {
    this.db = o.db;
    this.keys = o.keys ?? new CardKeys(o.custody);
    this.recipients = new RecipientCache(o.readers);
    this.ttl = o.ttlSeconds ?? 120;
    this.now = o.now ?? Date.now;
    this.commits = new GroupCommit(o.db, o.sqlite ? { native: o.sqlite } : {});
    this.q = {
      job: prepare(o.db, 1, (id) => o.db.selectFrom('station_jobs').selectAll().where('id', '=', id), o.sqlite),
      reader: prepare(o.db, 1, (id) => o.db.selectFrom('readers').select(['state', 'cert_pem']).where('id', '=', id), o.sqlite),
      roles: prepare(o.db, 1, (id) => o.db.selectFrom('reader_roles').select(['aid', 'key_no', 'operations']).where('reader_id', '=', id), o.sqlite),
      card: prepare(o.db, 1, (uid) => o.db.selectFrom('cards').select(['state', 'profile']).where('uid', '=', uid), o.sqlite),
      app: prepare(o.db, 1, (aid) => o.db.selectFrom('applications').selectAll().where('aid', '=', aid), o.sqlite),
      busy: prepare(
        o.db,
        2,
        (uid, now) =>
          o.db
            .selectFrom('station_jobs')
            .select('id')
            .where('uid', '=', uid)
            .where((eb) => eb.or([eb('state', '=', 'unknown'), eb.and([eb('state', 'in', ['created', 'claimed']), eb('expires_at', '>', now as unknown as number)])]))
            .limit(1),
        o.sqlite,
      ),
    };
    this.target = prepare(
      o.db,
      7,
      (reader, roleAid, cardUid, keysUid, keysAid, busyUid, now) =>
        o.db
          .selectFrom('readers as r')
          .leftJoin('cards as c', (j) => j.on('c.uid', '=', cardUid))
          .where('r.id', '=', reader)
          .select((eb) => [
            'r.state as reader_state',
            eb.selectFrom('reader_roles as rr').select('rr.operations').whereRef('rr.reader_id', '=', 'r.id').where('rr.aid', '=', roleAid).where('rr.key_no', '=', 0).limit(1).as('role_ops'),
            'c.state as card_state',
            'c.picc_key_version as picc_key_version',
            eb.selectFrom('card_keys as k').select(sql<number>`1`.as('one')).where('k.uid', '=', keysUid).where('k.aid', '=', keysAid).limit(1).as('installed'),
            eb
              .selectFrom('station_jobs as j')
              .select('j.id')
              .where('j.uid', '=', busyUid)
              .where((w) => w.or([w('j.state', '=', 'unknown'), w.and([w('j.state', 'in', ['created', 'claimed']), w('j.expires_at', '>', now as unknown as number)])]))
              .limit(1)
              .as('busy_id'),
          ]),
      o.sqlite,
    );
    const db = o.db;
    const n = o.sqlite;
    this.w = {
      open: txStatement(db, 2, (uid, now) => db.selectFrom('station_jobs').select('id').where('uid', '=', uid).where('state', 'in', OPEN_STATES).where('expires_at', '>', now as unknown as number).limit(1), n),
      insertJob: txStatement(
        db,
        11,
        (id, kind, reader, uid, aid, state, jti, plan, created, expires, updated) =>
          db.insertInto('station_jobs').values({ id, kind, reader_id: reader, uid, aid, state, jti, plan, outcome: null, created_at: created as unknown as number, expires_at: expires as unknown as number, updated_at: updated as unknown as number }),
        n,
      ),
      // a retry replaces an earlier pending blob (as CardKeys.storeBlobs)
      storeBlob: txStatement(
        db,
        8,
        (uid, aid, keyNo, version, kek, blob, jobId, created) =>
          db
            .insertInto('card_key_blobs')
            .values({ uid, aid, key_no: keyNo as unknown as number, key_version: version as unknown as number, kek, blob, state: 'pending', job_id: jobId, created_at: created as unknown as number })
            .onConflict((oc) => oc.columns(['uid', 'aid', 'key_no', 'key_version']).doUpdateSet((eb) => ({ kek: eb.ref('excluded.kek'), blob: eb.ref('excluded.blob'), state: 'pending', job_id: eb.ref('excluded.job_id'), created_at: eb.ref('excluded.created_at') }))),
        n,
      ),
      setState: txStatement(db, 4, (state, now, id, from) => db.updateTable('station_jobs').set({ state, updated_at: now as unknown as number }).where('id', '=', id).where('state', '=', from), n),
      setOutcome: txStatement(db, 5, (state, outcome, now, id, from) => db.updateTable('station_jobs').set({ state, outcome, updated_at: now as unknown as number }).where('id', '=', id).where('state', '=', from), n),
      // by the card first: the primary key's prefix (no index on job_id; a scan per receipt grew with the card count)
      activateBlobs: txStatement(db, 2, (uid, jobId) => db.updateTable('card_key_blobs').set({ state: 'active' }).where('uid', '=', uid).where('job_id', '=', jobId).where('state', '=', 'pending'), n),
      // what CardRepository.transition(uid, 'issued') and recordInstallation write, as statements
      // compiled once (the job's plan was checked against the registered application at create)
      issueCard: txStatement(
        db,
        3,
        (version, now, uid) => db.updateTable('cards').set({ state: 'issued', picc_key_version: version as unknown as number, updated_at: now as unknown as number }).where('uid', '=', uid).where('state', '=', 'blank'),
        n,
      ),
      cardApp: txStatement(
        db,
        3,
        (uid, aid, now) => db.insertInto('card_applications').values({ uid, aid, installed_at: now as unknown as number }).onConflict((oc) => oc.columns(['uid', 'aid']).doNothing()),
        n,
      ),
      cardKey: txStatement(
        db,
        5,
        (uid, aid, keyNo, version, now) => db.insertInto('card_keys').values({ uid, aid, key_no: keyNo as unknown as number, key_version: version as unknown as number, updated_at: now as unknown as number }),
        n,
      ),
      newCard: txStatement(
        db,
        5,
        (uid, randomUid, profile, created, updated) =>
          db
            .insertInto('cards')
            .values({ uid, state: 'blank', random_uid: randomUid as unknown as number, picc_key_version: 0, created_at: created as unknown as number, updated_at: updated as unknown as number, profile })
            .onConflict((oc) => oc.column('uid').doNothing()),
        n,
      ),
      blankProfile: txStatement(db, 3, (profile, now, uid) => db.updateTable('cards').set({ profile, updated_at: now as unknown as number }).where('uid', '=', uid).where('state', '=', 'blank'), n),
      cardState: txStatement(db, 1, (uid) => db.selectFrom('cards').select('state').where('uid', '=', uid), n),
    };
  }

  private async refuse(ctx: CallerContext, op: 'job_create' | 'job_claim' | 'job_receipt', e: unknown, d: { readerId?: string; jobId?: string; uid?: string; aid?: string }): Promise<never> {
    const code = (e as { code?: string }).code ?? 'ERR_INTERNAL';
    await this.o.audit.append({ time: new Date(this.now()).toISOString(), source: 'cms', op, outcome: 'refused', actor: ctx.actor, correlationId: ctx.correlationId, ...d, code });
    throw e;
  }

  async get(id: string): Promise<Job> {
    if (typeof id !== 'string' || id.length > 64) throw new JobError('ERR_JOB_NOT_FOUND', 'job not found');
    const r = await this.q.job.first(id);
    if (!r) throw new JobError('ERR_JOB_NOT_FOUND', `job ${id} not found`);
    return toJob(r);
  }

  /**
   * Jobs in a stable order, (created_at, id) ascending, at most `limit` (≤ 1000) after the job
   * `after` names (keyset paging: a job is read once however many are created meanwhile; the
   * caller's cursor is the last job it examined). `visibleTo`: only jobs that may concern these
   * AIDs (install/delete of one of them, or a personalise job; the caller projects).
   */
  async list(filter: { uid?: string; state?: JobState; limit?: number; after?: { createdAt: number; id: string }; visibleTo?: { aids: readonly string[] } } = {}): Promise<Job[]> {
    let q = this.db.selectFrom('station_jobs').selectAll();
    if (filter.uid) q = q.where('uid', '=', checkUidHex(filter.uid));
    if (filter.state) q = q.where('state', '=', filter.state);
    const v = filter.visibleTo;
    if (v) q = q.where((eb) => eb.or([eb('kind', '=', 'personalise'), ...(v.aids.length ? [eb.and([eb('kind', 'in', ['install', 'delete']), eb('aid', 'in', [...v.aids])])] : [])]));
    const a = filter.after;
    // one shape on both dialects (a row value comparison: SQLite >= 3.15, PostgreSQL)
    if (a) q = q.where((eb) => eb(eb.refTuple('created_at', 'id'), '>', eb.tuple(a.createdAt, a.id)));
    return (await q.orderBy('created_at').orderBy('id').limit(Math.min(filter.limit ?? 100, 1000)).execute()).map(toJob);
  }

  /**
   * A registered application, read anew on every call (a re-registered layout is seen at once);
   * its layout JSON parsed once per stored text (TenantRepository.application's conversion).
   */
  private async application(aid: string): Promise<Application> {
    const r = await this.q.app.first(aid);
    if (!r) throw new JobError('ERR_JOB_NOT_FOUND', `application ${aid} is not registered`);
    const hit = this.apps.get(aid);
    if (hit && hit.row.definition === r.definition && hit.row.tenant_id === r.tenant_id && hit.row.key_type === r.key_type && Number(hit.row.key_count) === Number(r.key_count) && hit.row.name === r.name && hit.row.layout_name === r.layout_name && Number(hit.row.created_at) === Number(r.created_at)) return hit.app;
    const app: Application = { aid: r.aid, tenantId: r.tenant_id, name: r.name, keyType: r.key_type, keyCount: Number(r.key_count), layoutName: r.layout_name, definition: JSON.parse(r.definition) as Application['definition'], createdAt: Number(r.created_at) };
    if (this.apps.size >= 4096) this.apps.clear();
    this.apps.set(aid, { row: r, app });
    return app;
  }

  private readonly apps = new Map<string, { row: Database['applications']; app: Application }>();

  /** The reader's sealing recipient and certificate, read with one prepared statement. */
  private async recipientOf(readerId: string): Promise<{ pem: string; recipient: ReaderRecipient }> {
    return this.recipients.fromPem(readerId, (await this.q.reader.first(readerId))?.cert_pem);
  }

  /**
   * A reader (station) asks for a job. Checks its role, the card's state, no other open job.
   * Returns the job and its single-use operation token, to be claimed (by this reader) with claim().
   */
  async create(ctx: CallerContext, readerId: string, req: JobRequest): Promise<{ job: Job; token: string }> {
    return (await this.createChecked(ctx, readerId, req, false)) as { job: Job; token: string };
  }

  /**
   * create() and claim() in one for the station that executes the job itself: the job is stored
   * 'claimed' with its keys sealed to `readerId` in the answer. No operation token is issued (no
   * one else could redeem it; the job's jti, which the receipt must name, is a fresh nonce), so
   * there is no second request, token sign/verify, commit or audit entry ('job_create' with
   * claimed=true instead of 'job_create' + 'job_claim').
   */
  async createClaimed(ctx: CallerContext, readerId: string, req: JobRequest): Promise<{ job: Job; wire: StationJobWire }> {
    return (await this.createChecked(ctx, readerId, req, true)) as { job: Job; wire: StationJobWire };
  }

  private async createChecked(ctx: CallerContext, readerId: string, req: JobRequest, claim: boolean): Promise<{ job: Job; token?: string; wire?: StationJobWire }> {
    const d = { readerId, uid: typeof req?.uid === 'string' ? req.uid.toUpperCase() : undefined, aid: 'aid' in (req ?? {}) ? String((req as { aid: unknown }).aid).toUpperCase() : undefined };
    try {
      return await this.createUnchecked(ctx, readerId, req, claim);
    } catch (e) {
      return this.refuse(ctx, 'job_create', e, Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined)));
    }
  }

  private async authoriseStation(readerId: string, kind: JobKind, aid?: string): Promise<void> {
    const reader = await this.o.readers.get(readerId);
    if (!reader || reader.state !== 'active') throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId} is not active`);
    if (kind === 'issue') {
      const roles = await this.o.readers.roles(readerId);
      if (!roles.some((r) => r.operations.includes('issue'))) throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId} has no role with the issue operation`);
      return;
    }
    try {
      await this.o.readers.authorise(readerId, { aid: aid!, keyNo: 0, operation: 'install' });
    } catch (e) {
      throw new JobError('ERR_JOB_FORBIDDEN', (e as Error).message);
    }
  }

  private async createUnchecked(ctx: CallerContext, readerId: string, req: JobRequest, claim: boolean): Promise<{ job: Job; token?: string; wire?: StationJobWire }> {
    if (!req || typeof req !== 'object' || !['issue', 'install', 'delete', 'personalise'].includes(req.kind)) throw new JobError('ERR_JOB_BAD_INPUT', "kind must be 'issue', 'install', 'delete' or 'personalise'");
    if (req.kind === 'personalise') return this.createPersonalise(ctx, readerId, req, claim);
    const uid = checkUidHex(req.uid);
    const aid = req.kind === 'issue' ? PICC_AID : checkAidHex(req.aid);
    const piccPlan = req.kind === 'issue' ? piccPlanOf(req) : undefined;
    // install/delete: reader, role, card, installed keys and open job in one prepared lookup
    const target = req.kind === 'issue' ? undefined : await this.target.first(readerId, aid, uid, uid, aid, uid, this.now());
    if (req.kind === 'issue') await this.authoriseStation(readerId, req.kind, aid);
    else {
      if (!target || target.reader_state !== 'active') throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId} is not active`);
      if (!(target.role_ops ? (JSON.parse(target.role_ops) as string[]) : []).includes('install')) throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId} has no role for install on ${aid} key 0`);
    }
    const app = req.kind === 'issue' ? undefined : await this.application(aid);
    if (app && app.definition.keySettings.changeKey.kind !== 'amk' && app.definition.keySettings.changeKey.kind !== 'self')
      throw new JobError('ERR_JOB_UNSUPPORTED', `application ${aid}: stations install only changeKey amk or self`);

    let cmkVersion = 0;
    let newCard: CardWrite | undefined;
    if (req.kind === 'issue') {
      newCard = await this.blankCard(uid, piccPlan!.randomUid, req.profile);
    } else {
      if (target!.card_state === null) throw new JobError('ERR_JOB_NOT_FOUND', `card ${uid} not found`);
      if (!(CARD_INSTALLABLE as readonly string[]).includes(target!.card_state)) throw new JobError('ERR_JOB_CARD_STATE', `card ${uid} is ${target!.card_state}`);
      cmkVersion = Number(target!.picc_key_version);
      const installed = target!.installed !== null;
      if (req.kind === 'install' && installed) throw new JobError('ERR_JOB_CARD_STATE', `application ${aid} is already on card ${uid}`);
      if (req.kind === 'delete' && !installed) throw new JobError('ERR_JOB_CARD_STATE', `application ${aid} is not on card ${uid}`);
    }

    const authorisation = app && this.o.authorise ? await this.o.authorise({ tenant: app.tenantId, aid, operation: req.kind as 'install' | 'delete', cardUid: uid, at: this.now() }, { actor: ctx.actor, correlationId: ctx.correlationId }) : undefined;
    const now = this.now();
    const id = `job_${randomBytes(12).toString('base64url')}`;
    const token = claim ? { token: undefined, jti: randomBytes(16).toString('base64url'), expiresAt: Math.floor(now / 1000) + this.ttl } : await this.o.tokens.issue({ readerId, jobId: id, ttlSeconds: this.ttl, now: new Date(now) });
    // install/delete: the open job read by the lookup above (re-checked under the transaction)
    const busy = target ? (target.busy_id === null ? undefined : { id: target.busy_id }) : await this.q.busy.first(uid, now);
    if (busy) throw new JobError('ERR_JOB_BUSY', `card ${uid} has an open or unreconciled job (${busy.id})`);
    // custody first (it audits, possibly into this database), then one transaction for the rows
    let plan: JobPlan;
    let blobs: BlobRow[] = [];
    if (req.kind === 'issue') {
      const cmk = await this.keys.planCmk(ctx, uid, id, now);
      plan = { cmkVersion: cmk.version, piccKeySettings: piccPlan!.keySettings, randomUid: piccPlan!.randomUid };
      blobs = [cmk.blob];
    } else if (req.kind === 'install') {
      const k = await this.keys.planInstall(ctx, app!, uid, id, now);
      plan = { cmkVersion, keys: k.keys, files: app!.definition.files.map((f) => f.no), ...(authorisation ? { authorisation } : {}), tenant: app!.tenantId };
      blobs = k.blobs;
    } else {
      plan = { cmkVersion, ...(authorisation ? { authorisation } : {}), tenant: app!.tenantId };
    }
    const state: JobState = claim ? 'claimed' : 'created';
    const row = { id, kind: req.kind, reader_id: readerId, uid, aid, state, jti: token.jti, plan: JSON.stringify(plan), outcome: null, created_at: now, expires_at: token.expiresAt * 1000, updated_at: now };
    // claimed at once: every key sealed before the row is written (the random keys from the
    // blobs planned above, not yet stored); a refused write hands nothing out
    const wire = claim ? await this.sealJob(ctx, toJob(row), blobs, app) : undefined;
    const job = await this.storeJob(row, blobs, newCard);
    // an install/delete job is one tenant's: its entries carry the tenant (its view selects by it)
    await this.o.audit.append({ time: new Date(now).toISOString(), source: 'cms', op: 'job_create', outcome: 'ok', actor: ctx.actor, correlationId: ctx.correlationId, readerId, jobId: id, uid, ...(app ? { tenant: app.tenantId } : {}), aid, ...(authorisation ? { authorisation } : {}), ...(claim ? { claimed: true } : {}) });
    return token.token !== undefined ? { job, token: token.token } : { job, wire: wire! };
  }

  /**
   * A new job's row and its pending key blobs, in one (group) commit; `newCard`: the card, first
   * seen by this job, is created blank in the same transaction (no commit and fsync of its own).
   */
  private storeJob(row: Row, blobs: readonly BlobRow[], newCard?: CardWrite): Promise<Job> {
    const { uid, created_at: now } = row;
    return this.commits.run(async (tx) => {
      // re-checked under the transaction: two stations racing for one card get one job
      if (dialectOf(tx) === 'postgres') await sql`select pg_advisory_xact_lock(hashtext(${'station-card:' + uid}))`.execute(tx);
      const again = await this.w.open.first(tx, uid, now);
      if (again) throw new JobError('ERR_JOB_BUSY', `card ${uid} has an open job (${again.id})`);
      if (newCard) {
        // a new card: created with the profile asked; a card that exists (seen blank, or created
        // meanwhile): the profile asked set while it is blank
        const created = newCard.create ? await this.w.newCard.run(tx, uid, newCard.randomUid ? 1 : 0, newCard.profile ?? null, now, now) : 0;
        if (created === 0 && newCard.profile !== undefined) await this.w.blankProfile.run(tx, newCard.profile, now, uid);
        const c = await this.w.cardState.first(tx, uid);
        if (c?.state !== 'blank') throw new JobError('ERR_JOB_CARD_STATE', `card ${uid} is ${c?.state ?? 'unknown'}: only blank cards are issued`);
      }
      for (const b of blobs) await this.w.storeBlob.run(tx, b.uid, b.aid, b.key_no, b.key_version, b.kek, b.blob, b.job_id, b.created_at);
      await this.w.insertJob.run(tx, row.id, row.kind, row.reader_id, row.uid, row.aid, row.state, row.jti, row.plan, row.created_at, row.expires_at, row.updated_at);
      return toJob(row);
    });
  }

  /**
   * The card to issue: refused unless blank (or not seen yet). Reads only: what the job must write
   * to the card — create it blank (first seen), with the profile asked, or set the profile asked on
   * the blank record — is written by storeJob in the job's own transaction, so a refused job (bad
   * input, role, consent, ISO002, busy…) leaves the cards table as it was. The tenants' consent
   * checks decide on the profile asked (`issueProfile`) for such a card.
   */
  private async blankCard(uid: string, randomUid: boolean, profile: string | undefined): Promise<CardWrite | undefined> {
    const seen = await this.q.card.first(uid);
    if (seen && seen.state !== 'blank') throw new JobError('ERR_JOB_CARD_STATE', `card ${uid} is ${seen.state}: only blank cards are issued`);
    if (!seen) return { create: true, randomUid, ...(profile !== undefined ? { profile } : {}) };
    if (profile === undefined || seen.profile === profile) return undefined;
    return { create: false, randomUid, profile };
  }

  /**
   * A personalise job: the issue of a blank card and the installation of every listed AID, in
   * ONE job. Every check of the separate jobs, per step: the station's role holds 'issue' and
   * 'install' on (AID, key 0) of EVERY AID (one missing refuses the whole job, nothing written),
   * each application registered and installable by a station, each tenant's authorisation
   * (consent) named in the plan, the card blank with no open job. Every key planned (one custody
   * 'get_keys' for all the masters), sealed in ONE sealMany when claimed; one row, one commit,
   * one 'job_create' entry naming every step.
   */
  private async createPersonalise(ctx: CallerContext, readerId: string, req: Extract<JobRequest, { kind: 'personalise' }>, claim: boolean): Promise<{ job: Job; token?: string; wire?: StationJobWire }> {
    const uid = checkUidHex(req.uid);
    if (!Array.isArray(req.aids) || req.aids.length > MAX_PERSONALISE_AIDS) throw new JobError('ERR_JOB_BAD_INPUT', `aids must be a list of at most ${MAX_PERSONALISE_AIDS} AIDs`);
    const aids = req.aids.map((a) => checkAidHex(a));
    if (new Set(aids).size !== aids.length) throw new JobError('ERR_JOB_BAD_INPUT', 'aids must not repeat an AID');
    const piccPlan = piccPlanOf(req);
    // the station: active, 'issue' on some role, 'install' on (AID, key 0) of every AID
    const [reader, rows] = await Promise.all([this.q.reader.first(readerId), this.q.roles.all(readerId)]);
    if (!reader || reader.state !== 'active') throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId} is not active`);
    const roles = rows.map((r) => ({ aid: r.aid, keyNo: Number(r.key_no), operations: JSON.parse(r.operations) as string[] }));
    if (!roles.some((r) => r.operations.includes('issue'))) throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId} has no role with the issue operation`);
    for (const aid of aids)
      if (!roles.some((r) => r.aid === aid && r.keyNo === 0 && r.operations.includes('install'))) throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId} has no role for install on ${aid} key 0`);
    const apps = await Promise.all(aids.map((aid) => this.application(aid)));
    for (const app of apps)
      if (app.definition.keySettings.changeKey.kind !== 'amk' && app.definition.keySettings.changeKey.kind !== 'self')
        throw new JobError('ERR_JOB_UNSUPPORTED', `application ${app.aid}: stations install only changeKey amk or self`);
    // the one receipt must be able to list every step
    const steps = personaliseStepCount(apps, piccPlan.randomUid);
    if (steps > MAX_RECEIPT_STEPS) throw new JobError('ERR_JOB_UNSUPPORTED', `a personalise job of these ${aids.length} applications has ${steps} card steps, more than a receipt lists (${MAX_RECEIPT_STEPS}): personalise fewer and install the others with install jobs`);
    // ISO002 (no master serving two of the AIDs) decided before consent and custody: a refused job writes nothing
    CardKeys.checkIsolation(apps);
    const newCard = await this.blankCard(uid, piccPlan.randomUid, req.profile);
    const busy = await this.q.busy.first(uid, this.now());
    if (busy) throw new JobError('ERR_JOB_BUSY', `card ${uid} has an open or unreconciled job (${busy.id})`);
    // each tenant's authorisation for its installation: all decided in one query when the consent
    // service offers it (else concurrently, one check per AID: their audit entries share a commit)
    const who = { actor: ctx.actor, correlationId: ctx.correlationId };
    const at = this.now();
    // the profile this job gives the card (written with the job): what standing policies match
    const issueProfile = newCard?.profile !== undefined ? { issueProfile: newCard.profile } : {};
    const authorisations: (string | undefined)[] = !this.o.authorise
      ? apps.map(() => undefined)
      : this.o.authoriseCard && apps.length > 0
        ? await this.o.authoriseCard({ cardUid: uid, operation: 'install', at, apps: apps.map((app) => ({ tenant: app.tenantId, aid: app.aid })), ...issueProfile }, who)
        : await Promise.all(apps.map((app) => this.o.authorise!({ tenant: app.tenantId, aid: app.aid, operation: 'install', cardUid: uid, at, ...issueProfile }, who)));
    if (this.o.authorise && (authorisations.length !== apps.length || !authorisations.every((a) => typeof a === 'string'))) throw new Error('the consent check answered no authorisation for an application');
    const now = this.now();
    const id = `job_${randomBytes(12).toString('base64url')}`;
    const token = claim ? { token: undefined, jti: randomBytes(16).toString('base64url'), expiresAt: Math.floor(now / 1000) + this.ttl } : await this.o.tokens.issue({ readerId, jobId: id, ttlSeconds: this.ttl, now: new Date(now) });
    // custody first (it audits, possibly into this database), then one transaction for the rows
    // the card's random keys (CMK + random application keys) in one audited custody call
    const { cmk, installs: planned } = await this.keys.planPersonalise(ctx, apps, uid, id, now);
    const installs: PersonaliseInstall[] = apps.map((app, i) => ({ aid: app.aid, tenant: app.tenantId, keys: planned[i]!.keys, files: app.definition.files.map((f) => f.no), ...(authorisations[i] ? { authorisation: authorisations[i] } : {}) }));
    const digest = authorisationDigest(installs);
    const plan: PersonalisePlan = { cmkVersion: cmk.version, piccKeySettings: piccPlan.keySettings, randomUid: piccPlan.randomUid, installs, ...(digest ? { authorisation: digest } : {}) };
    const blobs = [cmk.blob, ...planned.flatMap((p) => p.blobs)];
    const state: JobState = claim ? 'claimed' : 'created';
    const row = { id, kind: 'personalise', reader_id: readerId, uid, aid: PICC_AID, state, jti: token.jti, plan: JSON.stringify(plan), outcome: null, created_at: now, expires_at: token.expiresAt * 1000, updated_at: now };
    const wire = claim ? await this.sealJob(ctx, toJob(row), blobs, apps) : undefined;
    const job = await this.storeJob(row, blobs, newCard);
    // the card's entry (every step) and one per installation for its tenant's view
    const created: StationAuditEvent = { time: new Date(now).toISOString(), source: 'cms', op: 'job_create', outcome: 'ok', actor: ctx.actor, correlationId: ctx.correlationId, readerId, jobId: id, uid, ...(claim ? { claimed: true } : {}) };
    await this.appendAll([
      { ...created, aid: PICC_AID, steps: personaliseSteps(plan), ...(digest ? { authorisation: digest, authorisations: installs.map((i) => i.authorisation ?? '-') } : {}) },
      ...installs.map((inst) => ({ ...created, tenant: inst.tenant!, aid: inst.aid, steps: [`install:${inst.aid}`], ...(inst.authorisation ? { authorisation: inst.authorisation } : {}) })),
    ]);
    return token.token !== undefined ? { job, token: token.token } : { job, wire: wire! };
  }

  /** The station redeems the token: the job with every key sealed to it. Single use. */
  async claim(ctx: CallerContext, readerId: string, jobId: string, token: string): Promise<StationJobWire> {
    try {
      return await this.claimUnchecked(ctx, readerId, jobId, token);
    } catch (e) {
      return this.refuse(ctx, 'job_claim', e, { readerId, jobId: String(jobId).slice(0, 64) });
    }
  }

  private async claimUnchecked(ctx: CallerContext, readerId: string, jobId: string, token: string): Promise<StationJobWire> {
    const job = await this.get(jobId);
    if (job.readerId !== readerId) throw new JobError('ERR_JOB_NOT_FOUND', `job ${jobId} not found`);
    // the token first: a replay is told as such, whatever the job's state
    await this.o.tokens.verify(token, { readerId, jobId, now: new Date(this.now()) }, this.o.nonces);
    if (job.state !== 'created') throw new JobError('ERR_JOB_STATE', `job ${jobId} is ${job.state}`);
    if (job.expiresAt <= this.now()) throw new JobError('ERR_JOB_EXPIRED', `job ${jobId} has expired`);
    const wire = await this.sealJob(ctx, job);
    await this.commits.run(async (tx) => {
      if ((await this.w.setState.run(tx, 'claimed', this.now(), job.id, 'created')) === 0) throw new JobError('ERR_JOB_STATE', `job ${jobId} changed state concurrently`);
    });
    const tenant = (job.plan as DeletePlan).tenant;
    await this.o.audit.append({ time: new Date(this.now()).toISOString(), source: 'cms', op: 'job_claim', outcome: 'ok', actor: ctx.actor, correlationId: ctx.correlationId, readerId, jobId, uid: job.uid, ...(tenant ? { tenant } : {}), aid: job.aid });
    return wire;
  }

  /** The job as the station gets it: every key sealed to the job's reader (custody audits the batch as one release event). `pending`: blobs planned but not yet stored. */
  private async sealJob(ctx: CallerContext, job: Job, pending?: BlobRow[], known?: Application | Application[]): Promise<StationJobWire> {
    const { recipient } = await this.recipientOf(job.readerId);
    const ttlSeconds = Math.max(1, Math.ceil((job.expiresAt - this.now()) / 1000));
    // every key of the job sealed in ONE custody call: one audit entry naming every binding and
    // the reader, durable before any of them is handed out
    // The session JWE (ECDH-ES, ~0.5 kB) custody attaches to every delivery of a reader session is
    // sent ONCE per job, on the CMK — the first key every station job unseals (issue, install,
    // delete and personalise all start with it); the other keys name the session by their header's
    // `sid`, and the station's unsealer has the session key by then (a personalise job of the
    // campus layout: 13.4 -> ~7.7 kB per answer).
    const sealAll = async (sources: KeySource[], keyTypes: ('aes' | '3k3des')[]): Promise<JobKeyWire[]> => {
      const sealed = await this.o.custody.sealMany(ctx, sources, recipient, { ttlSeconds });
      const session = sealed[0]?.session;
      return sources.map((s, i) => {
        const x = sealed[i]!;
        const once = i > 0 && session !== undefined && x.session === session ? { format: x.format, jwe: x.jwe, expiresAt: x.expiresAt } : x;
        return { keyNo: s.binding.keyNo, version: s.binding.version, keyType: keyTypes[i]!, binding: s.binding, sealed: once };
      });
    };
    const cmkSource = this.keys.cmkSource(this.db, job.uid, job.plan.cmkVersion, pending);
    cmkSource.catch(() => undefined);
    const authorisation = (job.plan as DeletePlan).authorisation;
    const common = { v: 1 as const, jobId: job.id, jti: job.jti, uid: job.uid, expiresAt: Math.floor(job.expiresAt / 1000), ...(authorisation ? { authorisation } : {}) };
    if (job.kind === 'issue') {
      const p = job.plan as IssuePlan;
      const [cmk] = await sealAll([await cmkSource], ['aes']);
      return { ...common, kind: 'issue', factoryKey: { keyType: 'des', hex: '0000000000000000' }, cmk: cmk!, piccKeySettings: p.piccKeySettings, randomUid: p.randomUid };
    } else if (job.kind === 'install') {
      const p = job.plan as InstallPlan;
      const app = (known as Application | undefined) ?? (await this.application(job.aid));
      const keyType = app.keyType === '3k3des' ? '3k3des' : 'aes';
      const sources = await Promise.all([cmkSource, ...p.keys.map((k) => this.keys.appSource(this.db, app, job.uid, k.keyNo, k.version, pending))]);
      const [cmk, ...keys] = await sealAll(sources, ['aes', ...p.keys.map(() => keyType)]);
      return { ...common, kind: 'install', cmk: cmk!, application: applicationWire(app, keys) };
    } else if (job.kind === 'personalise') {
      // the CMK and every key of every application in ONE sealMany (one audited release)
      const p = job.plan as PersonalisePlan;
      const apps = (known as Application[] | undefined) ?? (await Promise.all(p.installs.map((i) => this.application(i.aid))));
      const keyTypes = apps.map((app) => (app.keyType === '3k3des' ? '3k3des' : 'aes') as 'aes' | '3k3des');
      const sources = await Promise.all([cmkSource, ...p.installs.flatMap((inst, i) => inst.keys.map((k) => this.keys.appSource(this.db, apps[i]!, job.uid, k.keyNo, k.version, pending)))]);
      const [cmk, ...all] = await sealAll(sources, ['aes', ...p.installs.flatMap((inst, i) => inst.keys.map(() => keyTypes[i]!))]);
      let at = 0;
      const applications = p.installs.map((inst, i) => {
        const keys = all.slice(at, at + inst.keys.length);
        at += inst.keys.length;
        return { ...applicationWire(apps[i]!, keys), ...(inst.authorisation ? { authorisation: inst.authorisation } : {}) };
      });
      return { ...common, kind: 'personalise', factoryKey: { keyType: 'des', hex: '0000000000000000' }, cmk: cmk!, piccKeySettings: p.piccKeySettings, randomUid: p.randomUid, applications };
    }
    const [cmk] = await sealAll([await cmkSource], ['aes']);
    return { ...common, kind: 'delete', cmk: cmk!, aid: job.aid };
  }

  /** The station's signed receipt. A bad signature or a mismatch changes nothing. */
  async receipt(ctx: CallerContext, readerId: string, jobId: string, jws: string): Promise<{ job: Job; ok: boolean }> {
    try {
      return await this.receiptUnchecked(ctx, readerId, jobId, jws);
    } catch (e) {
      return this.refuse(ctx, 'job_receipt', e, { readerId, jobId: String(jobId).slice(0, 64) });
    }
  }

  private async receiptUnchecked(ctx: CallerContext, readerId: string, jobId: string, jws: string): Promise<{ job: Job; ok: boolean }> {
    const job = await this.get(jobId);
    if (job.readerId !== readerId) throw new JobError('ERR_JOB_NOT_FOUND', `job ${jobId} not found`);
    if (job.state !== 'claimed' && job.state !== 'unknown') throw new JobError('ERR_JOB_STATE', `job ${jobId} is ${job.state}`);
    const { pem } = await this.recipientOf(readerId);
    const receipt = await verifyReceipt(jws, pem, { jobId: job.id, jti: job.jti });
    if (receipt.uid !== job.uid) throw new JobError('ERR_JOB_RECEIPT_MISMATCH', `receipt is for card ${receipt.uid}, the job for ${job.uid}`);
    const authorisation = (job.plan as DeletePlan).authorisation;
    if (receipt.authorisation !== authorisation) throw new JobError('ERR_JOB_RECEIPT_MISMATCH', `receipt names authorisation ${receipt.authorisation ?? '(none)'}, the job ${authorisation ?? '(none)'}`);
    const ok = receipt.results.length > 0 && receipt.results.every((r) => r.status === 0);
    if (ok) checkSteps(job, receipt);
    const outcome = JSON.stringify({ source: 'receipt', at: receipt.at, results: receipt.results });
    const done = await this.commits.run(async (tx) => {
      const state = ok ? 'completed' : 'failed';
      if ((await this.w.setOutcome.run(tx, state, outcome, this.now(), job.id, job.state)) === 0) throw new JobError('ERR_JOB_STATE', `job ${jobId} changed state concurrently`);
      if (ok) await this.apply(tx, job);
      return { ...job, state: state as JobState, outcome: JSON.parse(outcome) as unknown };
    });
    const tenant = job.kind === 'install' || job.kind === 'delete' ? (job.plan as DeletePlan).tenant : undefined;
    const recorded: StationAuditEvent = { time: new Date(this.now()).toISOString(), source: 'cms', op: 'job_receipt', outcome: ok ? 'ok' : 'failed', actor: ctx.actor, correlationId: ctx.correlationId, readerId, jobId, uid: job.uid, ...(tenant ? { tenant } : {}), aid: job.aid, ...(authorisation ? { authorisation } : {}) };
    if (job.kind !== 'personalise') await this.o.audit.append(recorded);
    else {
      // one entry per installation: its tenant's view shows the outcome recorded for its
      // application (ok: installed and recorded; failed: nothing recorded, with what the receipt
      // says of its own steps only: card-ok / card-refused / not-run)
      const parts = await this.personaliseParts(job);
      await this.appendAll([
        recorded,
        ...parts.map((x) => {
          const mine = receipt.results.filter((r) => r.aid === x.aid);
          const code = ok ? undefined : mine.length === 0 ? 'not-run' : mine.every((r) => r.status === 0) ? 'card-ok' : 'card-refused';
          return { ...recorded, ...(x.tenant ? { tenant: x.tenant } : {}), aid: x.aid, ...(x.authorisation ? { authorisation: x.authorisation } : {}), ...(code ? { code } : {}) };
        }),
      ]);
    }
    return { job: done, ok };
  }

  /**
   * Station events written together: handed to the sink in one turn (the CMS audit log commits
   * them in one group-commit batch), all awaited.
   */
  async appendAll(events: StationAuditEvent[]): Promise<void> {
    await appendEach(this.o.audit, events);
  }

  /**
   * The audit entries of a reconciled job (the probe's verdict, in `code`): the job's own and, for
   * a personalise job, one per installation with its step's verdict (applied / partial /
   * not-applied: what was recorded for that application), for its tenant's view.
   */
  async auditReconciled(ctx: CallerContext, job: Job, result: { verdict: string; steps?: { step: string; verdict: string }[] }): Promise<void> {
    const tenant = job.kind === 'install' || job.kind === 'delete' ? (job.plan as DeletePlan).tenant : undefined;
    const e: StationAuditEvent = { time: new Date(this.now()).toISOString(), source: 'cms', op: 'job_reconcile', outcome: 'ok', actor: ctx.actor, correlationId: ctx.correlationId, jobId: job.id, uid: job.uid, ...(tenant ? { tenant } : {}), aid: job.aid, code: result.verdict };
    if (job.kind !== 'personalise') return this.o.audit.append(e);
    const parts = await this.personaliseParts(job);
    await this.appendAll([e, ...parts.map((x) => ({ ...e, ...(x.tenant ? { tenant: x.tenant } : {}), aid: x.aid, code: result.steps?.find((st) => st.step === x.aid)?.verdict ?? 'not-probed' }))]);
  }

  /**
   * A personalise job's installations as its per-tenant audit entries name them: tenant, AID and
   * the authorisation it ran under (the tenant from the plan; jobs stored before it was there: the
   * registered application's, none if it is no longer registered — the entry then has its AID only:
   * the job's outcome is already committed, its audit must not fail on a lookup).
   */
  async personaliseParts(job: Job): Promise<{ tenant?: string; aid: string; authorisation?: string }[]> {
    const p = job.plan as PersonalisePlan;
    return Promise.all(
      (p.installs ?? []).map(async (i) => {
        const tenant = i.tenant ?? (await this.application(i.aid).then((a) => a.tenantId, () => undefined));
        return { ...(tenant ? { tenant } : {}), aid: i.aid, ...(i.authorisation ? { authorisation: i.authorisation } : {}) };
      }),
    );
  }

  /**
   * Record what a job did to the card, inside `tx` (receipt or reconciliation). A personalise job:
   * the card issued (CMK version), every installation (mapping and key versions) and every key
   * blob activated — what the issue and install receipts record, in one transaction; `steps`
   * (reconciliation) limits it to the steps the probe verified.
   */
  async apply(tx: Kysely<Database>, job: Job, steps?: PersonaliseSteps): Promise<void> {
    const cards = new CardRepository(tx);
    const now = this.now();
    if (job.kind === 'personalise') {
      const p = job.plan as PersonalisePlan;
      const only = steps ?? { issue: true, aids: p.installs.map((i) => i.aid) };
      if (!only.issue) return;
      if ((await this.w.issueCard.run(tx, p.cmkVersion, now, job.uid)) === 0) throw new JobError('ERR_JOB_CARD_STATE', `card ${job.uid} is no longer blank`);
      for (const inst of p.installs) {
        if (!only.aids.includes(inst.aid)) continue;
        if ((await this.w.cardApp.run(tx, job.uid, inst.aid, now)) === 0) throw new JobError('ERR_JOB_CARD_STATE', `application ${inst.aid} is already recorded on card ${job.uid}`);
        for (const k of inst.keys) await this.w.cardKey.run(tx, job.uid, inst.aid, k.keyNo, k.version, now);
      }
      if (!steps) await this.activateBlobs(tx, job);
      else {
        const aids = [PICC_AID, ...only.aids];
        await tx.updateTable('card_key_blobs').set({ state: 'active' }).where('uid', '=', job.uid).where('job_id', '=', job.id).where('state', '=', 'pending').where('aid', 'in', aids).execute();
      }
    } else if (job.kind === 'issue') {
      await cards.transition(job.uid, 'issued', { piccKeyVersion: job.plan.cmkVersion, now });
      await this.activateBlobs(tx, job);
    } else if (job.kind === 'install') {
      const p = job.plan as InstallPlan;
      await cards.recordInstallation(job.uid, job.aid, p.keys.map((k) => ({ keyNo: k.keyNo, version: k.version })), now);
      await this.activateBlobs(tx, job);
    } else {
      await cards.removeApplication(job.uid, job.aid);
      await tx.deleteFrom('card_key_blobs').where('uid', '=', job.uid).where('aid', '=', job.aid).execute();
    }
  }

  private async activateBlobs(tx: Kysely<Database>, job: Job): Promise<void> {
    await this.w.activateBlobs.run(tx, job.uid, job.id);
  }

  /** Claimed jobs past their expiry without a receipt become 'unknown' (to be reconciled). */
  async sweepExpired(): Promise<number> {
    const r = await this.db.updateTable('station_jobs').set({ state: 'unknown', updated_at: this.now() }).where('state', '=', 'claimed').where('expires_at', '<=', this.now()).executeTakeFirst();
    // unclaimed expired jobs changed nothing on any card: they are simply failed
    await this.db.updateTable('station_jobs').set({ state: 'failed', outcome: JSON.stringify({ source: 'expiry', claimed: false }), updated_at: this.now() }).where('state', '=', 'created').where('expires_at', '<=', this.now()).execute();
    return Number(r.numUpdatedRows ?? 0n);
  }

  /** Mark a claimed job 'unknown' now (e.g. the station reported a lost connection). */
  async markUnknown(jobId: string): Promise<Job> {
    const job = await this.get(jobId);
    if (job.state !== 'claimed') throw new JobError('ERR_JOB_STATE', `job ${jobId} is ${job.state}`);
    await this.db.updateTable('station_jobs').set({ state: 'unknown', updated_at: this.now() }).where('id', '=', jobId).where('state', '=', 'claimed').execute();
    return { ...job, state: 'unknown' };
  }
}

/** An application's installation sequence for the station, its keys already sealed. */
function applicationWire(app: Application, keys: JobKeyWire[]): ApplicationWire {
  const plan = applicationPlan(app.definition as LayoutApplication);
  return {
    aid: app.aid,
    createApplication: Buffer.from(plan.createApplicationData).toString('hex'),
    keyType: app.keyType === '3k3des' ? '3k3des' : 'aes',
    changeKey: app.definition.keySettings.changeKey.kind === 'self' ? 'self' : 'amk',
    keys,
    files: plan.files.map((f) => ({ fileNo: f.fileNo, command: f.command, data: Buffer.from(f.data).toString('hex') })),
  };
}

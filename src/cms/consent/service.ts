// Tenant consent and authorisation: authorisations a tenant admin grants (install / rotate / delete
// its application on a card, a batch of cards, or every card of a profile; expiring; revocable),
// requests the issuer makes and the tenant grants or refuses, cardholder consent records and their
// withdrawal (which schedules the application's deletion at the card's next presentation), and
// THE policy check every install / rotate / delete job runs: requireAuthorisation().
//
// Who may call what is decided by the API (routes/consent.ts): only a tenant admin of the tenant
// grants or revokes its authorisations; the issuer only requests. This service checks the facts
// (the application belongs to the tenant, states, expiries) and records the decision.
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { type Prepared, prepare } from '../delivery/prepared.js';
import type { AuditInput } from '../audit/entry.js';
import type { Database } from '../storage/index.js';
import { withTransaction } from '../storage/index.js';
import { CARD_PROFILE_RE, CardRepository, DomainError } from '../domain/index.js';
import { ConsentError } from './errors.js';
import { ANY_PROFILE, type Authorisation, type AuthorisationQuery, type AuthorisationScope, type ConsentOperation, OPERATIONS, decide, mismatch } from './policy.js';

export interface ConsentAudit {
  record(input: AuditInput): Promise<unknown>;
}

/** Who acts and under which correlation id (request id, job id). */
export interface ConsentActor {
  actor: string;
  correlationId?: string;
}

/**
 * What a job asks: the card's profile is read from its record, never taken from the caller — except
 * `issueProfile`, the profile a station's issue/personalise job gives the card it issues: it decides
 * only while the card has no record yet or is still blank (the job writes it onto the record in its
 * own transaction, after this check; a refused job writes nothing). For any other card the record's
 * profile decides.
 */
export type CheckQuery = Omit<AuthorisationQuery, 'cardProfile'> & { issueProfile?: string };

export interface ConsentServiceOptions {
  db: Kysely<Database>;
  audit?: ConsentAudit;
  now?: () => number;
  /** Deployments that need it: an install also needs the cardholder's recorded consent. */
  requireCardholderConsent?: boolean;
  /** Longest validity of an authorisation, seconds (default 5 years). */
  maxTtlSeconds?: number;
}

export interface GrantInput {
  tenant: string;
  aid: string;
  operation: ConsentOperation;
  /** One UID (scope card) or several (scope batch)… */
  cards?: string[];
  /** …or a card profile for a standing policy ('*' = every card). */
  profile?: string;
  ttlSeconds: number;
  validFrom?: number;
}

export interface RequestInput extends Omit<GrantInput, 'validFrom'> {
  reason: string;
}

export type RequestState = 'pending' | 'granted' | 'refused' | 'cancelled';
export interface AuthorisationRequest {
  id: string;
  tenant: string;
  aid: string;
  operation: ConsentOperation;
  scope: AuthorisationScope;
  cardUids: string[] | null;
  cardProfile: string | null;
  ttlSeconds: number;
  reason: string;
  state: RequestState;
  requestedBy: string;
  createdAt: number;
  decidedBy: string | null;
  decidedAt: number | null;
  decisionReason: string | null;
  authorisationId: string | null;
}

export interface CardholderConsent {
  id: string;
  uid: string;
  aid: string;
  tenant: string;
  cardholder: string;
  state: 'given' | 'withdrawn';
  givenAt: number;
  recordedBy: string;
  evidence: string | null;
  withdrawnAt: number | null;
  withdrawnBy: string | null;
}

export interface PendingDeletion {
  uid: string;
  aid: string;
  tenant: string;
  reason: string;
  consentId: string | null;
  authorisationId: string;
  state: 'pending' | 'done' | 'cancelled';
  createdAt: number;
  doneAt: number | null;
}

const UID_RE = /^([0-9A-F]{2}){4,10}$/;
const AID_RE = /^[0-9A-F]{6}$/;
const PROFILE_RE = /^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$/;
const REF_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
const MAX_BATCH = 10_000;
/**
 * The profile a standing policy matches: the issuing job's `issueProfile` while the card has no
 * record (state null) or is blank, else the record's. Undefined: none.
 */
function effectiveProfile(state: string | null, recorded: string | null, issueProfile: string | undefined): string | undefined {
  if (issueProfile !== undefined && (state === null || state === 'blank')) return issueProfile;
  return recorded ?? undefined;
}
function checkIssueProfile(p: unknown): string | undefined {
  if (p === undefined) return undefined;
  if (typeof p !== 'string' || !CARD_PROFILE_RE.test(p)) throw invalid('issueProfile: a card profile name (A-Z a-z 0-9 . _ -)');
  return p;
}
type CardRow = AuthRow & { app_aid: string; owner: string; profile: string | null; card_state: string | null; consent_id?: string | null };
/** requireAuthorisationForCard's query, compiled once per database, number of AIDs and cardholder-consent rule (src/cms/delivery/prepared.ts). */
const cardQueries = new WeakMap<Kysely<Database>, Map<string, Prepared<(string | number)[], CardRow>>>();

/**
 * The applications asked joined with their tenant's authorisations of the operation, the card's
 * profile and state and (when required) the cardholder consents as sub-selects: ONE query. Built and
 * compiled once per shape (the Kysely builder cost more than the SQLite query: ~0.7 ms per
 * personalise job); arguments: operation, uid, uid, [uid, at], ...aids — bound by the driver.
 */
function cardQuery(db: Kysely<Database>, n: number, requireConsent: boolean): Prepared<(string | number)[], CardRow> {
  let byShape = cardQueries.get(db);
  if (!byShape) cardQueries.set(db, (byShape = new Map()));
  const key = `${n}:${requireConsent ? 1 : 0}`;
  let p = byShape.get(key);
  if (!p) {
    p = prepare<Database, (string | number)[], CardRow>(db, 3 + (requireConsent ? 2 : 0) + n, (operation, uid, uid2, ...rest) => {
      const [cuid, at] = requireConsent ? rest : [];
      const aids = requireConsent ? rest.slice(2) : rest;
      return db
        .selectFrom('applications as a')
        .leftJoin('consent_authorisations as c', (j) => j.onRef('c.aid', '=', 'a.aid').onRef('c.tenant_id', '=', 'a.tenant_id').on('c.operation', '=', operation!))
        .select(['a.aid as app_aid', 'a.tenant_id as owner'])
        .select(['c.id', 'c.tenant_id', 'c.aid', 'c.operation', 'c.scope', 'c.card_uids', 'c.card_profile', 'c.valid_from', 'c.expires_at', 'c.granted_by', 'c.request_id', 'c.created_at', 'c.revoked_at', 'c.revoked_by'])
        .select((eb) => eb.selectFrom('cards').select('profile').where('uid', '=', uid!).as('profile'))
        .select((eb) => eb.selectFrom('cards').select('state').where('uid', '=', uid2!).as('card_state'))
        .$if(requireConsent, (qb) =>
          qb.select((eb) =>
            eb.selectFrom('cardholder_consents as h').select('h.id').whereRef('h.aid', '=', 'a.aid').where('h.uid', '=', cuid!).where('h.state', '=', 'given').where('h.given_at', '<=', at as unknown as number).limit(1).as('consent_id'),
          ),
        )
        .where('a.aid', 'in', aids)
        // candidates in the single check's order (its refusal names their mismatches in order)
        .orderBy('a.aid')
        .orderBy('c.created_at')
        .orderBy('c.id') as never;
    });
    byShape.set(key, p);
  }
  return p;
}

/** Most applications one requireAuthorisationForCard decides (a personalise job lists at most 28). */
const MAX_CARD_APPS = 64;
const DELETION_TTL_S = 366 * 24 * 3600;

const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('base64url')}`;
const invalid = (m: string) => new ConsentError('ERR_CONSENT_INVALID', m);

type AuthRow = Database['consent_authorisations'];
type ReqRow = Database['consent_requests'];
type CnsRow = Database['cardholder_consents'];
type DelRow = Database['pending_deletions'];

function toAuth(r: AuthRow): Authorisation {
  return {
    id: r.id,
    tenant: r.tenant_id,
    aid: r.aid,
    operation: r.operation as ConsentOperation,
    scope: r.scope as AuthorisationScope,
    cardUids: r.card_uids === null ? null : (JSON.parse(r.card_uids) as string[]),
    cardProfile: r.card_profile,
    validFrom: Number(r.valid_from),
    expiresAt: Number(r.expires_at),
    grantedBy: r.granted_by,
    requestId: r.request_id,
    createdAt: Number(r.created_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
    revokedBy: r.revoked_by,
  };
}
function toReq(r: ReqRow): AuthorisationRequest {
  return {
    id: r.id,
    tenant: r.tenant_id,
    aid: r.aid,
    operation: r.operation as ConsentOperation,
    scope: r.scope as AuthorisationScope,
    cardUids: r.card_uids === null ? null : (JSON.parse(r.card_uids) as string[]),
    cardProfile: r.card_profile,
    ttlSeconds: Number(r.ttl_seconds),
    reason: r.reason,
    state: r.state as RequestState,
    requestedBy: r.requested_by,
    createdAt: Number(r.created_at),
    decidedBy: r.decided_by,
    decidedAt: r.decided_at === null ? null : Number(r.decided_at),
    decisionReason: r.decision_reason,
    authorisationId: r.authorisation_id,
  };
}
function toConsent(r: CnsRow): CardholderConsent {
  return {
    id: r.id,
    uid: r.uid,
    aid: r.aid,
    tenant: r.tenant_id,
    cardholder: r.cardholder,
    state: r.state as 'given' | 'withdrawn',
    givenAt: Number(r.given_at),
    recordedBy: r.recorded_by,
    evidence: r.evidence,
    withdrawnAt: r.withdrawn_at === null ? null : Number(r.withdrawn_at),
    withdrawnBy: r.withdrawn_by,
  };
}
function toDeletion(r: DelRow): PendingDeletion {
  return {
    uid: r.uid,
    aid: r.aid,
    tenant: r.tenant_id,
    reason: r.reason,
    consentId: r.consent_id,
    authorisationId: r.authorisation_id,
    state: r.state as PendingDeletion['state'],
    createdAt: Number(r.created_at),
    doneAt: r.done_at === null ? null : Number(r.done_at),
  };
}

export function checkUid(uid: unknown): string {
  if (typeof uid !== 'string' || !UID_RE.test(uid.toUpperCase())) throw invalid('uid must be 4..10 bytes of hex');
  return uid.toUpperCase();
}
export function checkAid(aid: unknown): string {
  if (typeof aid !== 'string' || !AID_RE.test(aid.toUpperCase()) || aid === '000000') throw invalid('aid must be 6 hex digits (not 000000: the card master application is never a tenant application)');
  return aid.toUpperCase();
}
function checkOperation(op: unknown): ConsentOperation {
  if (typeof op !== 'string' || !(OPERATIONS as readonly string[]).includes(op)) throw invalid(`operation must be one of ${OPERATIONS.join(', ')}`);
  return op as ConsentOperation;
}

export class ConsentService {
  readonly db: Kysely<Database>;
  private readonly now: () => number;
  private readonly maxTtl: number;

  constructor(readonly o: ConsentServiceOptions) {
    this.db = o.db;
    this.now = o.now ?? Date.now;
    this.maxTtl = o.maxTtlSeconds ?? 5 * 365 * 24 * 3600;
  }

  /** The tenant owning `aid`; refuses an application of another tenant (or none). */
  async applicationTenant(aid: string, tenant?: string, db: Kysely<Database> = this.db): Promise<string> {
    const a = await db.selectFrom('applications').select(['tenant_id']).where('aid', '=', checkAid(aid)).executeTakeFirst();
    if (!a) throw new ConsentError('ERR_CONSENT_NOT_FOUND', `application ${aid.toUpperCase()} is not registered`);
    if (tenant !== undefined && a.tenant_id !== tenant) throw new ConsentError('ERR_CONSENT_FORBIDDEN', `application ${aid.toUpperCase()} does not belong to tenant '${tenant}'`);
    return a.tenant_id;
  }

  private scopeOf(i: { cards?: string[]; profile?: string }): { scope: AuthorisationScope; cards: string[] | null; profile: string | null } {
    const hasCards = i.cards !== undefined;
    const hasProfile = i.profile !== undefined;
    if (hasCards === hasProfile) throw invalid('give either cards (one or a batch of UIDs) or a card profile (standing policy)');
    if (hasCards) {
      if (!Array.isArray(i.cards) || i.cards.length === 0 || i.cards.length > MAX_BATCH) throw invalid(`cards: 1..${MAX_BATCH} UIDs`);
      const cards = [...new Set(i.cards.map(checkUid))].sort();
      return { scope: cards.length === 1 ? 'card' : 'batch', cards, profile: null };
    }
    if (typeof i.profile !== 'string' || !PROFILE_RE.test(i.profile)) throw invalid("profile: a card profile name or '*'");
    return { scope: 'policy', cards: null, profile: i.profile };
  }

  private checkTtl(ttl: unknown): number {
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > this.maxTtl) throw invalid(`ttlSeconds: 1..${this.maxTtl}`);
    return ttl;
  }

  private async audit(who: ConsentActor, e: Omit<AuditInput, 'actor' | 'correlationId'>): Promise<void> {
    if (!this.o.audit) return;
    await this.o.audit.record({ ...e, actor: who.actor, ...(who.correlationId ? { correlationId: who.correlationId } : {}) });
  }

  // ---- authorisations ----------------------------------------------------------------------

  /** A tenant admin grants an authorisation (the API has checked the caller is one, for `tenant`). */
  async grant(who: ConsentActor, i: GrantInput, requestId: string | null = null, db: Kysely<Database> = this.db): Promise<Authorisation> {
    const aid = checkAid(i.aid);
    const operation = checkOperation(i.operation);
    const ttl = this.checkTtl(i.ttlSeconds);
    const s = this.scopeOf(i);
    await this.applicationTenant(aid, i.tenant, db);
    const now = this.now();
    const validFrom = i.validFrom ?? now;
    if (!Number.isInteger(validFrom) || validFrom < 0) throw invalid('validFrom: ms since the epoch');
    const row: AuthRow = {
      id: newId('auth'),
      tenant_id: i.tenant,
      aid,
      operation,
      scope: s.scope,
      card_uids: s.cards === null ? null : JSON.stringify(s.cards),
      card_profile: s.profile,
      valid_from: validFrom,
      expires_at: validFrom + ttl * 1000,
      granted_by: who.actor,
      request_id: requestId,
      created_at: now,
      revoked_at: null,
      revoked_by: null,
    };
    await db.insertInto('consent_authorisations').values(row).execute();
    return toAuth(row);
  }

  async authorisation(id: string): Promise<Authorisation> {
    if (typeof id !== 'string' || id.length > 64) throw new ConsentError('ERR_CONSENT_NOT_FOUND', 'authorisation not found');
    const r = await this.db.selectFrom('consent_authorisations').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) throw new ConsentError('ERR_CONSENT_NOT_FOUND', `authorisation ${id} not found`);
    return toAuth(r);
  }

  async authorisations(f: { tenant?: string; aid?: string; operation?: ConsentOperation; activeAt?: number } = {}): Promise<Authorisation[]> {
    let q = this.db.selectFrom('consent_authorisations').selectAll();
    if (f.tenant) q = q.where('tenant_id', '=', f.tenant);
    if (f.aid) q = q.where('aid', '=', checkAid(f.aid));
    if (f.operation) q = q.where('operation', '=', checkOperation(f.operation));
    if (f.activeAt !== undefined) q = q.where('revoked_at', 'is', null).where('expires_at', '>', f.activeAt).where('valid_from', '<=', f.activeAt);
    return (await q.orderBy('created_at').orderBy('id').execute()).map(toAuth);
  }

  /** Revoke (from now on no job can start under it). Revoking twice is a state error. */
  async revoke(who: ConsentActor, id: string): Promise<Authorisation> {
    const a = await this.authorisation(id);
    if (a.revokedAt !== null) throw new ConsentError('ERR_CONSENT_STATE', `authorisation ${id} is already revoked`);
    const now = this.now();
    const r = await this.db.updateTable('consent_authorisations').set({ revoked_at: now, revoked_by: who.actor }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    if ((r.numUpdatedRows ?? 0n) === 0n) throw new ConsentError('ERR_CONSENT_STATE', `authorisation ${id} is already revoked`);
    return { ...a, revokedAt: now, revokedBy: who.actor };
  }

  /**
   * THE policy check. Every job that installs, rotates or deletes a tenant's application calls it
   * before anything is planned or released: the id of the authorisation that covers the operation
   * (name it in the job, the receipt and the audit entry), or ERR_CONSENT_DENIED (→ 403). Both
   * outcomes are audited ('consent.check', 'ok' / 'denied').
   */
  async requireAuthorisation(q: CheckQuery, who: ConsentActor = { actor: 'system' }): Promise<string> {
    let refusal: ConsentError | undefined;
    let chosen: Authorisation | undefined;
    let uid = String(q?.cardUid ?? '');
    let aid = String(q?.aid ?? '');
    try {
      uid = checkUid(q.cardUid);
      aid = checkAid(q.aid);
      checkOperation(q.operation);
      if (typeof q.tenant !== 'string' || q.tenant.length === 0) throw invalid('tenant is required');
      if (!Number.isFinite(q.at)) throw invalid('at: ms since the epoch');
      const issueProfile = checkIssueProfile(q.issueProfile);
      const owner = await this.applicationTenant(aid);
      if (owner !== q.tenant) throw new ConsentError('ERR_CONSENT_DENIED', `application ${aid} belongs to another tenant`, { reason: 'tenant' });
      const candidates = (await this.db.selectFrom('consent_authorisations').selectAll().where('tenant_id', '=', q.tenant).where('aid', '=', aid).where('operation', '=', q.operation).orderBy('created_at').orderBy('id').execute()).map(toAuth);
      // a standing policy matches the profile on the card record (or the one the issuing job gives
      // a card with no record yet / still blank), never one the caller names for an issued card
      const card = await this.db.selectFrom('cards').select(['state', 'profile']).where('uid', '=', uid).executeTakeFirst();
      const profile = effectiveProfile(card?.state ?? null, card?.profile ?? null, issueProfile);
      const query: AuthorisationQuery = { tenant: q.tenant, operation: q.operation, at: q.at, aid, cardUid: uid, ...(profile ? { cardProfile: profile } : {}) };
      chosen = decide(candidates, query);
      if (!chosen) {
        const why = candidates.length === 0 ? 'no authorisation' : [...new Set(candidates.map((c) => mismatch(c, query)))].join(', ');
        throw new ConsentError('ERR_CONSENT_DENIED', `no valid ${q.operation} authorisation of tenant '${q.tenant}' for application ${aid} on card ${uid}`, { reason: why });
      }
      if (q.operation === 'install' && this.o.requireCardholderConsent) {
        const c = await this.db.selectFrom('cardholder_consents').select('id').where('uid', '=', uid).where('aid', '=', aid).where('state', '=', 'given').where('given_at', '<=', q.at).executeTakeFirst();
        if (!c) throw new ConsentError('ERR_CONSENT_DENIED', `no cardholder consent recorded for application ${aid} on card ${uid}`, { reason: 'cardholder consent' });
      }
    } catch (e) {
      refusal = e instanceof ConsentError ? e : undefined;
      if (!refusal) throw e;
      if (refusal.code !== 'ERR_CONSENT_DENIED') refusal = new ConsentError('ERR_CONSENT_DENIED', refusal.message, { reason: refusal.code });
    }
    const base = {
      operation: 'consent.check',
      ...(typeof q?.tenant === 'string' && q.tenant ? { tenant: q.tenant } : {}),
      ...(AID_RE.test(aid) ? { aid } : {}),
      ...(UID_RE.test(uid) ? { cardUid: uid } : {}),
    };
    if (refusal) {
      await this.audit(who, { ...base, result: 'denied', details: { code: refusal.code, op: String(q?.operation ?? ''), reason: String(refusal.details?.reason ?? '') } });
      throw refusal;
    }
    await this.audit(who, { ...base, result: 'ok', details: { op: q.operation, authorisation: chosen!.id, scope: chosen!.scope } });
    return chosen!.id;
  }

  /**
   * THE policy check for several applications on ONE card at once (a personalise job's installs):
   * every (tenant, AID) decided exactly as requireAuthorisation decides it alone (same validation,
   * ownership, candidates, precedence, validity window, revocation, scope, card profile from the
   * card record, cardholder consent when required) from ONE query — the applications joined with
   * their tenant's authorisations of the operation, the card's profile and (when required) the
   * cardholder consents as sub-selects. The authorisation ids in the order asked, or the refusal
   * of the first AID (in that order) that is not authorised: ERR_CONSENT_DENIED (→ 403) naming it,
   * details { reason, aid, refused: every refused AID } — then nothing may start.
   *
   * Audit: one 'consent.check' entry per (tenant, AID), each as requireAuthorisation writes it
   * ('ok' with the authorisation id and scope, or 'denied' with code and reason), recorded
   * together: the audit views (a tenant's view, an export by AIDs) select an entry by its one
   * tenant and its one AID column, so an entry naming two tenants or two AIDs would be missing
   * from a view that should show it.
   */
  async requireAuthorisationForCard(
    q: { cardUid: string; operation: ConsentOperation; at: number; apps: { tenant: string; aid: string }[]; issueProfile?: string },
    who: ConsentActor = { actor: 'system' },
  ): Promise<string[]> {
    const apps = Array.isArray(q?.apps) ? q.apps : [];
    if (apps.length === 0 || apps.length > MAX_CARD_APPS) throw invalid(`apps: 1..${MAX_CARD_APPS} (tenant, aid)`);
    let uid = String(q?.cardUid ?? '');
    // per item: the refusal, or the chosen authorisation
    const out: { tenant: string; aid: string; refusal?: ConsentError; chosen?: Authorisation }[] = apps.map((a) => ({ tenant: typeof a?.tenant === 'string' ? a.tenant : '', aid: String(a?.aid ?? '') }));
    const refuse = (e: unknown): ConsentError => {
      if (!(e instanceof ConsentError)) throw e;
      return e.code === 'ERR_CONSENT_DENIED' ? e : new ConsentError('ERR_CONSENT_DENIED', e.message, { reason: e.code });
    };
    try {
      uid = checkUid(q.cardUid);
    } catch {
      /* refused below, item by item, as the single check refuses it */
    }
    const pending: typeof out = [];
    for (const it of out) {
      // the single check's validation, in its order
      try {
        checkUid(q.cardUid);
        it.aid = checkAid(it.aid);
        checkOperation(q.operation);
        if (it.tenant.length === 0) throw invalid('tenant is required');
        if (!Number.isFinite(q.at)) throw invalid('at: ms since the epoch');
        checkIssueProfile(q.issueProfile);
        pending.push(it);
      } catch (e) {
        it.refusal = refuse(e);
      }
    }
    if (pending.length) {
      const requireConsent = q.operation === 'install' && this.o.requireCardholderConsent === true;
      const aids = [...new Set(pending.map((p) => p.aid))];
      const rows = await cardQuery(this.db, aids.length, requireConsent).all(q.operation, uid, uid, ...(requireConsent ? [uid, q.at] : []), ...aids);
      const byAid = new Map<string, { owner: string; candidates: Authorisation[]; profile: string | null; consent: boolean }>();
      for (const r of rows) {
        let e = byAid.get(r.app_aid);
        if (!e) byAid.set(r.app_aid, (e = { owner: r.owner, candidates: [], profile: effectiveProfile(r.card_state ?? null, r.profile ?? null, q.issueProfile) ?? null, consent: (r as { consent_id?: string | null }).consent_id != null }));
        if (r.id !== null) e.candidates.push(toAuth(r as AuthRow));
      }
      for (const it of pending) {
        try {
          const e = byAid.get(it.aid);
          if (!e) throw new ConsentError('ERR_CONSENT_NOT_FOUND', `application ${it.aid} is not registered`);
          if (e.owner !== it.tenant) throw new ConsentError('ERR_CONSENT_DENIED', `application ${it.aid} belongs to another tenant`, { reason: 'tenant' });
          const query: AuthorisationQuery = { tenant: it.tenant, operation: q.operation, at: q.at, aid: it.aid, cardUid: uid, ...(e.profile ? { cardProfile: e.profile } : {}) };
          it.chosen = decide(e.candidates, query);
          if (!it.chosen) {
            const why = e.candidates.length === 0 ? 'no authorisation' : [...new Set(e.candidates.map((c) => mismatch(c, query)))].join(', ');
            throw new ConsentError('ERR_CONSENT_DENIED', `no valid ${q.operation} authorisation of tenant '${it.tenant}' for application ${it.aid} on card ${uid}`, { reason: why });
          }
          if (requireConsent && !e.consent) throw new ConsentError('ERR_CONSENT_DENIED', `no cardholder consent recorded for application ${it.aid} on card ${uid}`, { reason: 'cardholder consent' });
        } catch (e) {
          it.chosen = undefined;
          it.refusal = refuse(e);
        }
      }
    }
    await Promise.all(
      out.map((it) => {
        const base = { operation: 'consent.check', ...(it.tenant ? { tenant: it.tenant } : {}), ...(AID_RE.test(it.aid) ? { aid: it.aid } : {}), ...(UID_RE.test(uid) ? { cardUid: uid } : {}) };
        return it.refusal
          ? this.audit(who, { ...base, result: 'denied', details: { code: it.refusal.code, op: String(q?.operation ?? ''), reason: String(it.refusal.details?.reason ?? '') } })
          : this.audit(who, { ...base, result: 'ok', details: { op: q.operation, authorisation: it.chosen!.id, scope: it.chosen!.scope } });
      }),
    );
    const refused = out.filter((it) => it.refusal);
    if (refused.length) {
      const first = refused[0]!.refusal!;
      throw new ConsentError('ERR_CONSENT_DENIED', first.message, { ...first.details, aid: refused[0]!.aid, refused: refused.map((it) => it.aid) });
    }
    return out.map((it) => it.chosen!.id);
  }

  /**
   * The policy check for many cards at once (a rotation campaign's target): one query, one audit
   * entry. uid → the authorisation id covering it; ERR_CONSENT_DENIED (details.uncovered: up to 20
   * UIDs, details.count) when any card is not covered — then nothing may start.
   */
  async requireAuthorisationForCards(
    q: { tenant: string; aid: string; operation: ConsentOperation; at: number; cards: { uid: string }[] },
    who: ConsentActor = { actor: 'system' },
  ): Promise<Map<string, string>> {
    const aid = checkAid(q.aid);
    checkOperation(q.operation);
    const owner = await this.applicationTenant(aid);
    const candidates = owner === q.tenant ? (await this.db.selectFrom('consent_authorisations').selectAll().where('tenant_id', '=', q.tenant).where('aid', '=', aid).where('operation', '=', q.operation).execute()).map(toAuth) : [];
    const out = new Map<string, string>();
    const uncovered: string[] = [];
    const uids = q.cards.map((c) => checkUid(c.uid));
    // profiles from the card records, only when a standing policy names one
    const profiles = candidates.some((c) => c.scope === 'policy' && c.cardProfile !== ANY_PROFILE) ? await this.cardProfiles(uids) : new Map<string, string>();
    for (const uid of uids) {
      const profile = profiles.get(uid);
      const a = decide(candidates, { tenant: q.tenant, aid, operation: q.operation, cardUid: uid, at: q.at, ...(profile ? { cardProfile: profile } : {}) });
      if (a) out.set(uid, a.id);
      else uncovered.push(uid);
    }
    const base = { operation: 'consent.check', tenant: q.tenant, aid };
    if (uncovered.length) {
      await this.audit(who, { ...base, result: 'denied', details: { code: 'ERR_CONSENT_DENIED', op: q.operation, cards: q.cards.length, uncovered: uncovered.length } });
      throw new ConsentError('ERR_CONSENT_DENIED', `${uncovered.length} of ${q.cards.length} cards have no valid ${q.operation} authorisation of tenant '${q.tenant}' for application ${aid}`, {
        uncovered: uncovered.slice(0, 20),
        count: uncovered.length,
      });
    }
    await this.audit(who, { ...base, result: 'ok', details: { op: q.operation, cards: q.cards.length, authorisations: [...new Set(out.values())].sort() } });
    return out;
  }

  /**
   * Set (or clear, null) the profile on a card's record — the issuer's decision (the route checks
   * the role). From then on standing policies of that profile cover the card, others do not.
   */
  async setCardProfile(uid: string, profile: string | null): Promise<{ uid: string; profile: string | null }> {
    const u = checkUid(uid);
    try {
      const c = await new CardRepository(this.db).setProfile(u, profile, this.now());
      return { uid: c.uid, profile: c.profile };
    } catch (e) {
      if (e instanceof DomainError && e.code === 'ERR_DOMAIN_NOT_FOUND') throw new ConsentError('ERR_CONSENT_NOT_FOUND', `card ${u} not found`);
      if (e instanceof DomainError && e.code === 'ERR_DOMAIN_BAD_INPUT') throw invalid(e.message);
      throw e;
    }
  }

  /** uid → the profile on its card record (cards without one are absent). */
  private async cardProfiles(uids: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (let i = 0; i < uids.length; i += 500) {
      const rows = await this.db.selectFrom('cards').select(['uid', 'profile']).where('uid', 'in', uids.slice(i, i + 500)).where('profile', 'is not', null).execute();
      for (const r of rows) out.set(r.uid, r.profile!);
    }
    return out;
  }

  // ---- requests ----------------------------------------------------------------------------

  /** The issuer asks a tenant for an authorisation. */
  async request(who: ConsentActor, i: RequestInput): Promise<AuthorisationRequest> {
    const aid = checkAid(i.aid);
    const operation = checkOperation(i.operation);
    const ttl = this.checkTtl(i.ttlSeconds);
    const s = this.scopeOf(i);
    if (typeof i.reason !== 'string' || i.reason.length < 1 || i.reason.length > 512) throw invalid('reason: 1..512 characters');
    await this.applicationTenant(aid, i.tenant);
    const row: ReqRow = {
      id: newId('areq'),
      tenant_id: i.tenant,
      aid,
      operation,
      scope: s.scope,
      card_uids: s.cards === null ? null : JSON.stringify(s.cards),
      card_profile: s.profile,
      ttl_seconds: ttl,
      reason: i.reason,
      state: 'pending',
      requested_by: who.actor,
      created_at: this.now(),
      decided_by: null,
      decided_at: null,
      decision_reason: null,
      authorisation_id: null,
    };
    await this.db.insertInto('consent_requests').values(row).execute();
    return toReq(row);
  }

  async requestById(id: string): Promise<AuthorisationRequest> {
    if (typeof id !== 'string' || id.length > 64) throw new ConsentError('ERR_CONSENT_NOT_FOUND', 'request not found');
    const r = await this.db.selectFrom('consent_requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) throw new ConsentError('ERR_CONSENT_NOT_FOUND', `request ${id} not found`);
    return toReq(r);
  }

  async requests(f: { tenant?: string; state?: RequestState } = {}): Promise<AuthorisationRequest[]> {
    let q = this.db.selectFrom('consent_requests').selectAll();
    if (f.tenant) q = q.where('tenant_id', '=', f.tenant);
    if (f.state) q = q.where('state', '=', f.state);
    return (await q.orderBy('created_at').orderBy('id').execute()).map(toReq);
  }

  /** The tenant grants a pending request: the authorisation is created in the same transaction. */
  async grantRequest(who: ConsentActor, id: string, o: { ttlSeconds?: number } = {}): Promise<{ request: AuthorisationRequest; authorisation: Authorisation }> {
    const req = await this.requestById(id);
    if (req.state !== 'pending') throw new ConsentError('ERR_CONSENT_STATE', `request ${id} is ${req.state}`);
    const ttl = o.ttlSeconds === undefined ? req.ttlSeconds : this.checkTtl(o.ttlSeconds);
    return withTransaction(this.db, async (tx) => {
      const input: GrantInput = { tenant: req.tenant, aid: req.aid, operation: req.operation, ttlSeconds: ttl, ...(req.cardUids ? { cards: req.cardUids } : { profile: req.cardProfile! }) };
      const authorisation = await this.grant(who, input, req.id, tx);
      const now = this.now();
      const u = await tx
        .updateTable('consent_requests')
        .set({ state: 'granted', decided_by: who.actor, decided_at: now, authorisation_id: authorisation.id })
        .where('id', '=', id)
        .where('state', '=', 'pending')
        .executeTakeFirst();
      if ((u.numUpdatedRows ?? 0n) === 0n) throw new ConsentError('ERR_CONSENT_STATE', `request ${id} was decided concurrently`);
      return { request: { ...req, state: 'granted', decidedBy: who.actor, decidedAt: now, authorisationId: authorisation.id }, authorisation };
    });
  }

  /** The tenant refuses a pending request (a reason is kept). */
  async refuseRequest(who: ConsentActor, id: string, reason: string): Promise<AuthorisationRequest> {
    return this.decideRequest(who, id, 'refused', reason);
  }

  /** The issuer withdraws its own pending request. */
  async cancelRequest(who: ConsentActor, id: string): Promise<AuthorisationRequest> {
    return this.decideRequest(who, id, 'cancelled', null);
  }

  private async decideRequest(who: ConsentActor, id: string, state: 'refused' | 'cancelled', reason: string | null): Promise<AuthorisationRequest> {
    if (reason !== null && (typeof reason !== 'string' || reason.length > 512)) throw invalid('reason: up to 512 characters');
    const req = await this.requestById(id);
    if (req.state !== 'pending') throw new ConsentError('ERR_CONSENT_STATE', `request ${id} is ${req.state}`);
    const now = this.now();
    const u = await this.db.updateTable('consent_requests').set({ state, decided_by: who.actor, decided_at: now, decision_reason: reason }).where('id', '=', id).where('state', '=', 'pending').executeTakeFirst();
    if ((u.numUpdatedRows ?? 0n) === 0n) throw new ConsentError('ERR_CONSENT_STATE', `request ${id} was decided concurrently`);
    return { ...req, state, decidedBy: who.actor, decidedAt: now, decisionReason: reason };
  }

  // ---- cardholder consent ------------------------------------------------------------------

  /** Record that a cardholder agreed to an application on their card. */
  async recordConsent(who: ConsentActor, i: { uid: string; aid: string; cardholder: string; evidence?: string; givenAt?: number }): Promise<CardholderConsent> {
    const uid = checkUid(i.uid);
    const aid = checkAid(i.aid);
    if (typeof i.cardholder !== 'string' || !REF_RE.test(i.cardholder)) throw invalid('cardholder: an opaque reference (1..128 of A-Z a-z 0-9 . _ : @ -)');
    if (i.evidence !== undefined && (typeof i.evidence !== 'string' || i.evidence.length > 512)) throw invalid('evidence: up to 512 characters');
    const givenAt = i.givenAt ?? this.now();
    if (!Number.isInteger(givenAt) || givenAt < 0 || givenAt > this.now() + 60_000) throw invalid('givenAt: ms since the epoch, not in the future');
    const tenant = await this.applicationTenant(aid);
    const open = await this.db.selectFrom('cardholder_consents').select('id').where('uid', '=', uid).where('aid', '=', aid).where('state', '=', 'given').executeTakeFirst();
    if (open) throw new ConsentError('ERR_CONSENT_STATE', `a consent for application ${aid} on card ${uid} is already recorded (${open.id})`);
    const row: CnsRow = { id: newId('cns'), uid, aid, tenant_id: tenant, cardholder: i.cardholder, state: 'given', given_at: givenAt, recorded_by: who.actor, evidence: i.evidence ?? null, withdrawn_at: null, withdrawn_by: null };
    await this.db.insertInto('cardholder_consents').values(row).execute();
    return toConsent(row);
  }

  async consent(id: string): Promise<CardholderConsent> {
    if (typeof id !== 'string' || id.length > 64) throw new ConsentError('ERR_CONSENT_NOT_FOUND', 'consent not found');
    const r = await this.db.selectFrom('cardholder_consents').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) throw new ConsentError('ERR_CONSENT_NOT_FOUND', `consent ${id} not found`);
    return toConsent(r);
  }

  async consents(f: { uid?: string; aid?: string; tenant?: string } = {}): Promise<CardholderConsent[]> {
    let q = this.db.selectFrom('cardholder_consents').selectAll();
    if (f.uid) q = q.where('uid', '=', checkUid(f.uid));
    if (f.aid) q = q.where('aid', '=', checkAid(f.aid));
    if (f.tenant) q = q.where('tenant_id', '=', f.tenant);
    return (await q.orderBy('given_at').orderBy('id').execute()).map(toConsent);
  }

  /**
   * The cardholder withdraws consent. If the application is on the card, its deletion is scheduled
   * for the card's next presentation: a delete authorisation (granted by `cardholder:<ref>`) and a
   * pending deletion, in one transaction with the withdrawal.
   */
  async withdrawConsent(who: ConsentActor, id: string): Promise<{ consent: CardholderConsent; deletion: PendingDeletion | null }> {
    const c = await this.consent(id);
    if (c.state !== 'given') throw new ConsentError('ERR_CONSENT_STATE', `consent ${id} is already withdrawn`);
    const now = this.now();
    const out = await withTransaction(this.db, async (tx) => {
      const u = await tx.updateTable('cardholder_consents').set({ state: 'withdrawn', withdrawn_at: now, withdrawn_by: who.actor }).where('id', '=', id).where('state', '=', 'given').executeTakeFirst();
      if ((u.numUpdatedRows ?? 0n) === 0n) throw new ConsentError('ERR_CONSENT_STATE', `consent ${id} was withdrawn concurrently`);
      const installed = await tx.selectFrom('card_applications').select('aid').where('uid', '=', c.uid).where('aid', '=', c.aid).executeTakeFirst();
      let deletion: PendingDeletion | null = null;
      if (installed) {
        const auth = await this.grant({ actor: `cardholder:${c.cardholder}` }, { tenant: c.tenant, aid: c.aid, operation: 'delete', cards: [c.uid], ttlSeconds: DELETION_TTL_S }, null, tx);
        const row: DelRow = { uid: c.uid, aid: c.aid, tenant_id: c.tenant, reason: 'consent_withdrawn', consent_id: c.id, authorisation_id: auth.id, state: 'pending', created_at: now, done_at: null };
        await tx.insertInto('pending_deletions').values(row).execute();
        deletion = toDeletion(row);
      }
      return { consent: { ...c, state: 'withdrawn' as const, withdrawnAt: now, withdrawnBy: who.actor }, deletion };
    });
    await this.audit(who, {
      operation: 'consent.withdraw',
      result: 'ok',
      tenant: c.tenant,
      aid: c.aid,
      cardUid: c.uid,
      details: { consent: c.id, deletion: out.deletion ? out.deletion.authorisationId : null },
    });
    return out;
  }

  /**
   * Deletions waiting for the card's next presentation (what a station / the key-delivery path asks
   * when a card is presented). A deletion whose application is no longer on the card is done.
   */
  async pendingDeletions(f: { uid?: string; tenant?: string; aids?: string[] } = {}): Promise<PendingDeletion[]> {
    let q = this.db.selectFrom('pending_deletions').selectAll().where('state', '=', 'pending');
    if (f.uid) q = q.where('uid', '=', checkUid(f.uid));
    if (f.tenant) q = q.where('tenant_id', '=', f.tenant);
    if (f.aids) {
      if (f.aids.length === 0) return [];
      q = q.where('aid', 'in', f.aids.map(checkAid));
    }
    const rows = (await q.orderBy('created_at').execute()).map(toDeletion);
    const out: PendingDeletion[] = [];
    for (const d of rows) {
      const still = await this.db.selectFrom('card_applications').select('aid').where('uid', '=', d.uid).where('aid', '=', d.aid).executeTakeFirst();
      if (still) out.push(d);
      else await this.completeDeletion(d.uid, d.aid);
    }
    return out;
  }

  /** Mark the pending deletion of (uid, aid) done (the delete job's receipt was recorded). */
  async completeDeletion(uid: string, aid: string): Promise<number> {
    const r = await this.db.updateTable('pending_deletions').set({ state: 'done', done_at: this.now() }).where('uid', '=', checkUid(uid)).where('aid', '=', checkAid(aid)).where('state', '=', 'pending').executeTakeFirst();
    return Number(r.numUpdatedRows ?? 0n);
  }
}

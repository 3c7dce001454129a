// The many-AID policy check of one card (a personalise job's installs): requireAuthorisationForCard
// must decide every (tenant, AID) exactly as requireAuthorisation decides it alone — same
// authorisation id, or same refusal (code, message, reason) — and write the same audit entries,
// over a matrix of authorisation states (scope card / batch / policy by profile / '*', expired,
// not yet valid, revoked, another card, another operation, several covering at once), card
// profiles, instants, operations and cardholder consent; from ONE query. On SQLite and PostgreSQL.
import { readFileSync } from 'node:fs';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsentService } from '../../src/cms/consent/index.js';
import type { AuditInput } from '../../src/cms/audit/entry.js';
import { CardRepository, TenantRepository } from '../../src/cms/domain/index.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import type { Database, DatabaseHandle } from '../../src/cms/storage/index.js';
import { type Backend, postgresAvailable, postgresBackend, sqliteBackend } from './storage-backends.js';

const CAMPUS = parseLayout(readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8'), 'campus.yaml');
const pgOk = await postgresAvailable();
const APPS = [
  { tenant: 'access', aid: 'A1C001' },
  { tenant: 'cafeteria', aid: 'CAFE01' },
  { tenant: 'library', aid: '11B001' },
  { tenant: 'transit', aid: '7A0001' },
];
const T0 = 1_800_000_000_000;
const HOUR = 3_600_000;
const PROFILES = ['staff', 'visitor', null] as const;
/** What is granted for one (card, AID), by index. */
const STATES = ['none', 'card', 'card-expired', 'card-later', 'card-revoked', 'other-card', 'batch', 'other-op', 'card+batch', 'batch-short'] as const;
const CARDS = Array.from({ length: 15 }, (_, i) => `04C2000000${i.toString(16).toUpperCase().padStart(4, '0')}`);

type Outcome = { ok: string } | { code: string; message: string; reason: string };

const backends: [string, () => Backend, boolean][] = [
  ['sqlite', sqliteBackend, true],
  ['postgres', postgresBackend, pgOk],
];

describe.each(backends)('requireAuthorisationForCard on %s', (_name, make, ok) => {
  let be: Backend;
  let h: DatabaseHandle;
  let statements = 0;
  let counted: Kysely<Database>;
  const audit: AuditInput[] = [];
  const rec = { record: async (e: AuditInput) => void audit.push(e) };
  const who = { actor: 'reader:station-1', correlationId: 'job_m' };

  beforeAll(async () => {
    if (!ok) return;
    be = make();
    h = await be.open();
    await new TenantRepository(h.db).registerLayout(CAMPUS);
    // statements EXECUTED (a plugin's transformResult runs once per execution, also for a query
    // compiled once and run again: requireAuthorisationForCard's is)
    counted = h.db.withPlugin({ transformQuery: (a) => a.node, transformResult: async (a) => (statements++, a.result) });
    const cards = new CardRepository(h.db);
    const svc = new ConsentService({ db: h.db, audit: rec, now: () => T0 });
    const admin = { actor: 'operator:admin' };
    for (const [i, uid] of CARDS.entries()) {
      const profile = PROFILES[i % PROFILES.length]!;
      await cards.createBlank(uid, profile ? { profile } : {});
      for (const [j, app] of APPS.entries()) {
        const state = STATES[(i + 3 * j) % STATES.length]!;
        const g = (o: Partial<Parameters<ConsentService['grant']>[1]>) => svc.grant(admin, { ...app, operation: 'install', cards: [uid], ttlSeconds: 2 * 3600, ...o });
        if (state === 'card') await g({});
        else if (state === 'card-expired') await g({ ttlSeconds: 60, validFrom: T0 - 2 * HOUR });
        else if (state === 'card-later') await g({ validFrom: T0 + HOUR / 2 });
        else if (state === 'card-revoked') await svc.revoke(admin, (await g({})).id);
        else if (state === 'other-card') await g({ cards: [CARDS[(i + 1) % CARDS.length]!] });
        else if (state === 'batch') await g({ cards: [uid, CARDS[(i + 2) % CARDS.length]!] });
        else if (state === 'other-op') await g({ operation: 'delete' });
        else if (state === 'card+batch') {
          await g({ cards: [uid, CARDS[(i + 5) % CARDS.length]!], ttlSeconds: 3600 });
          await g({ ttlSeconds: 7200 });
        } else if (state === 'batch-short') await g({ cards: [uid, CARDS[(i + 4) % CARDS.length]!], ttlSeconds: 1800 });
      }
      // cardholder consent on some cards and AIDs, one withdrawn
      if (i % 2 === 0) await svc.recordConsent(admin, { uid, aid: APPS[i % 4]!.aid, cardholder: `ch-${i}`, givenAt: T0 - HOUR });
      if (i % 3 === 0) await svc.recordConsent(admin, { uid, aid: APPS[(i + 1) % 4]!.aid, cardholder: `ch-${i}`, givenAt: T0 - HOUR });
      if (i % 6 === 0) {
        const c = (await svc.consents({ uid, aid: APPS[(i + 1) % 4]!.aid }))[0]!;
        await svc.withdrawConsent(admin, c.id);
      }
    }
    // standing policies: by profile, for every card, revoked, expiring mid-matrix
    await svc.grant(admin, { ...APPS[0]!, operation: 'install', profile: 'staff', ttlSeconds: 24 * 3600 });
    await svc.grant(admin, { ...APPS[1]!, operation: 'install', profile: '*', ttlSeconds: 3600 });
    await svc.revoke(admin, (await svc.grant(admin, { ...APPS[2]!, operation: 'install', profile: '*', ttlSeconds: 24 * 3600 })).id);
    await svc.grant(admin, { ...APPS[3]!, operation: 'delete', profile: 'visitor', ttlSeconds: 24 * 3600 });
    await svc.grant(admin, { ...APPS[3]!, operation: 'install', profile: 'visitor', ttlSeconds: 24 * 3600, validFrom: T0 + HOUR / 4 });
  }, 120_000);
  afterAll(async () => {
    if (ok) await be.cleanup();
  });

  const outcome = (e: unknown): Outcome => {
    const x = e as { code?: string; message: string; details?: { reason?: unknown } };
    if (!x.code) throw e;
    return { code: x.code, message: x.message, reason: String(x.details?.reason ?? '') };
  };
  const sortEntries = (a: AuditInput[]) => a.map((e) => JSON.stringify(e)).sort();

  /** Every AID alone (the single check), then all at once (the batch): same decisions, same entries. */
  async function compare(svc: ConsentService, q: { cardUid: string; operation: 'install' | 'delete'; at: number; apps: { tenant: string; aid: string }[]; issueProfile?: string }): Promise<Outcome[]> {
    const a0 = audit.length;
    const single: Outcome[] = [];
    for (const app of q.apps)
      single.push(await svc.requireAuthorisation({ ...app, cardUid: q.cardUid, operation: q.operation, at: q.at, ...(q.issueProfile !== undefined ? { issueProfile: q.issueProfile } : {}) }, who).then((id) => ({ ok: id }), outcome));
    const singleEntries = audit.slice(a0);
    const a1 = audit.length;
    const s0 = statements;
    const batch = await svc.requireAuthorisationForCard(q, who).then((ids) => ({ ids }), (e: unknown) => ({ e: e as { code: string; message: string; details: Record<string, unknown> } }));
    expect(statements - s0).toBeLessThanOrEqual(1);
    expect(sortEntries(audit.slice(a1))).toEqual(sortEntries(singleEntries));
    const refused = single.flatMap((o, i) => ('ok' in o ? [] : [i]));
    if (refused.length === 0) expect(batch).toEqual({ ids: single.map((o) => (o as { ok: string }).ok) });
    else {
      const first = single[refused[0]!] as Exclude<Outcome, { ok: string }>;
      expect('e' in batch).toBe(true);
      const e = (batch as { e: { code: string; message: string; details: Record<string, unknown> } }).e;
      expect({ code: e.code, message: e.message, reason: String(e.details.reason ?? '') }).toEqual(first);
      expect(e.details.aid).toBe(String(q.apps[refused[0]!]!.aid).toUpperCase());
      expect(e.details.refused).toEqual(refused.map((i) => String(q.apps[i]!.aid).toUpperCase()));
    }
    return single;
  }

  it.skipIf(!ok)('the matrix: every card x instant x operation x cardholder-consent rule, the batched decision is the single one per AID', async () => {
    const svc = new ConsentService({ db: counted, audit: rec, now: () => T0 });
    const strict = new ConsentService({ db: counted, audit: rec, now: () => T0, requireCardholderConsent: true });
    const seen = { ok: 0, refused: 0, reasons: new Set<string>() };
    for (const uid of CARDS)
      for (const at of [T0 - 1, T0, T0 + HOUR / 4, T0 + HOUR, T0 + 3 * HOUR])
        for (const operation of ['install', 'delete'] as const)
          for (const s of operation === 'install' ? [svc, strict] : [svc]) {
            const r = await compare(s, { cardUid: uid, operation, at, apps: APPS });
            for (const o of r)
              if ('ok' in o) seen.ok++;
              else {
                seen.refused++;
                seen.reasons.add(o.reason);
              }
          }
    // the matrix reaches both outcomes and every reason a refusal can have here
    expect(seen.ok).toBeGreaterThan(50);
    expect(seen.refused).toBeGreaterThan(50);
    expect(seen.reasons).toContain('cardholder consent');
    expect([...seen.reasons].some((r) => r.includes('expired'))).toBe(true);
    expect([...seen.reasons].some((r) => r.includes('revoked'))).toBe(true);
    expect([...seen.reasons].some((r) => r.includes('not yet valid'))).toBe(true);
    expect([...seen.reasons].some((r) => r.includes('card profile'))).toBe(true);
    expect([...seen.reasons].some((r) => r.includes('card'))).toBe(true);
  }, 120_000);

  it.skipIf(!ok)('fully authorised card: the ids in the order asked, one query, one ok entry per (tenant, AID)', async () => {
    const svc = new ConsentService({ db: counted, audit: rec, now: () => T0 });
    const admin = { actor: 'operator:admin' };
    const uid = '04C20000FFFF01';
    await new CardRepository(h.db).createBlank(uid);
    const ids: string[] = [];
    for (const app of APPS) ids.push((await svc.grant(admin, { ...app, operation: 'install', cards: [uid], ttlSeconds: 600 })).id);
    const a0 = audit.length;
    const s0 = statements;
    const rev = [...APPS].reverse();
    expect(await svc.requireAuthorisationForCard({ cardUid: uid.toLowerCase(), operation: 'install', at: T0, apps: rev.map((a) => ({ ...a, aid: a.aid.toLowerCase() })) }, who)).toEqual([...ids].reverse());
    expect(statements - s0).toBe(1);
    const entries = audit.slice(a0);
    expect(entries.map((e) => [e.operation, e.result, e.tenant, e.aid, e.cardUid]).sort()).toEqual(APPS.map((a) => ['consent.check', 'ok', a.tenant, a.aid, uid]).sort());
    expect(entries.every((e) => e.actor === who.actor && e.correlationId === who.correlationId)).toBe(true);
  });

  it.skipIf(!ok)("issueProfile (the profile an issuing job gives the card): decides for a card with no record or a blank one, never for an issued card; both checks alike", async () => {
    const svc = new ConsentService({ db: counted, audit: rec, now: () => T0 });
    const cards = new CardRepository(h.db);
    const unseen = '04C20000FFFF10';
    const blank = '04C20000FFFF11';
    const issued = '04C20000FFFF12';
    await cards.createBlank(blank, { profile: 'visitor' });
    await cards.createBlank(issued, { profile: 'visitor' });
    await cards.transition(issued, 'issued');
    // APPS[0] (access) is covered on 'staff' cards only (a standing policy of that profile)
    const access = [APPS[0]!];
    const decide = async (uid: string, issueProfile?: string) => ('ok' in (await compare(svc, { cardUid: uid, operation: 'install', at: T0, apps: access, ...(issueProfile !== undefined ? { issueProfile } : {}) }))[0]! ? 'ok' : 'denied');
    expect(await decide(unseen)).toBe('denied');
    expect(await decide(unseen, 'staff')).toBe('ok');
    expect(await decide(unseen, 'visitor')).toBe('denied');
    expect(await decide(blank)).toBe('denied');
    expect(await decide(blank, 'staff')).toBe('ok');
    // an issued card: its record's profile, whatever the caller names
    expect(await decide(issued, 'staff')).toBe('denied');
    // a malformed issueProfile is a refusal (no card written by any of it)
    const bad = await compare(svc, { cardUid: unseen, operation: 'install', at: T0, apps: access, issueProfile: '*' });
    expect(bad[0]).toMatchObject({ code: 'ERR_CONSENT_DENIED', reason: 'ERR_CONSENT_INVALID' });
    expect(await cards.get(unseen)).toBeUndefined();
  });

  it.skipIf(!ok)('bad or foreign items refuse the whole card as the single check refuses them; every item still decided and audited', async () => {
    const svc = new ConsentService({ db: counted, audit: rec, now: () => T0 });
    const uid = CARDS[1]!;
    const count = async () => Number((await h.db.selectFrom('consent_authorisations').select(h.db.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    const n = await count();
    const cases: { tenant: string; aid: string }[][] = [
      [APPS[0]!, { tenant: 'access', aid: 'CAFE01' }], // another tenant's application
      [APPS[0]!, { tenant: 'access', aid: 'F00001' }], // not registered
      [{ tenant: '', aid: 'A1C001' }, APPS[1]!], // no tenant
      [APPS[2]!, { tenant: 'library', aid: 'XYZ' }], // not an AID
      [APPS[2]!, { tenant: 'library', aid: '000000' }], // the card master application
    ];
    for (const apps of cases) await compare(svc, { cardUid: uid, operation: 'install', at: T0, apps });
    await compare(svc, { cardUid: 'nope', operation: 'install', at: T0, apps: APPS });
    await compare(svc, { cardUid: uid, operation: 'format' as never, at: T0, apps: APPS });
    await compare(svc, { cardUid: uid, operation: 'install', at: Number.NaN, apps: APPS });
    await expect(svc.requireAuthorisationForCard({ cardUid: uid, operation: 'install', at: T0, apps: [] }, who)).rejects.toMatchObject({ code: 'ERR_CONSENT_INVALID' });
    // nothing was written by any of it
    expect(await count()).toBe(n);
  });
});

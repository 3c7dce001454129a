// Tenant consent and authorisation: the pure policy decision (properties), and the service on
// SQLite and a real PostgreSQL: grants, expiry, revocation, requests, cardholder consent and its
// withdrawal scheduling the application's deletion; every policy decision audited.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Authorisation, ConsentError, ConsentService, decide, mismatch } from '../../src/cms/consent/index.js';
import type { AuditInput } from '../../src/cms/audit/entry.js';
import { CardRepository, TenantRepository } from '../../src/cms/domain/index.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import type { DatabaseHandle } from '../../src/cms/storage/index.js';
import { type Backend, postgresAvailable, postgresBackend, sqliteBackend } from './storage-backends.js';

const CAMPUS = parseLayout(readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8'), 'campus.yaml');
const pgOk = await postgresAvailable();
const DAY = 86_400;

describe('policy decision (pure)', () => {
  const base: Authorisation = {
    id: 'auth_x',
    tenant: 'access',
    aid: 'A1C001',
    operation: 'install',
    scope: 'card',
    cardUids: ['04AABBCCDDEEFF'],
    cardProfile: null,
    validFrom: 1000,
    expiresAt: 2000,
    grantedBy: 'operator:tok_a',
    requestId: null,
    createdAt: 1000,
    revokedAt: null,
    revokedBy: null,
  };
  const q = { tenant: 'access', aid: 'A1C001', operation: 'install' as const, cardUid: '04AABBCCDDEEFF', at: 1500 };

  it('each field that does not match is named', () => {
    expect(mismatch(base, q)).toBeUndefined();
    expect(mismatch({ ...base, tenant: 'library' }, q)).toBe('tenant');
    expect(mismatch(base, { ...q, aid: 'CAFE01' })).toBe('aid');
    expect(mismatch(base, { ...q, operation: 'delete' })).toBe('operation');
    expect(mismatch(base, { ...q, at: 2000 })).toBe('expired');
    expect(mismatch(base, { ...q, at: 999 })).toBe('not yet valid');
    expect(mismatch({ ...base, revokedAt: 1400 }, q)).toBe('revoked');
    expect(mismatch({ ...base, revokedAt: 1600 }, q)).toBeUndefined();
    expect(mismatch(base, { ...q, cardUid: '04AABBCCDDEE00' })).toBe('card');
    const policy = { ...base, scope: 'policy' as const, cardUids: null, cardProfile: 'staff' };
    expect(mismatch(policy, q)).toBe('card profile');
    expect(mismatch(policy, { ...q, cardProfile: 'staff' })).toBeUndefined();
    expect(mismatch(policy, { ...q, cardProfile: 'visitor' })).toBe('card profile');
    expect(mismatch({ ...policy, cardProfile: '*' }, q)).toBeUndefined();
  });

  it('most specific wins: card over batch over policy', () => {
    const card = base;
    const batch = { ...base, id: 'auth_b', scope: 'batch' as const, cardUids: ['04AABBCCDDEEFF', '04AABBCCDDEE01'] };
    const pol = { ...base, id: 'auth_p', scope: 'policy' as const, cardUids: null, cardProfile: '*' };
    expect(decide([pol, batch, card], q)?.id).toBe('auth_x');
    expect(decide([pol, batch], q)?.id).toBe('auth_b');
    expect(decide([pol], q)?.id).toBe('auth_p');
  });

  it('property: the chosen authorisation always covers the query; none is chosen iff none covers it', () => {
    const uid = fc.constantFrom('04000000000001', '04000000000002', '04000000000003');
    const auth = fc.record({
      id: fc.string({ minLength: 1, maxLength: 4 }).map((s) => `auth_${s}`),
      tenant: fc.constantFrom('access', 'library'),
      aid: fc.constantFrom('A1C001', '11B001'),
      operation: fc.constantFrom('install' as const, 'rotate' as const, 'delete' as const),
      scope: fc.constantFrom('card' as const, 'batch' as const, 'policy' as const),
      cardUids: fc.array(uid, { minLength: 1, maxLength: 3 }),
      cardProfile: fc.constantFrom('*', 'staff', 'visitor'),
      validFrom: fc.integer({ min: 0, max: 100 }),
      len: fc.integer({ min: 1, max: 100 }),
      revokedAt: fc.option(fc.integer({ min: 0, max: 200 }), { nil: null }),
    });
    const query = fc.record({
      tenant: fc.constantFrom('access', 'library'),
      aid: fc.constantFrom('A1C001', '11B001'),
      operation: fc.constantFrom('install' as const, 'rotate' as const, 'delete' as const),
      cardUid: uid,
      cardProfile: fc.option(fc.constantFrom('staff', 'visitor'), { nil: undefined }),
      at: fc.integer({ min: 0, max: 200 }),
    });
    fc.assert(
      fc.property(fc.array(auth, { maxLength: 8 }), query, (raw, qq) => {
        const list: Authorisation[] = raw.map((r) => ({
          id: r.id,
          tenant: r.tenant,
          aid: r.aid,
          operation: r.operation,
          scope: r.scope,
          cardUids: r.scope === 'policy' ? null : r.cardUids,
          cardProfile: r.scope === 'policy' ? r.cardProfile : null,
          validFrom: r.validFrom,
          expiresAt: r.validFrom + r.len,
          grantedBy: 'x',
          requestId: null,
          createdAt: 0,
          revokedAt: r.revokedAt,
          revokedBy: null,
        }));
        const q2 = qq.cardProfile === undefined ? { ...qq, cardProfile: undefined as never } : qq;
        const { cardProfile, ...rest } = q2;
        const query2 = cardProfile === undefined ? rest : { ...rest, cardProfile };
        const chosen = decide(list, query2);
        const covering = list.filter((a) => mismatch(a, query2) === undefined);
        if (chosen) {
          expect(mismatch(chosen, query2)).toBeUndefined();
          expect(chosen.revokedAt === null || chosen.revokedAt > query2.at).toBe(true);
          expect(query2.at < chosen.expiresAt && query2.at >= chosen.validFrom).toBe(true);
          expect(chosen.tenant).toBe(query2.tenant);
        } else expect(covering).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });
});

const backends: [string, () => Backend, boolean][] = [
  ['sqlite', sqliteBackend, true],
  ['postgres', postgresBackend, pgOk],
];

describe.each(backends)('consent service on %s', (_name, make, ok) => {
  let be: Backend;
  let h: DatabaseHandle;
  let svc: ConsentService;
  let strict: ConsentService;
  let now = 1_800_000_000_000;
  const audit: AuditInput[] = [];
  const admin = { actor: 'operator:tok_access', correlationId: 'req-1' };
  const UID = '04A1B2C3D4E5F6';
  const UID2 = '04A1B2C3D4E5F7';

  beforeAll(async () => {
    if (!ok) return;
    be = make();
    h = await be.open();
    await new TenantRepository(h.db).registerLayout(CAMPUS);
    const cards = new CardRepository(h.db);
    await cards.createBlank(UID);
    await cards.createBlank(UID2);
    const rec = { record: async (e: AuditInput) => void audit.push(e) };
    svc = new ConsentService({ db: h.db, audit: rec, now: () => now });
    strict = new ConsentService({ db: h.db, audit: rec, now: () => now, requireCardholderConsent: true });
  }, 60_000);
  afterAll(async () => {
    if (ok) await be.cleanup();
  });

  const need = (q: Parameters<ConsentService['requireAuthorisation']>[0]) => svc.requireAuthorisation(q, { actor: 'reader:station-1', correlationId: 'job_1' });

  it.skipIf(!ok)('no authorisation → ERR_CONSENT_DENIED, audited as denied', async () => {
    const before = audit.length;
    const p = need({ tenant: 'access', aid: 'A1C001', operation: 'install', cardUid: UID, at: now });
    await expect(p).rejects.toBeInstanceOf(ConsentError);
    await expect(p).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
    const e = audit.slice(before);
    expect(e.map((x) => [x.operation, x.result])).toEqual([['consent.check', 'denied']]);
    expect(e[0]).toMatchObject({ tenant: 'access', aid: 'A1C001', cardUid: UID, actor: 'reader:station-1', correlationId: 'job_1' });
  });

  it.skipIf(!ok)('a card authorisation covers that card, that operation, until it expires; the decision names it', async () => {
    const a = await svc.grant(admin, { tenant: 'access', aid: 'a1c001', operation: 'install', cards: [UID.toLowerCase()], ttlSeconds: 3600 });
    expect([a.scope, a.cardUids, a.aid]).toEqual(['card', [UID], 'A1C001']);
    expect(await need({ tenant: 'access', aid: 'A1C001', operation: 'install', cardUid: UID, at: now })).toBe(a.id);
    expect(audit.at(-1)).toMatchObject({ operation: 'consent.check', result: 'ok', details: { authorisation: a.id } });
    await expect(need({ tenant: 'access', aid: 'A1C001', operation: 'install', cardUid: UID2, at: now })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
    await expect(need({ tenant: 'access', aid: 'A1C001', operation: 'delete', cardUid: UID, at: now })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
    await expect(need({ tenant: 'access', aid: 'A1C001', operation: 'install', cardUid: UID, at: now + 3600_000 })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
    expect(audit.at(-1)).toMatchObject({ result: 'denied', details: { reason: 'expired' } });
  });

  it.skipIf(!ok)("a tenant cannot authorise another tenant's application, nor the card master application", async () => {
    await expect(svc.grant(admin, { tenant: 'access', aid: 'CAFE01', operation: 'install', cards: [UID], ttlSeconds: 60 })).rejects.toMatchObject({ code: 'ERR_CONSENT_FORBIDDEN' });
    await expect(svc.grant(admin, { tenant: 'access', aid: '000000', operation: 'install', cards: [UID], ttlSeconds: 60 })).rejects.toMatchObject({ code: 'ERR_CONSENT_INVALID' });
    // and an authorisation of tenant A is never one for tenant B's application
    await expect(need({ tenant: 'access', aid: 'CAFE01', operation: 'install', cardUid: UID, at: now })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
    await expect(need({ tenant: 'cafeteria', aid: 'A1C001', operation: 'install', cardUid: UID, at: now })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
  });

  it.skipIf(!ok)('bad input changes no state', async () => {
    const count = async () => (await h.db.selectFrom('consent_authorisations').select(h.db.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n;
    const n = Number(await count());
    const bad: Parameters<ConsentService['grant']>[1][] = [
      { tenant: 'access', aid: 'A1C001', operation: 'install', ttlSeconds: 60 },
      { tenant: 'access', aid: 'A1C001', operation: 'install', cards: [UID], profile: 'staff', ttlSeconds: 60 },
      { tenant: 'access', aid: 'A1C001', operation: 'install', cards: [], ttlSeconds: 60 },
      { tenant: 'access', aid: 'A1C001', operation: 'install', cards: ['XYZ'], ttlSeconds: 60 },
      { tenant: 'access', aid: 'A1C001', operation: 'format' as never, cards: [UID], ttlSeconds: 60 },
      { tenant: 'access', aid: 'A1C001', operation: 'install', cards: [UID], ttlSeconds: 0 },
      { tenant: 'access', aid: 'A1C001', operation: 'install', profile: 'bad profile!', ttlSeconds: 60 },
      { tenant: 'access', aid: 'FFFFFF', operation: 'install', cards: [UID], ttlSeconds: 60 },
    ];
    for (const b of bad) await expect(svc.grant(admin, b)).rejects.toBeInstanceOf(ConsentError);
    expect(Number(await count())).toBe(n);
  });

  it.skipIf(!ok)("batch and standing policy (the card record's profile, not the caller's word); revocation ends a policy", async () => {
    const batch = await svc.grant(admin, { tenant: 'access', aid: 'A1C001', operation: 'rotate', cards: [UID, UID2, UID], ttlSeconds: 3600 });
    expect([batch.scope, batch.cardUids]).toEqual(['batch', [UID, UID2].sort()]);
    expect(await need({ tenant: 'access', aid: 'A1C001', operation: 'rotate', cardUid: UID2, at: now })).toBe(batch.id);
    const pol = await svc.grant(admin, { tenant: 'access', aid: 'A1C001', operation: 'delete', profile: 'staff', ttlSeconds: 30 * DAY });
    const cards = new CardRepository(h.db);
    // no profile on the card: a 'staff' policy does not cover it, whatever a caller claims
    await expect(need({ tenant: 'access', aid: 'A1C001', operation: 'delete', cardUid: UID2, at: now })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED', details: { reason: 'card profile' } });
    await expect(need({ tenant: 'access', aid: 'A1C001', operation: 'delete', cardUid: UID2, cardProfile: 'staff', at: now } as never)).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
    await cards.setProfile(UID2, 'visitor');
    await expect(need({ tenant: 'access', aid: 'A1C001', operation: 'delete', cardUid: UID2, at: now })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
    await cards.setProfile(UID2, 'staff');
    expect(await need({ tenant: 'access', aid: 'A1C001', operation: 'delete', cardUid: UID2, at: now })).toBe(pol.id);
    expect(await need({ tenant: 'access', aid: 'A1C001', operation: 'delete', cardUid: UID2, cardProfile: 'visitor', at: now } as never)).toBe(pol.id);
    // many cards at once read the same records
    await expect(svc.requireAuthorisationForCards({ tenant: 'access', aid: 'A1C001', operation: 'delete', at: now, cards: [{ uid: UID2 }, { uid: UID }] })).rejects.toMatchObject({ details: { uncovered: [UID], count: 1 } });
    expect((await svc.requireAuthorisationForCards({ tenant: 'access', aid: 'A1C001', operation: 'delete', at: now, cards: [{ uid: UID2 }] })).get(UID2)).toBe(pol.id);
    await expect(cards.setProfile(UID2, '*')).rejects.toMatchObject({ code: 'ERR_DOMAIN_BAD_INPUT' });
    expect((await cards.get(UID2))!.profile).toBe('staff');
    now += 1;
    const r = await svc.revoke(admin, pol.id);
    expect(r.revokedAt).toBe(now);
    await expect(svc.revoke(admin, pol.id)).rejects.toMatchObject({ code: 'ERR_CONSENT_STATE' });
    await expect(need({ tenant: 'access', aid: 'A1C001', operation: 'delete', cardUid: UID2, at: now })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
    expect((await svc.authorisations({ tenant: 'access', activeAt: now })).map((a) => a.id)).not.toContain(pol.id);
  });

  it.skipIf(!ok)('many cards at once (a rotation campaign): every card covered, or refused naming the uncovered ones', async () => {
    const b = await svc.grant(admin, { tenant: 'access', aid: 'A1C001', operation: 'rotate', cards: [UID], ttlSeconds: 3600 });
    const m = await svc.requireAuthorisationForCards({ tenant: 'access', aid: 'A1C001', operation: 'rotate', at: now, cards: [{ uid: UID }] });
    expect(m.get(UID)).toBe(b.id);
    expect(audit.at(-1)).toMatchObject({ operation: 'consent.check', result: 'ok' });
    const p = svc.requireAuthorisationForCards({ tenant: 'access', aid: 'A1C001', operation: 'rotate', at: now, cards: [{ uid: UID }, { uid: '04FFFFFFFFFFFF' }] });
    await expect(p).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED', details: { uncovered: ['04FFFFFFFFFFFF'], count: 1 } });
    expect(audit.at(-1)).toMatchObject({ operation: 'consent.check', result: 'denied' });
    await expect(svc.requireAuthorisationForCards({ tenant: 'cafeteria', aid: 'A1C001', operation: 'rotate', at: now, cards: [{ uid: UID }] })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
  });

  it.skipIf(!ok)('requests: the issuer asks, the tenant grants (authorisation names the request) or refuses; decided once', async () => {
    const issuer = { actor: 'operator:tok_issuer' };
    const r1 = await svc.request(issuer, { tenant: 'library', aid: '11B001', operation: 'install', cards: [UID], ttlSeconds: 600, reason: 'new student card' });
    const r2 = await svc.request(issuer, { tenant: 'library', aid: '11B001', operation: 'install', profile: 'student', ttlSeconds: 600, reason: 'all students' });
    await expect(svc.request(issuer, { tenant: 'library', aid: 'A1C001', operation: 'install', cards: [UID], ttlSeconds: 600, reason: 'x' })).rejects.toMatchObject({ code: 'ERR_CONSENT_FORBIDDEN' });
    expect((await svc.requests({ tenant: 'library', state: 'pending' })).map((r) => r.id).sort()).toEqual([r1.id, r2.id].sort());
    const lib = { actor: 'operator:tok_library' };
    const g = await svc.grantRequest(lib, r1.id, { ttlSeconds: 60 });
    expect(g.request).toMatchObject({ state: 'granted', authorisationId: g.authorisation.id, decidedBy: lib.actor });
    expect(g.authorisation).toMatchObject({ requestId: r1.id, grantedBy: lib.actor, expiresAt: now + 60_000, cardUids: [UID] });
    expect(await need({ tenant: 'library', aid: '11B001', operation: 'install', cardUid: UID, at: now })).toBe(g.authorisation.id);
    await expect(svc.grantRequest(lib, r1.id)).rejects.toMatchObject({ code: 'ERR_CONSENT_STATE' });
    const f = await svc.refuseRequest(lib, r2.id, 'not for visitors');
    expect(f).toMatchObject({ state: 'refused', decisionReason: 'not for visitors', authorisationId: null });
    await expect(svc.grantRequest(lib, r2.id)).rejects.toMatchObject({ code: 'ERR_CONSENT_STATE' });
    expect(await svc.requests({ tenant: 'library', state: 'pending' })).toEqual([]);
  });

  it.skipIf(!ok)('cardholder consent: an install needs it where the deployment says so; withdrawal schedules the deletion', async () => {
    const cards = new CardRepository(h.db);
    const a = await svc.grant({ actor: 'operator:tok_cafe' }, { tenant: 'cafeteria', aid: 'CAFE01', operation: 'install', cards: [UID2], ttlSeconds: 3600 });
    await expect(strict.requireAuthorisation({ tenant: 'cafeteria', aid: 'CAFE01', operation: 'install', cardUid: UID2, at: now })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
    expect(audit.at(-1)).toMatchObject({ result: 'denied', details: { reason: 'cardholder consent' } });
    const c = await svc.recordConsent({ actor: 'operator:tok_desk' }, { uid: UID2, aid: 'CAFE01', cardholder: 'holder-42', evidence: 'form 2026-117' });
    expect(c).toMatchObject({ state: 'given', tenant: 'cafeteria', cardholder: 'holder-42' });
    await expect(svc.recordConsent({ actor: 'x' }, { uid: UID2, aid: 'CAFE01', cardholder: 'holder-42' })).rejects.toMatchObject({ code: 'ERR_CONSENT_STATE' });
    expect(await strict.requireAuthorisation({ tenant: 'cafeteria', aid: 'CAFE01', operation: 'install', cardUid: UID2, at: now })).toBe(a.id);
    // the application gets installed (as a completed job would record it)
    await cards.transition(UID2, 'issued');
    await cards.recordInstallation(UID2, 'CAFE01', [0, 1, 2].map((keyNo) => ({ keyNo, version: 1 })), now);
    await expect(need({ tenant: 'cafeteria', aid: 'CAFE01', operation: 'delete', cardUid: UID2, at: now })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
    const w = await svc.withdrawConsent({ actor: 'operator:tok_desk', correlationId: 'req-w' }, c.id);
    expect(w.consent.state).toBe('withdrawn');
    expect(w.deletion).toMatchObject({ uid: UID2, aid: 'CAFE01', state: 'pending', reason: 'consent_withdrawn', consentId: c.id });
    await expect(svc.withdrawConsent({ actor: 'x' }, c.id)).rejects.toMatchObject({ code: 'ERR_CONSENT_STATE' });
    // the delete job at the next presentation runs under the authorisation the withdrawal created
    expect(await need({ tenant: 'cafeteria', aid: 'CAFE01', operation: 'delete', cardUid: UID2, at: now })).toBe(w.deletion!.authorisationId);
    expect((await svc.authorisation(w.deletion!.authorisationId)).grantedBy).toBe('cardholder:holder-42');
    expect((await svc.pendingDeletions({ uid: UID2 })).map((d) => d.aid)).toEqual(['CAFE01']);
    expect(await svc.pendingDeletions({ uid: UID2, aids: ['A1C001'] })).toEqual([]);
    // an install is refused again once consent is withdrawn
    await expect(strict.requireAuthorisation({ tenant: 'cafeteria', aid: 'CAFE01', operation: 'install', cardUid: UID2, at: now })).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED' });
    // once the application is gone from the card, the deletion is done
    await cards.removeApplication(UID2, 'CAFE01');
    expect(await svc.pendingDeletions({ uid: UID2 })).toEqual([]);
    const row = await h.db.selectFrom('pending_deletions').selectAll().where('uid', '=', UID2).executeTakeFirstOrThrow();
    expect(row.state).toBe('done');
  });

  it.skipIf(!ok)('withdrawal of consent for an application not on the card schedules nothing', async () => {
    const c = await svc.recordConsent({ actor: 'x' }, { uid: UID, aid: '11B001', cardholder: 'holder-7' });
    const w = await svc.withdrawConsent({ actor: 'x' }, c.id);
    expect(w.deletion).toBeNull();
  });
});

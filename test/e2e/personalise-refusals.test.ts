// A refused issue/personalise job changes no state — also when it names the card's profile. The
// profile is what tenants' standing policies match, so the consent check decides on the profile
// the request gives a card that has no record yet (or is still blank); the card row (created, or its
// profile set) is written in the job's own transaction, never before the checks. Refused by consent,
// by a role check, by ISO002, by an open job or by bad input: the cards, station_jobs and
// card_key_blobs tables are unchanged, and the audit log gains only the refusal's entries (the
// refused job_create / api.refused, and — for a consent refusal — the consent decision of each
// (tenant, AID) it checked).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { ConsentService } from '../../src/cms/consent/index.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import { type CmsClient, StationClient, readUid } from '../../src/reader/station/client.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { CAMPUS, CAMPUS_AIDS, type E2e, TENANT_OF, startE2e } from './harness.js';

const campus = parseLayout(CAMPUS, 'campus.yaml');
const NO_RANDOM = { keySettings: { ...campus.picc.keySettings }, randomUid: false };
// another tenant's application whose key 1 is diversified from the access tenant's master of
// A1C001 key 1: each layout lints clean alone, a job installing both is ISO002
const SHARED_MASTER = `version: 1
name: intruder
picc:
  keySettings: { masterKeyChangeable: true, freeDirectoryListing: false, freeCreateDelete: false, configurationChangeable: true }
tenants:
  - id: intruder
    name: Shares a master
    applications:
      - aid: "B0B001"
        name: shared
        keys:
          - { no: 0, role: amk }
          - { no: 1, role: read, derivation: { method: diversified, master: access/A1C001/1 } }
        files:
          - no: 1
            name: data
            type: std
            size: 16
            comm: full
            access: { read: read, write: never, readWrite: never, change: amk }
`;

describe('personalise / issue refusals change no state (with a card profile)', () => {
  let h: E2e;
  let stationCms: CmsClient;
  let station: StationClient;
  let partial: CmsClient;
  const db = () => h.cms.db.db;
  const consent = () => new ConsentService({ db: db() });

  /** Every row of the tables a job writes, and the audit log's size. */
  async function snapshot() {
    const [cards, jobs, blobs, size] = await Promise.all([
      db().selectFrom('cards').selectAll().orderBy('uid').execute(),
      db().selectFrom('station_jobs').selectAll().orderBy('id').execute(),
      db().selectFrom('card_key_blobs').selectAll().orderBy('uid').orderBy('aid').orderBy('key_no').orderBy('key_version').execute(),
      db().selectFrom('audit_entries').select((eb) => eb.fn.max('idx').as('n')).executeTakeFirst(),
    ]);
    return { cards, jobs, blobs, idx: Number(size?.n ?? -1) };
  }

  /** The state is as in `before`; the audit entries since are the refusal's only. */
  async function unchanged(before: Awaited<ReturnType<typeof snapshot>>, what: string) {
    const after = await snapshot();
    expect(after.cards, `${what}: cards`).toEqual(before.cards);
    expect(after.jobs, `${what}: station_jobs`).toEqual(before.jobs);
    expect(after.blobs, `${what}: card_key_blobs`).toEqual(before.blobs);
    const entries = await db().selectFrom('audit_entries').select(['operation', 'result', 'aid']).where('idx', '>', before.idx).orderBy('idx').execute();
    const kept = entries.filter((e) => !(e.result === 'denied' || e.result === 'refused') && e.operation !== 'consent.check');
    expect(kept, `${what}: audit entries other than the refusal's`).toEqual([]);
    expect(entries.some((e) => e.operation === 'station.job_create' && e.result === 'denied'), `${what}: the refusal audited`).toBe(true);
    return entries;
  }

  beforeAll(async () => {
    h = await startE2e({});
    expect((await h.op('POST', '/v1/layouts', CAMPUS, 'application/yaml')).status).toBe(201);
    expect((await h.op('POST', '/v1/layouts', SHARED_MASTER, 'application/yaml')).status).toBe(201);
    stationCms = await h.reader('station-1', CAMPUS_AIDS.map((aid, i) => ({ aid, keyNo: 0, operations: i === 0 ? ['install', 'issue'] : ['install'] })));
    expect((await h.op('POST', '/v1/readers/station-1/roles', { tenantId: 'intruder', aid: 'B0B001', keyNo: 0, operations: ['install'] })).status).toBe(201);
    station = new StationClient(stationCms, { readerId: 'station-1' });
    partial = await h.reader('station-2', CAMPUS_AIDS.slice(0, 3).map((aid, i) => ({ aid, keyNo: 0, operations: i === 0 ? ['install', 'issue'] : ['install'] })));
    // the library installs only on 'staff' cards (a standing policy of that profile)
    const c = consent();
    const admin = { actor: 'operator:test' };
    for (const a of await c.authorisations({ tenant: 'library', aid: '11B001', operation: 'install', activeAt: Date.now() })) await c.revoke(admin, a.id);
    await c.grant(admin, { tenant: 'library', aid: '11B001', operation: 'install', profile: 'staff', ttlSeconds: 3600 });
  }, 120_000);

  afterAll(async () => {
    await h?.close();
  });

  const personalise = (uid: string, aids: string[], profile?: string, client = stationCms) =>
    client.call('POST', '/v1/station/jobs', { kind: 'personalise', uid, aids, picc: NO_RANDOM, ...(profile ? { profile } : {}), claim: true });

  it('refused by consent (the profile asked is not covered): no card row, no job, no blob; only the decisions and the refusal audited', async () => {
    const uid = await readUid(new InProcessTransport(VirtualCard.create()));
    const before = await snapshot();
    const r = await personalise(uid, CAMPUS_AIDS, 'visitor');
    expect([r.status, r.body.error.code]).toEqual([403, 'ERR_CONSENT_DENIED']);
    expect(r.body.error.message).toContain('11B001');
    const entries = await unchanged(before, 'consent');
    // each (tenant, AID) decision audited: the library's denied on the profile asked
    expect(entries.filter((e) => e.operation === 'consent.check').map((e) => [e.aid, e.result]).sort()).toEqual(CAMPUS_AIDS.map((aid) => [aid, aid === '11B001' ? 'denied' : 'ok']).sort());
  }, 60_000);

  it('consent decides on the profile the request gives a card not seen yet: allowed, and the card is created with it in the job', async () => {
    const t = new InProcessTransport(VirtualCard.create());
    const uid = await readUid(t);
    const p = await station.personalise(t, CAMPUS_AIDS, NO_RANDOM, { profile: 'staff' });
    expect([p.ok, p.recorded]).toEqual([true, true]);
    const card = await db().selectFrom('cards').select(['state', 'profile']).where('uid', '=', uid).executeTakeFirstOrThrow();
    expect(card).toEqual({ state: 'issued', profile: 'staff' });
    const checks = await db().selectFrom('audit_entries').select(['aid', 'result', 'details']).where('card_uid', '=', uid).where('operation', '=', 'consent.check').execute();
    const library = checks.find((c) => c.aid === '11B001')!;
    expect(library.result).toBe('ok');
    expect((JSON.parse(library.details!) as { scope: string }).scope).toBe('policy');
  }, 60_000);

  it("a blank card's recorded profile is not changed by a refused job; a job that passes sets the profile asked", async () => {
    const uid = await readUid(new InProcessTransport(VirtualCard.create()));
    await h.cms.deps.domain!.cards.createBlank(uid, { profile: 'staff' });
    const before = await snapshot();
    const r = await personalise(uid, CAMPUS_AIDS, 'visitor');
    expect([r.status, r.body.error.code]).toEqual([403, 'ERR_CONSENT_DENIED']);
    await unchanged(before, 'consent, blank card');
    expect((await db().selectFrom('cards').select('profile').where('uid', '=', uid).executeTakeFirstOrThrow()).profile).toBe('staff');
    // without the library, consent passes on 'visitor': the profile is set in the job's transaction
    const ok = await personalise(uid, CAMPUS_AIDS.filter((a) => a !== '11B001'), 'visitor');
    expect(ok.status).toBe(201);
    expect((await db().selectFrom('cards').select(['state', 'profile']).where('uid', '=', uid).executeTakeFirstOrThrow())).toEqual({ state: 'blank', profile: 'visitor' });
  }, 60_000);

  it('refused by a role check, by ISO002, by bad input: nothing written', async () => {
    const uid = await readUid(new InProcessTransport(VirtualCard.create()));
    let before = await snapshot();
    const role = await personalise(uid, CAMPUS_AIDS, 'staff', partial);
    expect([role.status, role.body.error.code]).toEqual([403, 'ERR_JOB_FORBIDDEN']);
    await unchanged(before, 'role');

    before = await snapshot();
    const iso = await personalise(uid, ['A1C001', 'B0B001'], 'staff');
    expect([iso.status, iso.body.error.code]).toEqual([422, 'ERR_JOB_UNSUPPORTED']);
    expect(iso.body.error.message).toContain('ISO002');
    const isoEntries = await unchanged(before, 'ISO002');
    // decided before consent and custody
    expect(isoEntries.filter((e) => e.operation === 'consent.check' || e.operation.startsWith('custody.'))).toEqual([]);

    for (const body of [
      { kind: 'personalise', uid, aids: ['A1C001', 'A1C001'], profile: 'staff', claim: true },
      { kind: 'personalise', uid, aids: ['A1C001'], profile: 'staff', picc: { keySettings: { freeCreateDelete: true } }, claim: true },
      { kind: 'issue', uid, profile: 'staff', picc: { keySettings: { freeCreateDelete: true } } },
    ]) {
      before = await snapshot();
      const r = await stationCms.call('POST', '/v1/station/jobs', body);
      expect([r.status, r.body.error.code], JSON.stringify(body)).toEqual([400, 'ERR_JOB_BAD_INPUT']);
      await unchanged(before, `bad input ${JSON.stringify(body)}`);
    }
    // schema refusals (a malformed profile) never reach the service: no row either
    const bad = await stationCms.call('POST', '/v1/station/jobs', { kind: 'issue', uid, profile: '-bad profile' });
    expect(bad.status).toBe(400);
    expect(await db().selectFrom('cards').select('uid').where('uid', '=', uid).execute()).toEqual([]);
  }, 60_000);

  it("refused because the card has an open job: the card's profile stays as that job set it (issue and personalise)", async () => {
    const uid = await readUid(new InProcessTransport(VirtualCard.create()));
    const first = await stationCms.call('POST', '/v1/station/jobs', { kind: 'issue', uid, profile: 'staff' });
    expect(first.status).toBe(201);
    expect((await db().selectFrom('cards').select(['state', 'profile']).where('uid', '=', uid).executeTakeFirstOrThrow())).toEqual({ state: 'blank', profile: 'staff' });
    for (const body of [
      { kind: 'issue', uid, profile: 'visitor' },
      { kind: 'personalise', uid, aids: ['A1C001'], profile: 'visitor', claim: true },
    ]) {
      const before = await snapshot();
      const r = await stationCms.call('POST', '/v1/station/jobs', body);
      expect([r.status, r.body.error.code], JSON.stringify(body)).toEqual([409, 'ERR_JOB_BUSY']);
      await unchanged(before, `busy ${body.kind}`);
    }
  }, 60_000);

  it('the tenant of each refused AID is named in its denied decision (the views stay per tenant)', async () => {
    const uid = await readUid(new InProcessTransport(VirtualCard.create()));
    const r = await personalise(uid, ['11B001'], 'visitor');
    expect(r.status).toBe(403);
    const checks = await db().selectFrom('audit_entries').select(['tenant', 'aid', 'result']).where('card_uid', '=', uid).where('operation', '=', 'consent.check').execute();
    expect(checks).toEqual([{ tenant: TENANT_OF['11B001'], aid: '11B001', result: 'denied' }]);
  }, 60_000);
});

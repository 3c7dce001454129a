// The 'personalise' station job end to end (real CMS over HTTPS + mTLS, virtual cards): a blank
// card's issue and every installation of the campus layout in ONE job — one request, one sealed
// key batch, one receipt, everything recorded in one transaction — and every rule of the separate
// jobs: the station's role per AID (one missing refuses the whole job, nothing written), bad input
// typed and harmless, the single-use token, the receipt's signature and steps checked against the
// plan, a card refusal mid-way recording nothing until reconciliation probes every step, random
// UID enabled last.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { DesfireClient } from '../../src/core/client/index.js';
import { toHex } from '../../src/core/crypto/bytes.js';
import { ReaderUnsealer } from '../../src/custody/sealed.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import { type CmsClient, StationClient, readUid, relayRemote } from '../../src/reader/station/client.js';
import { signStationReceipt } from '../../src/reader/station/receipt.js';
import type { PersonaliseJob, StationJob } from '../../src/reader/station/protocol.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { personaliseStepCount } from '../../src/cms/jobs/plan.js';
import { ConsentService } from '../../src/cms/consent/index.js';
import { type AuditEntry, canonicalEntry, parseEntry } from '../../src/cms/audit/entry.js';
import { leafHashOfText, verifyInclusion } from '../../src/cms/audit/merkle.js';
import { exportLog } from '../../src/cms/audit/export.js';
import { nodeAuditCrypto } from '../../src/cms/audit/node-crypto.js';
import { verifierKey } from '../../src/cms/audit/signer.js';
import { verifyJsonl } from '../../src/cms/audit/verify.js';
import { CAMPUS, CAMPUS_AIDS, type E2e, TENANT_OF, startE2e } from './harness.js';

const campus = parseLayout(CAMPUS, 'campus.yaml');
const PICC = { keySettings: { ...campus.picc.keySettings }, randomUid: true };
const NO_RANDOM = { keySettings: { ...campus.picc.keySettings }, randomUid: false };

describe('personalise: one station job per card', () => {
  let h: E2e;
  let stationCms: CmsClient;
  let station: StationClient;
  let partial: CmsClient;
  let door: CmsClient;

  const db = () => h.cms.db.db;
  const jobsOf = (uid: string) => db().selectFrom('station_jobs').selectAll().where('uid', '=', uid).execute();
  const blobsOf = (uid: string) => db().selectFrom('card_key_blobs').selectAll().where('uid', '=', uid).execute();
  const card = (uid: string) => h.op('GET', `/v1/cards/${uid}`);

  beforeAll(async () => {
    h = await startE2e({});
    expect((await h.op('POST', '/v1/layouts', CAMPUS, 'application/yaml')).status).toBe(201);
    stationCms = await h.reader('station-1', CAMPUS_AIDS.map((aid, i) => ({ aid, keyNo: 0, operations: i === 0 ? ['install', 'issue'] : ['install'] })));
    station = new StationClient(stationCms, { readerId: 'station-1' });
    // issue + install on every AID but the last one
    partial = await h.reader('station-2', CAMPUS_AIDS.slice(0, 3).map((aid, i) => ({ aid, keyNo: 0, operations: i === 0 ? ['install', 'issue'] : ['install'] })));
    door = await h.reader('door-1', [{ aid: 'A1C001', keyNo: 1, operations: ['deliver'] }]);
  }, 120_000);

  afterAll(async () => {
    await h?.close();
  });

  it('one request, one sealed batch, one receipt: the card issued with every application recorded in one job', async () => {
    const before = h.audit.events.length;
    const t = new InProcessTransport(VirtualCard.create());
    const uid = await readUid(t);
    const p = await station.personalise(t, CAMPUS_AIDS, NO_RANDOM);
    expect([p.ok, p.recorded]).toEqual([true, true]);
    // the CMS's count of the receipt's steps (its bound at create) is the station's sequence
    const apps = await Promise.all(CAMPUS_AIDS.map(async (aid) => (await h.cms.deps.domain!.tenants.application(aid))!));
    expect(p.receipt.results).toHaveLength(personaliseStepCount(apps, false));
    expect(p.runs.map((r) => [r.step, r.aid, r.ok, r.recorded])).toEqual([['issue', '000000', true, true], ...CAMPUS_AIDS.map((aid) => ['install', aid, true, true])]);
    const jobs = await jobsOf(uid);
    expect(jobs.map((j) => [j.kind, j.state, j.aid])).toEqual([['personalise', 'completed', '000000']]);
    const c = await card(uid);
    expect(c.body.card.state).toBe('issued');
    expect(c.body.applications.map((a: { aid: string }) => a.aid).sort()).toEqual([...CAMPUS_AIDS].sort());
    // every blob of the job active (the CMK and the random application keys)
    const blobs = await blobsOf(uid);
    expect(blobs.length).toBeGreaterThan(0);
    expect(blobs.every((b) => b.state === 'active' && b.job_id === p.jobId)).toBe(true);
    // the station events: ONE card-wide job_create naming every step (and claimed), ONE card-wide
    // job_receipt — each followed by one entry per installation for its tenant's view
    const events = h.audit.events.slice(before).filter((e) => e.jobId === p.jobId);
    expect(events.map((e) => [e.op, e.outcome, e.tenant ?? null, e.aid])).toEqual([
      ['job_create', 'ok', null, '000000'],
      ...CAMPUS_AIDS.map((aid) => ['job_create', 'ok', TENANT_OF[aid], aid]),
      ['job_receipt', 'ok', null, '000000'],
      ...CAMPUS_AIDS.map((aid) => ['job_receipt', 'ok', TENANT_OF[aid], aid]),
    ]);
    expect(events[0]!.steps).toEqual(['issue', ...CAMPUS_AIDS.map((a) => `install:${a}`)]);
    expect(events.slice(1, 5).map((e) => [e.steps, e.authorisation, e.claimed])).toEqual(CAMPUS_AIDS.map((aid, i) => [[`install:${aid}`], events[0]!.authorisations![i], true]));
    expect(events[0]!.claimed).toBe(true);
    // one authorisation per tenant, bound into the receipt by the job's digest
    expect(events[0]!.authorisations).toHaveLength(CAMPUS_AIDS.length);
    expect(events[0]!.authorisation).toMatch(/^sha256:/);
    // ONE custody seal batch (one call) for the CMK and every application key of the job, audited
    // as one entry per (tenant, AID): the issuer's CMK, then each application's keys
    const seals = await db().selectFrom('audit_entries').select(['operation', 'tenant', 'aid', 'details']).where('card_uid', '=', uid).where('operation', 'like', 'custody.seal%').execute();
    expect(seals.map((s) => [s.operation, s.tenant, s.aid])).toEqual([['custody.seal_batch', 'issuer', '000000'], ...CAMPUS_AIDS.map((aid) => ['custody.seal_batch', TENANT_OF[aid], aid])]);
    for (const s of seals) for (const x of (JSON.parse(s.details!) as { seals: { tenant: string; aid: string }[] }).seals) expect([x.tenant, x.aid]).toEqual([s.tenant, s.aid]);
    // ONE custody generate batch for the card's random keys (the CMK and every random application
    // key), one entry per (tenant, AID): together their bindings are exactly the job's stored
    // blobs, each under the KEK it names
    const gens = await db().selectFrom('audit_entries').select(['operation', 'result', 'tenant', 'aid', 'details']).where('card_uid', '=', uid).where('operation', 'like', 'custody.generate%').execute();
    expect(gens.every((g) => g.operation === 'custody.generate_batch' && g.result === 'ok')).toBe(true);
    const generated = gens.flatMap((g) => (JSON.parse(g.details!) as { seals: { keyName: string; tenant: string; aid: string; keyNo: number; version: number; uid: string }[] }).seals.map((x) => ({ ...x, entry: [g.tenant, g.aid] })));
    expect(generated.map((x) => [x.aid, x.keyNo, x.version, x.keyName, x.uid]).sort()).toEqual(blobs.map((b) => [b.aid, b.key_no, b.key_version, b.kek, uid]).sort());
    expect(generated.every((x) => x.entry[0] === x.tenant && x.entry[1] === x.aid)).toBe(true);
    expect(gens[0]).toMatchObject({ tenant: 'issuer', aid: '000000' });
    expect(generated[0]).toMatchObject({ aid: '000000', keyNo: 0, keyName: 'kek.issuer' });
    // the tenants' consent: decided in one query, one 'ok' entry per (tenant, AID) — each tenant's
    // view shows its own — naming the authorisation the job_create entry lists for that AID
    const checks = await db().selectFrom('audit_entries').select(['tenant', 'aid', 'result', 'details']).where('card_uid', '=', uid).where('operation', '=', 'consent.check').execute();
    expect(checks.map((c) => [c.tenant, c.aid, c.result]).sort()).toEqual(CAMPUS_AIDS.map((aid) => [TENANT_OF[aid], aid, 'ok']).sort());
    for (const c of checks) expect((JSON.parse(c.details!) as { authorisation: string }).authorisation).toBe(events[0]!.authorisations![CAMPUS_AIDS.indexOf(c.aid!)]);
    // the mapping is what the runtime delivery uses
    await h.cms.deps.domain!.cards.transition(uid, 'active');
    expect((await door.call('POST', '/v1/keys/deliver', { uid, aid: 'A1C001', keyNo: 1 })).status).toBe(200);
  }, 60_000);

  it("each tenant's audit view shows the generation, release, job creation and outcome of its own application on the card — nothing of another tenant's — every entry's proof verifies; the issuer sees all", async () => {
    const t = new InProcessTransport(VirtualCard.create());
    const uid = await readUid(t);
    const p = await station.personalise(t, CAMPUS_AIDS, NO_RANDOM);
    expect([p.ok, p.recorded]).toEqual([true, true]);
    const crypto = nodeAuditCrypto;
    const get = async (token: string, url: string) => {
      const r = await h.server.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
      return { status: r.statusCode, body: r.json() };
    };
    for (const tenant of [...new Set(Object.values(TENANT_OF))]) {
      const mine = CAMPUS_AIDS.filter((a) => TENANT_OF[a] === tenant);
      const others = CAMPUS_AIDS.filter((a) => TENANT_OF[a] !== tenant);
      const otherTenants = [...new Set(others.map((a) => TENANT_OF[a]!))];
      const { token } = await h.cms.deps.tokens.create({ label: `auditor ${tenant}`, roles: ['auditor'], tenants: [tenant], createdBy: null });
      // a tenant-scoped operator: its own view only
      expect((await get(token, `/v1/audit/tenants/${otherTenants[0]}/view`)).status).toBe(403);
      const view: { entry: AuditEntry; leafHash: string; proof: { index: number; treeSize: number; hashes: string[] } }[] = [];
      let checkpoint: { size: number; rootHash: string } | undefined;
      for (let from = 0; ; ) {
        const r = await get(token, `/v1/audit/tenants/${tenant}/view?limit=1000&from=${from}`);
        expect(r.status).toBe(200);
        checkpoint ??= r.body.checkpoint;
        if (r.body.checkpoint.size !== checkpoint!.size) throw new Error('the log grew while paging: no concurrent writer expected here');
        view.push(...r.body.entries);
        if (r.body.entries.length < 1000) break;
        from = r.body.entries.at(-1).entry.index + 1;
      }
      // every entry: this tenant's, naming no other tenant's AID or tenant id, its proof verifying
      // against the signed checkpoint, its leaf the hash of the entry as shown
      const root = Buffer.from(checkpoint!.rootHash, 'hex');
      for (const v of view) {
        const text = JSON.stringify(v.entry);
        expect(v.entry.tenant, text).toBe(tenant);
        expect(v.entry.aid === null || mine.includes(v.entry.aid), text).toBe(true);
        // as a token (AIDs are upper-case hex in every field that names one; random hex or base64
        // ids around it would be other characters' neighbours)
        for (const a of others) expect(text, text).not.toMatch(new RegExp(`(^|[^0-9A-Fa-f])${a}([^0-9A-Fa-f]|$)`));
        for (const o of otherTenants) expect(text, text).not.toMatch(new RegExp(`"${o}"|\\b${o}\\.|\\bkek\\.${o}\\b`));
        const entry = parseEntry(v.entry);
        expect(typeof entry).toBe('object');
        expect(Buffer.from(leafHashOfText(crypto, canonicalEntry(entry as AuditEntry))).toString('hex')).toBe(v.leafHash);
        expect(verifyInclusion(crypto, v.entry.index, checkpoint!.size, Buffer.from(v.leafHash, 'hex'), v.proof.hashes.map((x) => Buffer.from(x, 'hex')), root)).toBe(true);
      }
      // this card's entries in the view: the consent check, the generation and the release
      // (sealing) of its keys, the job's creation and its recorded outcome — for each of its AIDs
      // (generation: only an application with random keys has any; its diversified keys are derived)
      const card = view.filter((v) => v.entry.cardUid === uid).map((v) => v.entry);
      for (const aid of mine) {
        const app = (await h.cms.deps.domain!.tenants.application(aid))!;
        const random = app.definition.keys.filter((k) => k.derivation.method === 'random').map((k) => k.no);
        const ops = card.filter((e) => e.aid === aid).map((e) => `${e.operation}:${e.result}`);
        expect(ops.sort(), `${tenant} ${aid}`).toEqual(['consent.check:ok', ...(random.length ? ['custody.generate_batch:ok'] : []), 'custody.seal_batch:ok', 'station.job_create:ok', 'station.job_receipt:ok']);
        if (random.length) expect((card.find((e) => e.aid === aid && e.operation === 'custody.generate_batch')!.details as { seals: { keyNo: number }[] }).seals.map((x) => x.keyNo)).toEqual(random);
        const seal = card.find((e) => e.aid === aid && e.operation === 'custody.seal_batch')!;
        expect(seal.readerId).toBe('station-1');
        const sealed = (seal.details as { seals: { aid: string; keyNo: number }[] }).seals;
        expect(sealed.map((x) => [x.aid, x.keyNo])).toEqual(app.definition.keys.map((k) => [aid, k.no]));
        const receipt = card.find((e) => e.aid === aid && e.operation === 'station.job_receipt')!;
        expect((receipt.details as { jobId: string }).jobId).toBe(p.jobId);
      }
    }
    // the exports verify offline against the pinned checkpoint key: each tenant's view (naming
    // no other tenant's AID) and the whole log
    const log = h.cms.deps.audit!;
    const exportLines = async (o: { tenant?: string }) => {
      const lines: string[] = [];
      await exportLog(log, { ...o, write: (l) => void lines.push(l) });
      return lines;
    };
    const key = verifierKey(log.vkey);
    for (const tenant of [...new Set(Object.values(TENANT_OF))]) {
      const lines = await exportLines({ tenant });
      expect(verifyJsonl(lines, { crypto, key, origin: log.origin })).toMatchObject({ ok: true, mode: 'view' });
      const entries = lines.map((l) => JSON.parse(l) as { type: string; entry?: AuditEntry }).filter((l) => l.type === 'entry');
      expect(entries.length).toBeGreaterThan(0);
      for (const e of entries) expect(e.entry!.tenant).toBe(tenant);
      for (const a of CAMPUS_AIDS.filter((x) => TENANT_OF[x] !== tenant)) expect(entries.some((e) => new RegExp(`(^|[^0-9A-Fa-f])${a}([^0-9A-Fa-f]|$)`).test(JSON.stringify(e.entry)))).toBe(false);
    }
    expect(verifyJsonl(await exportLines({}), { crypto, key, origin: log.origin })).toMatchObject({ ok: true });
    // the issuer (a token for every tenant) sees everything of the card: the card-wide entries
    // (tenant null or 'issuer': the CMK, every step) and every tenant's parts
    const all = await get(h.admin, `/v1/audit/entries?cardUid=${uid}&limit=1000`);
    expect(all.status).toBe(200);
    const ops = (all.body.entries as AuditEntry[]).map((e) => `${e.operation}|${e.tenant}|${e.aid}`);
    for (const op of ['custody.generate_batch', 'custody.seal_batch']) expect(ops).toContain(`${op}|issuer|000000`);
    for (const op of ['station.job_create', 'station.job_receipt']) expect(ops).toContain(`${op}|null|000000`);
    for (const aid of CAMPUS_AIDS) for (const op of ['consent.check', 'custody.seal_batch', 'station.job_create', 'station.job_receipt']) expect(ops).toContain(`${op}|${TENANT_OF[aid]}|${aid}`);
    expect(ops).toContain('custody.generate_batch|transit|7A0001');
  }, 60_000);

  it("a job stored before its plan named each installation's tenant: the outcome entries take the registered application's tenant", async () => {
    const t = new InProcessTransport(VirtualCard.create());
    const uid = await readUid(t);
    const created = await stationCms.ok('POST', '/v1/station/jobs', { kind: 'personalise', uid, aids: CAMPUS_AIDS, picc: NO_RANDOM, claim: true });
    const row = (await jobsOf(uid))[0]!;
    const plan = JSON.parse(row.plan) as { installs: { tenant?: string }[] };
    expect(plan.installs.map((i) => i.tenant)).toEqual(CAMPUS_AIDS.map((a) => TENANT_OF[a]));
    for (const i of plan.installs) delete i.tenant;
    await db().updateTable('station_jobs').set({ plan: JSON.stringify(plan) }).where('id', '=', created.jobId).execute();
    const out = await station.executor.run(created.job as StationJob, t);
    const r = await stationCms.ok('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: out.jws });
    expect(r.ok).toBe(true);
    const parts = h.audit.events.filter((e) => e.jobId === created.jobId && e.op === 'job_receipt').map((e) => [e.tenant ?? null, e.aid, e.outcome]);
    expect(parts).toEqual([[null, '000000', 'ok'], ...CAMPUS_AIDS.map((aid) => [TENANT_OF[aid], aid, 'ok'])]);
  }, 60_000);

  it('a role missing install on one AID refuses the whole job (403), nothing written', async () => {
    const t = new InProcessTransport(VirtualCard.create());
    const uid = await readUid(t);
    const before = (await db().selectFrom('audit_entries').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst())!.n;
    const e = await new StationClient(partial, { readerId: 'station-2' }).personalise(t, CAMPUS_AIDS, NO_RANDOM).catch((x: unknown) => x);
    expect(e).toMatchObject({ name: 'CmsCallError', status: 403, code: 'ERR_JOB_FORBIDDEN' });
    expect((e as Error).message).toContain('7A0001');
    expect(await jobsOf(uid)).toEqual([]);
    expect(await blobsOf(uid)).toEqual([]);
    expect((await card(uid)).status).toBe(404);
    // the refusal is audited; no key was generated, planned or sealed for it
    const entries = await db().selectFrom('audit_entries').select(['operation', 'result']).where('idx', '>=', Number(before)).execute();
    expect(entries.filter((x) => x.operation.startsWith('custody.') || x.operation.startsWith('consent.'))).toEqual([]);
    expect(entries.filter((x) => x.operation === 'station.job_create').map((x) => x.result)).toEqual(['denied']);
    // the same station may issue and install the AIDs its roles allow
    const ok = await new StationClient(partial, { readerId: 'station-2' }).personalise(t, CAMPUS_AIDS.slice(0, 3), NO_RANDOM);
    expect(ok.recorded).toBe(true);
  }, 60_000);

  it("one tenant's missing authorisation refuses the whole job (403 ERR_CONSENT_DENIED naming its AID), nothing written or generated; each decision audited", async () => {
    const consent = new ConsentService({ db: db() });
    const admin = { actor: 'operator:test' };
    const library = (await consent.authorisations({ tenant: 'library', aid: '11B001', operation: 'install', activeAt: Date.now() })).filter((a) => a.revokedAt === null);
    expect(library.length).toBeGreaterThan(0);
    for (const a of library) await consent.revoke(admin, a.id);
    try {
      const t = new InProcessTransport(VirtualCard.create());
      const uid = await readUid(t);
      const before = (await db().selectFrom('audit_entries').select((eb) => eb.fn.max('idx').as('n')).executeTakeFirst())!.n;
      const e = await station.personalise(t, CAMPUS_AIDS, NO_RANDOM).catch((x: unknown) => x);
      expect(e).toMatchObject({ name: 'CmsCallError', status: 403, code: 'ERR_CONSENT_DENIED' });
      expect((e as Error).message).toContain('11B001');
      expect(await jobsOf(uid)).toEqual([]);
      expect(await blobsOf(uid)).toEqual([]);
      const entries = await db().selectFrom('audit_entries').select(['operation', 'result', 'tenant', 'aid']).where('idx', '>', Number(before ?? -1)).where('card_uid', '=', uid).execute();
      expect(entries.filter((x) => x.operation.startsWith('custody.'))).toEqual([]);
      expect(entries.filter((x) => x.operation === 'consent.check').map((x) => [x.tenant, x.aid, x.result]).sort()).toEqual(CAMPUS_AIDS.map((aid) => [TENANT_OF[aid], aid, aid === '11B001' ? 'denied' : 'ok']).sort());
    } finally {
      for (const a of library) await consent.grant(admin, { tenant: 'library', aid: '11B001', operation: 'install', ...(a.cardUids ? { cards: a.cardUids } : { profile: a.cardProfile! }), ttlSeconds: 3600 });
    }
  }, 60_000);

  it('bad input is refused with a typed 4xx and changes nothing', async () => {
    const uid = await readUid(new InProcessTransport(VirtualCard.create()));
    const cases: [unknown, number, string][] = [
      [{ kind: 'personalise', uid, aids: ['A1C001', 'a1c001'], claim: true }, 400, 'ERR_JOB_BAD_INPUT'],
      [{ kind: 'personalise', uid, aids: Array.from({ length: 29 }, (_, i) => (0xa00000 + i).toString(16).toUpperCase()), claim: true }, 400, 'ERR_VALIDATION'],
      [{ kind: 'personalise', uid, aids: ['A1C001'], picc: { keySettings: { freeCreateDelete: true } }, claim: true }, 400, 'ERR_JOB_BAD_INPUT'],
      [{ kind: 'personalise', uid, aids: ['A1C00'], claim: true }, 400, 'ERR_VALIDATION'],
      [{ kind: 'personalise', uid, aids: ['000000'], claim: true }, 400, 'ERR_JOB_BAD_INPUT'],
      [{ kind: 'personalise', uid, aid: 'A1C001', claim: true }, 400, 'ERR_VALIDATION'],
    ];
    for (const [body, status, code] of cases) {
      const r = await stationCms.call('POST', '/v1/station/jobs', body);
      expect([r.status, r.body.error.code === code || (code === 'ERR_VALIDATION' && r.status === 400)], JSON.stringify(body)).toEqual([status, true]);
    }
    expect(await jobsOf(uid)).toEqual([]);
    expect((await card(uid)).status).toBe(404);
  });

  it('single-use token; a receipt with a bad signature or steps not as planned changes nothing; a replayed receipt is refused', async () => {
    const t = new InProcessTransport(VirtualCard.create());
    const uid = await readUid(t);
    const created = await stationCms.ok('POST', '/v1/station/jobs', { kind: 'personalise', uid, aids: CAMPUS_AIDS, picc: PICC });
    expect(typeof created.token).toBe('string');
    const claim = await stationCms.call('POST', `/v1/station/jobs/${created.jobId}/claim`, { token: created.token });
    expect(claim.status).toBe(200);
    const replay = await stationCms.call('POST', `/v1/station/jobs/${created.jobId}/claim`, { token: created.token });
    expect([replay.status, replay.body.error.code]).toEqual([403, 'ERR_TOKEN_REPLAYED']);
    const job = claim.body.job as PersonaliseJob;
    expect(job.kind).toBe('personalise');
    expect(job.applications.map((a) => a.aid)).toEqual(CAMPUS_AIDS);
    // every key sealed to this station, bound to this card and its own AID
    for (const a of job.applications) for (const k of a.keys) expect([k.binding.uid, k.binding.aid]).toEqual([uid, a.aid]);
    const out = await station.executor.run(job, t);
    expect(out.ok).toBe(true);
    // random UID enabled last, after every installation
    expect(out.receipt.results.at(-1)).toMatchObject({ op: 'SetConfiguration', status: 0 });
    const unchanged = async () => {
      expect((await h.op('GET', `/v1/jobs/${created.jobId}`)).body.state).toBe('claimed');
      const c = await card(uid);
      expect([c.body.card.state, c.body.applications]).toEqual(['blank', []]);
      expect((await blobsOf(uid)).every((b) => b.state === 'pending')).toBe(true);
    };
    const forged = await signStationReceipt(out.receipt, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const bad = await stationCms.call('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: forged });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'ERR_RECEIPT_SIGNATURE']);
    await unchanged();
    // signed by the station itself, but not what the plan says: one installation left out, or the
    // random UID enabled before the installations
    const key = createPrivateKey(stationCms.conn.key);
    const results = out.receipt.results;
    const lacking = { ...out.receipt, results: results.filter((r) => r.aid !== '7A0001') };
    const early = { ...out.receipt, results: [...results.slice(0, 6), results.at(-1)!, ...results.slice(6, -1)] };
    for (const r of [lacking, early]) {
      const m = await stationCms.call('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: await signStationReceipt(r, key) });
      expect([m.status, m.body.error.code]).toEqual([400, 'ERR_JOB_RECEIPT_MISMATCH']);
      await unchanged();
    }
    const good = await stationCms.call('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: out.jws });
    expect([good.status, good.body.ok, good.body.job.state]).toEqual([200, true, 'completed']);
    const again = await stationCms.call('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: out.jws });
    expect([again.status, again.body.error.code]).toEqual([409, 'ERR_JOB_STATE']);
    expect((await card(uid)).body.applications).toHaveLength(CAMPUS_AIDS.length);
  }, 60_000);

  it('random UID: the whole card personalised in one job, the UID randomised only at the end', async () => {
    const vc = VirtualCard.create();
    const t = new InProcessTransport(vc);
    const uid = await readUid(t);
    const p = await station.personalise(t, CAMPUS_AIDS, PICC);
    expect([p.ok, p.recorded, p.runs.length]).toEqual([true, true, 5]);
    const apps = await Promise.all(CAMPUS_AIDS.map(async (aid) => (await h.cms.deps.domain!.tenants.application(aid))!));
    expect(p.receipt.results).toHaveLength(personaliseStepCount(apps, true));
    const ops = p.receipt.results.map((r) => `${r.op}:${r.aid ?? ''}`);
    expect(ops.at(-1)).toBe('SetConfiguration:000000');
    expect(ops.lastIndexOf('CommitTransaction:7A0001')).toBeLessThan(ops.length - 1);
    expect((await card(uid)).body.applications).toHaveLength(CAMPUS_AIDS.length);
    // presented again the card shows a random UID; a tenant's key reads the real one after authentication
    vc.reset();
    expect(await readUid(t)).not.toBe(uid);
    await h.cms.deps.domain!.cards.transition(uid, 'active');
    const d = await door.ok('POST', '/v1/keys/deliver', { uid, aid: 'A1C001', keyNo: 1 });
    const unsealer = new ReaderUnsealer('door-1', createPrivateKey(door.conn.key));
    const key = await unsealer.unseal(d.sealed, d.binding);
    const c = new DesfireClient(t);
    await c.selectApplication(0xa1c001);
    await c.authenticate(1, key, { method: 'ev2' });
    expect(toHex(await c.getCardUid()).toUpperCase()).toBe(uid);
    unsealer.clear();
  }, 60_000);

  it('a card refusal mid-way (an AID already on the card) records nothing; reconciliation probes every step and records what it verified', async () => {
    const vc = VirtualCard.create();
    const t = new InProcessTransport(vc);
    const uid = await readUid(t);
    // someone created 11B001 on the factory card before the station saw it
    {
      const c = new DesfireClient(t);
      await c.selectApplication(0);
      await c.authenticate(0, new Uint8Array(8), { method: 'd40', keyType: 'des' });
      await c.createApplication({ aid: 0x11b001, settings: { masterKeyChangeable: true, freeDirectoryList: true, freeCreateDelete: false, configurationChangeable: true, changeKeyAccess: 0 }, keyCount: 1, keyType: 'aes', isoFileIds: false });
      c.dropSession();
    }
    const p = await station.personalise(t, CAMPUS_AIDS, PICC);
    expect([p.ok, p.recorded]).toEqual([false, false]);
    expect(p.runs.map((r) => [r.aid, r.ok])).toEqual([
      ['000000', false], // the random UID was never enabled
      ['A1C001', true],
      ['CAFE01', true],
      ['11B001', false],
      ['7A0001', false],
    ]);
    expect(p.receipt.results.at(-1)).toMatchObject({ op: 'CreateApplication', aid: '11B001', status: 0xde });
    const [job] = await jobsOf(uid);
    expect([job!.kind, job!.state]).toEqual(['personalise', 'failed']);
    // each tenant's outcome entry: nothing recorded ('failed'), with what the receipt says of its own steps only
    const byTenant = (op: string) => h.audit.events.filter((e) => e.jobId === job!.id && e.op === op).map((e) => [e.tenant ?? null, e.aid, e.outcome, e.code]);
    expect(byTenant('job_receipt')).toEqual([
      [null, '000000', 'failed', undefined],
      ['access', 'A1C001', 'failed', 'card-ok'],
      ['cafeteria', 'CAFE01', 'failed', 'card-ok'],
      ['library', '11B001', 'failed', 'card-refused'],
      ['transit', '7A0001', 'failed', 'not-run'],
    ]);
    let c = await card(uid);
    expect([c.body.card.state, c.body.applications]).toEqual(['blank', []]);
    expect((await blobsOf(uid)).every((b) => b.state === 'pending')).toBe(true);

    // the station probes the card for the CMS (remote mode): every step, never guessed
    const probe = await relayRemote(stationCms, t, { op: 'reconcile', jobId: job!.id });
    expect(probe.result).toMatchObject({
      verdict: 'partial',
      steps: [
        { step: 'issue', verdict: 'applied' },
        { step: 'A1C001', verdict: 'applied' },
        { step: 'CAFE01', verdict: 'applied' },
        { step: '11B001', verdict: 'partial' },
        { step: '7A0001', verdict: 'not-applied' },
      ],
    });
    expect((await h.op('GET', `/v1/jobs/${job!.id}`)).body.state).toBe('reconciled');
    // the recorded outcome per tenant: its step's verdict
    expect(byTenant('job_reconcile')).toEqual([
      [null, '000000', 'ok', 'partial'],
      ['access', 'A1C001', 'ok', 'applied'],
      ['cafeteria', 'CAFE01', 'ok', 'applied'],
      ['library', '11B001', 'ok', 'partial'],
      ['transit', '7A0001', 'ok', 'not-applied'],
    ]);
    c = await card(uid);
    expect(c.body.card.state).toBe('issued');
    expect(c.body.applications.map((a: { aid: string }) => a.aid).sort()).toEqual(['A1C001', 'CAFE01']);
    // the verified steps' keys active, the absent AID's planned keys discarded
    const blobs = await blobsOf(uid);
    expect(blobs.filter((b) => b.aid === '000000' || b.aid === 'A1C001' || b.aid === 'CAFE01').every((b) => b.state === 'active')).toBe(true);
    expect(blobs.filter((b) => b.aid === '7A0001')).toEqual([]);
    // the card's state is known again: the remaining application installs with a separate job
    const install = await station.run({ kind: 'install', uid, aid: '7A0001' }, t);
    expect([install.ok, install.recorded]).toEqual([true, true]);
  }, 60_000);

  it('no receipt: the job is unknown, the card busy, until the probe finds every step applied', async () => {
    const t = new InProcessTransport(VirtualCard.create());
    const uid = await readUid(t);
    const created = await stationCms.ok('POST', '/v1/station/jobs', { kind: 'personalise', uid, aids: CAMPUS_AIDS, picc: NO_RANDOM, claim: true });
    const out = await station.executor.run(created.job as StationJob, t);
    expect(out.ok).toBe(true);
    await h.station.jobs.markUnknown(created.jobId);
    const busy = await stationCms.call('POST', '/v1/station/jobs', { kind: 'personalise', uid, aids: ['A1C001'], claim: true });
    expect([busy.status, busy.body.error.code]).toEqual([409, 'ERR_JOB_BUSY']);
    // a station without install on every AID of the job may not probe it
    const refused = await partial.call('POST', '/v1/remote/sessions', { op: 'reconcile', jobId: created.jobId });
    expect([refused.status, refused.body.error.code]).toEqual([403, 'ERR_JOB_FORBIDDEN']);
    const probe = await relayRemote(stationCms, t, { op: 'reconcile', jobId: created.jobId });
    expect(probe.result).toMatchObject({ verdict: 'applied' });
    const c = await card(uid);
    expect(c.body.card.state).toBe('issued');
    expect(c.body.applications).toHaveLength(CAMPUS_AIDS.length);
    expect((await blobsOf(uid)).every((b) => b.state === 'active')).toBe(true);
  }, 60_000);
});

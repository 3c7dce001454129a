// A compromised station's key set after installations through the batch seal path
// (custody.sealMany: one call per job, its 'custody.seal_batch' audit entries one per (tenant,
// AID) of the job's keys): every (tenant, AID, keyNo,
// version, UID) of every job it ran is in its key set — through the real CMS, its audit log and
// the compromise route — and nothing of another reader's jobs is.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { type CmsClient, StationClient } from '../../src/reader/station/client.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { CAMPUS, CAMPUS_AIDS, type E2e, startE2e } from '../e2e/harness.js';

let h: E2e;
let stA: CmsClient;
let stB: CmsClient;

beforeAll(async () => {
  h = await startE2e({}, { limits: false });
  expect((await h.op('POST', '/v1/layouts', CAMPUS, 'application/yaml')).status).toBe(201);
  const roles = CAMPUS_AIDS.map((aid) => ({ aid, keyNo: 0, operations: ['install', 'issue'] }));
  stA = await h.reader('station-a', roles);
  stB = await h.reader('station-b', roles);
}, 120_000);

afterAll(async () => {
  await h?.close();
});

type Key = { tenant: string; aid: string; keyNo: number; version: number; uids: string[] };

/** What the jobs of `readerId` handed out, from the job rows: the CMK of every job, the planned keys of every install. */
async function expectedFromJobs(readerId: string): Promise<Key[]> {
  const jobs = await h.cms.db.db.selectFrom('station_jobs').select(['kind', 'uid', 'aid', 'plan']).where('reader_id', '=', readerId).where('state', '=', 'completed').execute();
  const apps = new Map((await h.cms.db.db.selectFrom('applications').select(['aid', 'tenant_id']).execute()).map((a) => [a.aid, a.tenant_id]));
  const m = new Map<string, Key>();
  const add = (tenant: string, aid: string, keyNo: number, version: number, uid: string) => {
    const id = `${tenant}|${aid}|${keyNo}|${version}`;
    const k = m.get(id) ?? { tenant, aid, keyNo, version, uids: [] };
    if (!k.uids.includes(uid)) k.uids.push(uid);
    m.set(id, k);
  };
  for (const j of jobs) {
    const plan = JSON.parse(j.plan) as { cmkVersion: number; keys?: { keyNo: number; version: number }[] };
    add('issuer', '000000', 0, plan.cmkVersion, j.uid);
    if (j.kind === 'install') for (const k of plan.keys!) add(apps.get(j.aid)!, j.aid, k.keyNo, k.version, j.uid);
    // one personalise job: the issue and every installation
    for (const i of (plan as { installs?: { aid: string; keys: { keyNo: number; version: number }[] }[] }).installs ?? []) for (const k of i.keys) add(apps.get(i.aid)!, i.aid, k.keyNo, k.version, j.uid);
  }
  return [...m.values()].map((k) => ({ ...k, uids: k.uids.sort() })).sort((a, b) => a.tenant.localeCompare(b.tenant) || a.aid.localeCompare(b.aid) || a.keyNo - b.keyNo || a.version - b.version);
}

describe('compromised station after batch-sealed jobs', () => {
  it('its key set holds every (tenant, AID, keyNo, version, UID) its jobs sealed to it, and nothing of the other station', async () => {
    const a = new StationClient(stA, { readerId: 'station-a' });
    const b = new StationClient(stB, { readerId: 'station-b' });
    const uidsA: string[] = [];
    for (let i = 0; i < 2; i++) {
      const p = await a.personalise(new InProcessTransport(VirtualCard.create()), CAMPUS_AIDS);
      expect(p.runs.every((r) => r.recorded)).toBe(true);
      uidsA.push(p.uid);
    }
    const pb = await b.personalise(new InProcessTransport(VirtualCard.create()), ['A1C001']);
    expect(pb.runs.every((r) => r.recorded)).toBe(true);

    // one batch seal per job (2 cards x one personalise job: issue + 4 installs), written as one
    // entry per (tenant, AID) — the CMK's and each application's, each naming only its own keys
    // (the tenants' audit views) —, no per-key seal entry for the station
    const entries = await h.cms.db.db.selectFrom('audit_entries').select(['operation', 'card_uid', 'tenant', 'aid', 'details']).where('reader_id', '=', 'station-a').where('operation', 'like', 'custody.seal%').where('result', '=', 'ok').execute();
    expect(entries.map((e) => e.operation)).toEqual(Array(2 * (1 + CAMPUS_AIDS.length)).fill('custody.seal_batch'));
    expect(new Set(entries.map((e) => e.card_uid))).toEqual(new Set(uidsA));
    for (const uid of uidsA) expect(entries.filter((e) => e.card_uid === uid).map((e) => e.aid)).toEqual(['000000', ...CAMPUS_AIDS]);
    for (const e of entries) for (const x of (JSON.parse(e.details!) as { seals: { tenant: string; aid: string }[] }).seals) expect([x.tenant, x.aid]).toEqual([e.tenant, e.aid]);

    const expected = await expectedFromJobs('station-a');
    // 4 applications' keys plus the CMK, every one for both cards
    expect(expected.filter((k) => k.aid !== '000000').length).toBeGreaterThanOrEqual(CAMPUS_AIDS.length * 2);
    for (const k of expected) expect(k.uids).toEqual([...uidsA].sort());
    const r = await h.op('GET', '/v1/compromise/readers/station-a/keys');
    expect(r.status).toBe(200);
    const got = (r.body as { keys: (Key & { allCards: boolean; deliveries: number })[] }).keys;
    expect(got.map((k) => ({ tenant: k.tenant, aid: k.aid, keyNo: k.keyNo, version: k.version, uids: k.uids }))).toEqual(expected);
    expect(got.every((k) => !k.allCards)).toBe(true);
    // the CMK was sealed once per card (its personalise job)
    expect(got.find((k) => k.aid === '000000')!.deliveries).toBe(2);
    expect(got.flatMap((k) => k.uids)).not.toContain(pb.uid);

    // the workflow itself proposes campaigns over exactly those cards
    const rep = await h.op('POST', '/v1/compromise/readers/station-a');
    expect(rep.status).toBe(200);
    const body = rep.body as { revoked: boolean; keys: Key[] };
    expect(body.revoked).toBe(true);
    expect(body.keys.map((k) => ({ tenant: k.tenant, aid: k.aid, keyNo: k.keyNo, version: k.version, uids: k.uids }))).toEqual(expected);
  }, 120_000);
});

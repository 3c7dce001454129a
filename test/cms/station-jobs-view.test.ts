// GET /v1/jobs and /v1/jobs/:id for tenant-scoped operators: a personalise job (filed under AID
// 000000, its plan and outcome naming every tenant) is shown to a tenant admin or a tenant-scoped
// auditor with its own applications' steps only — never another tenant's AID, keys, authorisation
// or outcome; the issuer admin sees the whole job. install/delete jobs: whole, to their tenant only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { tenantJobView } from '../../src/cms/api/routes/station.js';
import type { Job } from '../../src/cms/jobs/plan.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import { StationClient, readUid } from '../../src/reader/station/client.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { CAMPUS, CAMPUS_AIDS, type E2e, TENANT_OF, startE2e } from '../e2e/harness.js';

const campus = parseLayout(CAMPUS, 'campus.yaml');
const NO_RANDOM = { keySettings: { ...campus.picc.keySettings }, randomUid: false };
const TENANTS = [...new Set(Object.values(TENANT_OF))];
/** An AID named anywhere in a text, as a token (not inside a longer hex run). */
const namesAid = (text: string, aid: string) => new RegExp(`(^|[^0-9A-Fa-f])${aid}([^0-9A-Fa-f]|$)`).test(text);

describe('station jobs as tenant-scoped operators see them', () => {
  let h: E2e;
  let uid: string;
  let jobId: string;
  const tokens = new Map<string, string>();
  const get = async (token: string, url: string) => {
    const r = await h.server.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
    return { status: r.statusCode, body: r.json(), text: r.body };
  };

  beforeAll(async () => {
    h = await startE2e({});
    expect((await h.op('POST', '/v1/layouts', CAMPUS, 'application/yaml')).status).toBe(201);
    const cms = await h.reader('station-1', CAMPUS_AIDS.map((aid, i) => ({ aid, keyNo: 0, operations: i === 0 ? ['install', 'issue'] : ['install'] })));
    const t = new InProcessTransport(VirtualCard.create());
    uid = await readUid(t);
    const p = await new StationClient(cms, { readerId: 'station-1' }).personalise(t, CAMPUS_AIDS, NO_RANDOM);
    expect([p.ok, p.recorded]).toEqual([true, true]);
    jobId = p.jobId;
    for (const tenant of TENANTS) {
      // tenant admins of one tenant, and an auditor scoped to it
      tokens.set(`admin:${tenant}`, (await h.cms.deps.tokens.create({ label: `admin ${tenant}`, roles: ['tenant_admin'], tenants: [tenant], createdBy: null })).token);
      tokens.set(`auditor:${tenant}`, (await h.cms.deps.tokens.create({ label: `auditor ${tenant}`, roles: ['auditor'], tenants: [tenant], createdBy: null })).token);
    }
  }, 120_000);

  afterAll(async () => {
    await h?.close();
  });

  it('the issuer admin sees the whole personalise job', async () => {
    const list = await get(h.admin, `/v1/jobs?uid=${uid}`);
    expect(list.status).toBe(200);
    expect(list.body.jobs).toHaveLength(1);
    const j = list.body.jobs[0];
    expect(j.plan.installs.map((i: { aid: string }) => i.aid)).toEqual(CAMPUS_AIDS);
    expect(typeof j.plan.cmkVersion).toBe('number');
    expect(j.outcome.results.some((r: { aid?: string }) => r.aid === '000000')).toBe(true);
    expect((await get(h.admin, `/v1/jobs/${jobId}`)).body).toEqual(j);
  });

  it.each(TENANTS.flatMap((t) => [['admin', t] as const, ['auditor', t] as const]))("a %s of %s: the job with its own applications' steps only, in the list and by id", async (role, tenant) => {
    const token = tokens.get(`${role}:${tenant}`)!;
    const mine = CAMPUS_AIDS.filter((a) => TENANT_OF[a] === tenant);
    const others = CAMPUS_AIDS.filter((a) => TENANT_OF[a] !== tenant);
    const otherTenants = TENANTS.filter((t) => t !== tenant);
    const list = await get(token, `/v1/jobs?uid=${uid}`);
    expect(list.status).toBe(200);
    expect(list.body.jobs).toHaveLength(1);
    const one = await get(token, `/v1/jobs/${jobId}`);
    expect(one.status).toBe(200);
    expect(one.body).toEqual(list.body.jobs[0]);
    const j = one.body;
    expect([j.id, j.kind, j.uid, j.state]).toEqual([jobId, 'personalise', uid, 'completed']);
    // the plan: its installations only (keys, files, authorisation), nothing card-wide
    expect(Object.keys(j.plan)).toEqual(['installs']);
    expect(j.plan.installs.map((i: { aid: string; tenant: string }) => [i.aid, i.tenant])).toEqual(mine.map((a) => [a, tenant]));
    for (const i of j.plan.installs) expect(i.keys.length).toBeGreaterThan(0);
    // the outcome: the receipt's results of its AIDs only
    expect(j.outcome.source).toBe('receipt');
    expect(j.outcome.results.length).toBeGreaterThan(0);
    expect(j.outcome.results.every((r: { aid?: string }) => r.aid !== undefined && mine.includes(r.aid))).toBe(true);
    // nothing of another tenant anywhere in the answers
    for (const text of [list.text, one.text]) {
      for (const a of others) expect(namesAid(text, a), `${a} in ${text}`).toBe(false);
      for (const o of otherTenants) expect(text).not.toMatch(new RegExp(`"${o}"|\\bkek\\.${o}\\b`));
      expect(text).not.toContain('sha256:'); // the digest binding every tenant's authorisation
    }
    // the whole job's authorisations of the other tenants are not shown
    const whole = (await get(h.admin, `/v1/jobs/${jobId}`)).body;
    for (const i of whole.plan.installs as { aid: string; authorisation?: string }[]) if (!mine.includes(i.aid) && i.authorisation) expect(one.text).not.toContain(i.authorisation);
  });

  it('the projection: install/delete whole to their tenant; issue to none; a probe outcome limited to its steps', async () => {
    const base = { id: 'job_x', readerId: 'station-1', uid: '04AABBCCDDEEFF', jti: 'j', createdAt: 1, expiresAt: 2, updatedAt: 3 };
    const tenantOf = async (aid: string) => TENANT_OF[aid];
    const install: Job = { ...base, kind: 'install', aid: 'CAFE01', state: 'completed', plan: { cmkVersion: 1, keys: [], files: [], tenant: 'cafeteria' }, outcome: null };
    expect(await tenantJobView(install, ['cafeteria'], tenantOf)).toMatchObject({ kind: 'install', plan: install.plan });
    expect(await tenantJobView(install, ['library'], tenantOf)).toBeUndefined();
    // a job stored before plans named the tenant: the registered application's
    const old: Job = { ...install, plan: { cmkVersion: 1, keys: [], files: [] } };
    expect(await tenantJobView(old, ['cafeteria'], tenantOf)).toBeDefined();
    expect(await tenantJobView(old, ['library'], tenantOf)).toBeUndefined();
    const issue: Job = { ...base, kind: 'issue', aid: '000000', state: 'completed', plan: { cmkVersion: 1, piccKeySettings: 9, randomUid: false }, outcome: null };
    expect(await tenantJobView(issue, TENANTS, tenantOf)).toBeUndefined();
    const installs = CAMPUS_AIDS.map((aid) => ({ aid, keys: [{ keyNo: 0, version: 1, method: 'diversified' as const }], files: [1] }));
    const probed: Job = {
      ...base,
      kind: 'personalise',
      aid: '000000',
      state: 'reconciled',
      plan: { cmkVersion: 1, piccKeySettings: 9, randomUid: false, installs },
      outcome: {
        source: 'probe',
        jobId: 'job_x',
        verdict: 'partial',
        findings: ['issue: CMK authenticates', 'A1C001: key 0 v1 authenticates', '11B001: 11B001 absent', 'CAFE01: every file present'],
        steps: [{ step: 'issue', verdict: 'applied' }, ...CAMPUS_AIDS.map((aid) => ({ step: aid, verdict: aid === '11B001' ? 'not-applied' : 'applied' }))],
      },
    };
    const lib = (await tenantJobView(probed, ['library'], tenantOf))!;
    expect(lib.plan).toEqual({ installs: [installs[2]] });
    expect(lib.outcome).toEqual({ source: 'probe', jobId: 'job_x', verdict: 'not-applied', findings: ['11B001: 11B001 absent'], steps: [{ step: '11B001', verdict: 'not-applied' }] });
    const access = (await tenantJobView(probed, ['access'], tenantOf))!;
    expect(access.outcome).toMatchObject({ verdict: 'applied', findings: ['A1C001: key 0 v1 authenticates'] });
    // an expired unclaimed job's outcome names no tenant; an unknown outcome shape shows nothing
    expect((await tenantJobView({ ...probed, outcome: { source: 'expiry', claimed: false } }, ['access'], tenantOf))!.outcome).toEqual({ source: 'expiry', claimed: false });
    expect((await tenantJobView({ ...probed, outcome: { source: 'other', secret: 'x' } }, ['access'], tenantOf))!.outcome).toBeNull();
    expect(await tenantJobView(probed, ['nobody'], tenantOf)).toBeUndefined();
  });
});

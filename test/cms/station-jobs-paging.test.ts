// GET /v1/jobs pages through every job: a stable order (created_at, id), an opaque `after` cursor
// and `next` in the answer. A tenant-scoped operator gets full pages of ITS jobs although other
// tenants' personalise jobs (filtered after the SQL read, tenantJobView) sit between them: rows are
// read until `limit` jobs are theirs, `next` after the last row examined. A malformed cursor is a
// 400 with a stable code. On SQLite and on PostgreSQL (the same query).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testSchema } from '../helpers/pg-schema.js';
import { PG_URL } from '../helpers/system.js';
import { CAMPUS, type E2e, startE2e } from '../e2e/harness.js';
import { postgresAvailable } from './storage-backends.js';

const pgOk = await postgresAvailable();
const BACKENDS: { name: string; env: Record<string, string> }[] = [
  { name: 'sqlite', env: {} },
  ...(pgOk ? [{ name: 'postgres', env: { DESFIRE_CMS_STORAGE: 'postgres', DESFIRE_CMS_POSTGRES_URL: PG_URL, DESFIRE_CMS_POSTGRES_SCHEMA: testSchema('jobs') } }] : []),
];

interface Row {
  id: string;
  kind: string;
  aid: string;
  plan: unknown;
  createdAt: number;
}

/**
 * 60 jobs, four to a millisecond (the id breaks the tie): install/delete jobs of access (A1C001) and
 * cafeteria (CAFE01), personalise jobs naming access, or cafeteria and library only, and issue jobs.
 * Long runs of other tenants' personalise jobs lie between access's jobs.
 */
function jobs(): Row[] {
  const out: Row[] = [];
  for (let i = 0; i < 60; i++) {
    const createdAt = 1_700_000_000_000 + Math.floor(i / 4);
    const id = `job_${String.fromCharCode(97 + ((i * 7) % 26))}${i.toString().padStart(3, '0')}`;
    const k = i % 10;
    if (k === 0) out.push({ id, kind: 'install', aid: 'A1C001', plan: { cmkVersion: 1, keys: [], files: [], tenant: 'access' }, createdAt });
    else if (k === 1) out.push({ id, kind: 'issue', aid: '000000', plan: { cmkVersion: 1, piccKeySettings: 9, randomUid: false }, createdAt });
    else if (k === 7) out.push({ id, kind: 'personalise', aid: '000000', plan: personalise(['A1C001', 'CAFE01']), createdAt });
    else if (k === 9) out.push({ id, kind: 'delete', aid: 'CAFE01', plan: { cmkVersion: 1, tenant: 'cafeteria' }, createdAt });
    else out.push({ id, kind: 'personalise', aid: '000000', plan: personalise(['CAFE01', '11B001']), createdAt });
  }
  return out;
}

const TENANT: Record<string, string> = { A1C001: 'access', CAFE01: 'cafeteria', '11B001': 'library' };
const personalise = (aids: string[]) => ({ cmkVersion: 1, piccKeySettings: 9, randomUid: false, installs: aids.map((aid) => ({ aid, tenant: TENANT[aid], keys: [], files: [] })) });
const order = (a: Row, b: Row) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

describe.each(BACKENDS)('GET /v1/jobs paged ($name)', ({ env }) => {
  let h: E2e;
  let access: string;
  const all = jobs();
  const get = async (token: string, url: string) => {
    const r = await h.server.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
    return { status: r.statusCode, body: r.json() };
  };
  /** Every page of `url` with `limit`, following `next`. */
  const pages = async (token: string, url: string, limit: number) => {
    const out: { ids: string[]; next: string | null }[] = [];
    let after: string | null = null;
    for (let n = 0; n < 100; n++) {
      const r = await get(token, `${url}${url.includes('?') ? '&' : '?'}limit=${limit}${after ? `&after=${after}` : ''}`);
      expect(r.status).toBe(200);
      out.push({ ids: r.body.jobs.map((j: { id: string }) => j.id), next: r.body.next });
      after = r.body.next;
      if (after === null) return out;
    }
    throw new Error('paging did not end');
  };

  beforeAll(async () => {
    h = await startE2e(env);
    expect((await h.op('POST', '/v1/layouts', CAMPUS, 'application/yaml')).status).toBe(201);
    // the jobs as the service stores them (filed in shuffled order: the order is the columns')
    const rows = [...all].reverse().map((j, i) => ({
      id: j.id,
      kind: j.kind,
      reader_id: 'station-1',
      uid: `04A1B2C3D4E5${(i % 200).toString(16).padStart(2, '0').toUpperCase()}`,
      aid: j.aid,
      state: 'completed',
      jti: `jti-${j.id}`,
      plan: JSON.stringify(j.plan),
      outcome: null,
      created_at: j.createdAt,
      expires_at: j.createdAt + 60_000,
      updated_at: j.createdAt,
    }));
    await h.cms.db.db.insertInto('station_jobs').values(rows).execute();
    access = (await h.cms.deps.tokens.create({ label: 'access admin', roles: ['tenant_admin'], tenants: ['access'], createdBy: null })).token;
  }, 120_000);

  afterAll(async () => {
    await h?.close();
  });

  it('the issuer admin pages through more than `limit` jobs: each once, in (created_at, id) order', async () => {
    const p = await pages(h.admin, '/v1/jobs', 7);
    expect(p.flatMap((x) => x.ids)).toEqual([...all].sort(order).map((j) => j.id));
    expect(p.slice(0, -1).every((x) => x.ids.length === 7)).toBe(true);
    // filters keep working with the cursor
    const installs = await pages(h.admin, '/v1/jobs?state=completed', 25);
    expect(installs.flatMap((x) => x.ids)).toHaveLength(all.length);
  });

  it("a tenant admin gets full pages of its own jobs although other tenants' personalise jobs lie between them", async () => {
    const mine = [...all].sort(order).filter((j) => (j.kind === 'install' && j.aid === 'A1C001') || (j.kind === 'personalise' && (j.plan as { installs: { aid: string }[] }).installs.some((i) => i.aid === 'A1C001')));
    expect(mine.length).toBe(12);
    // the first page alone: 3 of its jobs (reading 3 rows and filtering them gave 1)
    expect((await get(access, '/v1/jobs?limit=3')).body.jobs.map((j: { id: string }) => j.id)).toEqual(mine.slice(0, 3).map((j) => j.id));
    for (const limit of [1, 3, 5, 12]) {
      const p = await pages(access, '/v1/jobs', limit);
      expect(p.flatMap((x) => x.ids), `limit ${limit}`).toEqual(mine.map((j) => j.id));
      // every page but the last is full (the last may be, then `next` is null or one empty page follows)
      expect(p.slice(0, -1).every((x) => x.ids.length === limit), `limit ${limit}`).toBe(true);
    }
    // its projection: only its installation of a shared personalise job
    const one = await get(access, '/v1/jobs?limit=2');
    expect(one.body.jobs[1].plan.installs.map((i: { aid: string }) => i.aid)).toEqual(['A1C001']);
    // a tenant with no job: one empty page, no endless reading
    const none = (await h.cms.deps.tokens.create({ label: 'transit admin', roles: ['tenant_admin'], tenants: ['transit'], createdBy: null })).token;
    expect((await get(none, '/v1/jobs?limit=5')).body).toEqual({ jobs: [], next: null });
  });

  it('a malformed cursor is 400 ERR_BAD_CURSOR, never a 5xx', async () => {
    const next = (await get(h.admin, '/v1/jobs?limit=2')).body.next as string;
    const decoded = Buffer.from(next, 'base64url').toString();
    const bad = [
      'x',
      'not-a-cursor',
      Buffer.from('12.job_').toString('base64url'),
      Buffer.from(`-1.${decoded.split('.')[1]}`).toString('base64url'),
      Buffer.from(`99999999999999999.${decoded.split('.')[1]}`).toString('base64url'),
      Buffer.from(`${decoded} or 1=1`).toString('base64url'),
      `${next}=`,
      encodeURIComponent(Buffer.from(decoded).toString('base64')), // not base64url
      `${next.slice(0, -1)}!`,
    ];
    for (const c of bad) {
      const r = await get(h.admin, `/v1/jobs?after=${c}`);
      expect([c, r.status, r.body.error?.code]).toEqual([c, 400, 'ERR_BAD_CURSOR']);
    }
    const long = await get(h.admin, `/v1/jobs?after=${'A'.repeat(200)}`);
    expect([long.status, long.body.error.code]).toEqual([400, 'ERR_VALIDATION']);
    // the cursor itself works for any operator (it names a job, not a scope)
    expect((await get(access, `/v1/jobs?after=${next}`)).status).toBe(200);
  });
});

// Operator-requested reconciliation, against the whole CMS over HTTPS (+ mTLS for the stations):
// an install job is claimed and its station never reports (the outcome is unknown); the operator
// asks another station, `desfire-cms jobs reconcile JOB --reader ID`; that station, with the card in
// front of it, lists what it was asked for and runs the probe through the remote relay: the CMS
// probes the card (it never guesses) and records the verdict. A station not designated gets
// nothing; refusals (wrong state, station without the role, tenant admin) change nothing.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { attachStation } from '../../src/cms/jobs/module.js';
import { CmsClient as StationHttp, StationClient, runRequestedReconciles } from '../../src/reader/station/index.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { type StationCms, startStationCms } from '../reader/e2e-helpers.js';

let s: StationCms;
let base: string[];
let issuer: string;
let tenantAdmin: string;
const closers: (() => void)[] = [];

/** A station enrolled with `operations` on (access, A1C001, key 0): its HTTPS client and a StationClient. */
async function stationFor(id: string, operations: string[]) {
  const st = await s.enrolled(id, [{ tenantId: 'access', aid: 'A1C001', keyNo: 0, operations }]);
  const c = st.ks.certificates();
  const http = new StationHttp({ host: '127.0.0.1', port: s.server.port, ca: c.ca, cert: c.cert, key: st.ks.tlsKeyPem(), servername: 'localhost' });
  closers.push(() => http.close());
  return { http, client: new StationClient(http, { readerId: id, privateKey: st.ks.privateKey }) };
}

async function cli(token: string, ...args: string[]) {
  const lines = { out: [] as string[], err: [] as string[] };
  const io: CliIO = { out: (l) => lines.out.push(l), err: (l) => lines.err.push(l), env: { DESFIRE_CMS_TOKEN: token }, cwd: process.cwd() };
  return { code: await main(['jobs', ...args, ...base], io), ...lines };
}

beforeAll(async () => {
  s = await startStationCms();
  issuer = (await s.cms.deps.tokens.create({ label: 'reconcile issuer', roles: ['issuer_admin'], tenants: ['*'], createdBy: null })).token;
  tenantAdmin = (await s.cms.deps.tokens.create({ label: 'access admin', roles: ['tenant_admin'], tenants: ['access'], createdBy: null })).token;
  const caFile = join(mkdtempSync(join(tmpdir(), 'reconcile-cli-')), 'ca.pem');
  writeFileSync(caFile, s.cms.ca!.certificatePem);
  base = ['--cms', s.url, '--ca', caFile];
}, 60_000);
afterAll(async () => {
  for (const c of closers) c();
  await s?.close();
});

describe('operator-requested reconciliation', () => {
  it('unknown install job → jobs reconcile → the designated station probes → reconciled from the probe', async () => {
    const { jobs } = await attachStation(s.cms);
    const a = await stationFor('st-a', ['issue', 'install']);
    const b = await stationFor('st-b', ['install']);
    const c = await stationFor('st-c', ['install']);
    await stationFor('st-none', ['deliver']);
    const card = VirtualCard.create();
    const t = new InProcessTransport(card);
    const { uid } = await a.client.personalise(t, [], { randomUid: false });
    card.reset();
    // st-a asks for the install and claims it, then is never heard of again
    const created = await a.http.ok('POST', '/v1/station/jobs', { kind: 'install', uid, aid: 'A1C001' });
    await a.http.ok('POST', `/v1/station/jobs/${created.jobId}/claim`, { token: created.token });
    const id = created.jobId as string;

    // still claimed: a receipt may come, so no reconciliation yet
    const early = await cli(issuer, 'reconcile', id, '--reader', 'st-b');
    expect([early.code, early.err[0]]).toEqual([1, expect.stringContaining('409 ERR_JOB_STATE')]);
    await s.cms.deps.domain!.db.updateTable('station_jobs').set({ expires_at: Date.now() - 1 }).where('id', '=', id).execute();
    await jobs.sweepExpired();
    expect((await jobs.get(id)).state).toBe('unknown');
    expect((await cli(issuer, 'list', '--state', 'unknown')).out.join('\n')).toContain(`${id}  install A1C001  card ${uid}  unknown  reader st-a`);

    // refusals: a station that may not install A1C001, a tenant admin, a usage error
    const noRole = await cli(issuer, 'reconcile', id, '--reader', 'st-none');
    expect([noRole.code, noRole.err[0]]).toEqual([1, expect.stringContaining('403 ERR_JOB_FORBIDDEN')]);
    expect((await cli(tenantAdmin, 'reconcile', id, '--reader', 'st-b')).err[0]).toContain('403');
    expect((await cli(issuer, 'reconcile', id)).code).toBe(2);
    expect((await runRequestedReconciles(b.http, t, uid))).toEqual([]); // nothing asked of it yet

    const ok = await cli(issuer, 'reconcile', id, '--reader', 'st-b');
    expect(ok.code).toBe(0);
    expect(ok.out[0]).toContain(`reconcile of ${id} (install A1C001, card ${uid}) requested of station st-b`);
    expect((await jobs.get(id)).state).toBe('unknown'); // nothing decided by the request

    // a station not designated is told nothing; the designated one runs the probe
    expect(await runRequestedReconciles(c.http, t, uid)).toEqual([]);
    const runs = await runRequestedReconciles(b.http, t, uid);
    expect(runs).toEqual([{ jobId: id, kind: 'install', aid: 'A1C001', verdict: 'not-applied', findings: ['A1C001 absent'] }]);
    const after = await jobs.get(id);
    expect(after.state).toBe('reconciled');
    expect((await cli(issuer, 'show', id)).out.join('\n')).toContain('"verdict":"not-applied"');
    expect(await s.cms.deps.domain!.cards.applications(uid)).toEqual([]);
    // done: asked again, it is refused; the station has nothing left to run
    expect((await cli(issuer, 'reconcile', id, '--reader', 'st-b')).err[0]).toContain('409 ERR_JOB_STATE');
    expect(await runRequestedReconciles(b.http, t, uid)).toEqual([]);
    // the request and the verdict are audited
    const audit = (await s.cms.deps.domain!.db.selectFrom('audit_entries' as never).selectAll().where('operation' as never, '=', 'station.job_reconcile' as never).execute()) as unknown as { details: string }[];
    expect(audit.map((e) => e.details).join('\n')).toContain('requested');
  }, 120_000);
});

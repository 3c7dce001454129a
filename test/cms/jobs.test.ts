// Station jobs and key delivery, the edges: bad input changes nothing; state and role checks;
// receipts that fail or do not show every planned step record nothing; an unclaimed or unrun issue
// job reconciles to "not applied"; delivery refusals by card and reader state; no key byte in the
// database, the job plan or the log.
import { toHex } from '../../src/core/crypto/bytes.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { type CmsClient, StationClient, readUid } from '../../src/reader/station/client.js';
import { signStationReceipt } from '../../src/reader/station/receipt.js';
import type { StationJob } from '../../src/reader/station/protocol.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { CAMPUS, type E2e, startE2e } from '../e2e/harness.js';
import { createPrivateKey } from 'node:crypto';

let h: E2e;
let st: CmsClient;
let station: StationClient;
let door: CmsClient;
const seenKeys: string[] = [];

beforeAll(async () => {
  h = await startE2e();
  expect((await h.op('POST', '/v1/layouts', CAMPUS, 'application/yaml')).status).toBe(201);
  st = await h.reader('station-x', [{ aid: 'A1C001', keyNo: 0, operations: ['install', 'issue'] }]);
  station = new StationClient(st, { readerId: 'station-x', onKey: (_b, k) => seenKeys.push(toHex(k)) });
  door = await h.reader('door-x', [{ aid: 'A1C001', keyNo: 1, operations: ['deliver'] }]);
}, 120_000);

afterAll(async () => {
  await h?.close();
});

const count = async (table: 'station_jobs' | 'card_key_blobs' | 'cards') => Number((await h.cms.db.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

describe('station jobs', () => {
  it('bad input is a 4xx and changes nothing', async () => {
    const before = [await count('station_jobs'), await count('card_key_blobs'), await count('cards')];
    for (const body of [
      { kind: 'issue', uid: 'nothex' },
      { kind: 'install', uid: '04AABBCCDDEEFF' },
      { kind: 'install', uid: '04AABBCCDDEEFF', aid: '000000' },
      { kind: 'explode', uid: '04AABBCCDDEEFF' },
      { kind: 'issue', uid: '04AABBCCDDEEFF', extra: 1 },
    ]) {
      const r = await st.call('POST', '/v1/station/jobs', body);
      expect(r.status).toBe(400);
    }
    const unknownApp = await st.call('POST', '/v1/station/jobs', { kind: 'install', uid: '04AABBCCDDEEFF', aid: 'CAFE01' });
    expect([unknownApp.status, unknownApp.body.error.code]).toEqual([403, 'ERR_JOB_FORBIDDEN']);
    const noCard = await st.call('POST', '/v1/station/jobs', { kind: 'install', uid: '04AABBCCDDEEFF', aid: 'A1C001' });
    expect([noCard.status, noCard.body.error.code]).toEqual([404, 'ERR_JOB_NOT_FOUND']);
    const bogusClaim = await st.call('POST', '/v1/station/jobs/job_nope/claim', { token: 'x.y.z' });
    expect(bogusClaim.status).toBe(404);
    expect([await count('station_jobs'), await count('card_key_blobs'), await count('cards')]).toEqual(before);
    // refusals are audited
    expect(h.audit.events.filter((e) => e.op === 'job_create' && e.outcome === 'refused').length).toBeGreaterThanOrEqual(2);
  });

  it('a runtime reader cannot ask for station jobs', async () => {
    const r = await door.call('POST', '/v1/station/jobs', { kind: 'issue', uid: '04AABBCCDDEE01' });
    expect([r.status, r.body.error.code]).toEqual([403, 'ERR_JOB_FORBIDDEN']);
  });

  it('a receipt lacking planned steps, or reporting a card refusal, records nothing', async () => {
    const t = new InProcessTransport(VirtualCard.create());
    const uid = await readUid(t);
    const created = await st.ok('POST', '/v1/station/jobs', { kind: 'issue', uid });
    const { job } = (await st.ok('POST', `/v1/station/jobs/${created.jobId}/claim`, { token: created.token })) as { job: StationJob };
    const key = createPrivateKey(st.conn.key);
    const partial = await signStationReceipt({ jobId: job.jobId, jti: job.jti, uid, results: [{ op: 'Authenticate', status: 0 }], at: 1 }, key);
    const r1 = await st.call('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: partial });
    expect([r1.status, r1.body.error.code]).toEqual([400, 'ERR_JOB_RECEIPT_MISMATCH']);
    const otherJob = await signStationReceipt({ jobId: 'job_other', jti: job.jti, uid, results: [], at: 1 }, key);
    const r2 = await st.call('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: otherJob });
    expect([r2.status, r2.body.error.code]).toEqual([400, 'ERR_RECEIPT_MISMATCH']);
    expect((await h.op('GET', `/v1/cards/${uid}`)).body.card.state).toBe('blank');
    const refused = await signStationReceipt({ jobId: job.jobId, jti: job.jti, uid, results: [{ op: 'Authenticate', status: 0xae }], at: 1 }, key);
    const r3 = await st.call('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: refused });
    expect([r3.status, r3.body.ok, r3.body.job.state]).toEqual([200, false, 'failed']);
    expect((await h.op('GET', `/v1/cards/${uid}`)).body.card.state).toBe('blank');
    // a failed job left the card untouched here: the probe says so, and the pending CMK is discarded
    const res = await (await import('../../src/cms/jobs/reconcile.js')).reconcileJob(h.station.jobs, { actor: 'test', purpose: 'test', correlationId: 't' }, created.jobId, t);
    expect(res.verdict).toBe('not-applied');
    expect(await h.cms.db.db.selectFrom('card_key_blobs').selectAll().where('job_id', '=', created.jobId).execute()).toHaveLength(0);
    // and the card can be issued afresh
    const p = await station.personalise(t, ['A1C001']);
    expect(p.runs.map((x) => x.recorded)).toEqual([true, true]);
  }, 60_000);

  it('delivers only for active cards and active readers; no key byte in the database, plans or logs', async () => {
    const t = new InProcessTransport(VirtualCard.create());
    const { uid } = await station.personalise(t, ['A1C001']);
    const issued = await door.call('POST', '/v1/keys/deliver', { uid, aid: 'A1C001', keyNo: 1 });
    expect([issued.status, issued.body.error.code]).toEqual([403, 'ERR_DELIVERY_CARD_STATE']);
    await h.cms.deps.domain!.cards.transition(uid, 'active');
    expect((await door.call('POST', '/v1/keys/deliver', { uid, aid: 'A1C001', keyNo: 1 })).status).toBe(200);
    const wrongKey = await door.call('POST', '/v1/keys/deliver', { uid, aid: 'A1C001', keyNo: 2 });
    expect([wrongKey.status, wrongKey.body.error.code]).toEqual([403, 'ERR_DELIVERY_FORBIDDEN']);
    const unknown = await door.call('POST', '/v1/keys/deliver', { uid: '04000000000001', aid: 'A1C001', keyNo: 1 });
    expect([unknown.status, unknown.body.error.code]).toEqual([403, 'ERR_DELIVERY_CARD_STATE']);
    await h.cms.deps.domain!.cards.transition(uid, 'suspended');
    expect((await door.call('POST', '/v1/keys/deliver', { uid, aid: 'A1C001', keyNo: 1 })).body.error.code).toBe('ERR_DELIVERY_CARD_STATE');
    await h.cms.deps.domain!.cards.transition(uid, 'active');
    expect((await h.op('POST', '/v1/readers/door-x/suspend', {})).status).toBe(200);
    const suspended = await door.call('POST', '/v1/keys/deliver', { uid, aid: 'A1C001', keyNo: 1 });
    expect(suspended.status).toBe(403);
    expect((await h.op('POST', '/v1/readers/door-x/resume', {})).status).toBe(200);

    expect(seenKeys.length).toBeGreaterThan(4);
    const rows = JSON.stringify([
      await h.cms.db.db.selectFrom('station_jobs').selectAll().execute(),
      await h.cms.db.db.selectFrom('card_key_blobs').selectAll().execute(),
      await h.cms.db.db.selectFrom('card_keys').selectAll().execute(),
    ]).toLowerCase();
    const logs = h.logLines.join('\n').toLowerCase();
    for (const k of seenKeys) {
      expect(rows.includes(k.toLowerCase())).toBe(false);
      expect(logs.includes(k.toLowerCase())).toBe(false);
    }
  }, 60_000);

  it('claim: true answers the job already claimed by the creating station (keys sealed, no token); the receipt records it; nothing can claim it again', async () => {
    const t = new InProcessTransport(VirtualCard.create());
    const uid = await readUid(t);
    expect((await st.call('POST', '/v1/station/jobs', { kind: 'issue', uid, claim: 'yes' })).status).toBe(400);
    const auditBefore = h.audit.events.length;
    const created = await st.ok('POST', '/v1/station/jobs', { kind: 'issue', uid, claim: true });
    expect(created.token).toBeUndefined();
    const job = created.job as StationJob;
    expect([job.kind, job.jobId, job.uid]).toEqual(['issue', created.jobId, uid]);
    // the random CMK planned in this request is sealed from the pending blob
    expect(job.kind === 'issue' && job.cmk.binding).toEqual({ tenant: 'issuer', aid: '000000', uid, keyNo: 0, version: 1 });
    const row = await h.station.jobs.get(created.jobId);
    expect([row.state, row.jti]).toEqual(['claimed', job.jti]);
    const ev = h.audit.events.slice(auditBefore).filter((e) => e.jobId === created.jobId);
    expect(ev.map((e) => [e.op, e.outcome, e.claimed])).toEqual([['job_create', 'ok', true]]);
    // no token exists for it, and a second job for the card is refused while it is open
    const claimAgain = await st.call('POST', `/v1/station/jobs/${created.jobId}/claim`, { token: 'x.y.z' });
    expect(claimAgain.status).toBe(403);
    const second = await st.call('POST', '/v1/station/jobs', { kind: 'issue', uid, claim: true });
    expect([second.status, second.body.error.code]).toEqual([409, 'ERR_JOB_BUSY']);
    const other = await h.reader('station-y', [{ aid: 'A1C001', keyNo: 0, operations: ['install', 'issue'] }]);
    const wrongReader = await other.call('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: 'a.b.c' });
    expect([wrongReader.status, wrongReader.body.error.code]).toEqual([404, 'ERR_JOB_NOT_FOUND']);
    other.close();
    const out = await station.executor.run(job, t);
    const r = await st.ok('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: out.jws });
    expect([r.ok, r.job.state]).toEqual([true, 'completed']);
    expect((await h.op('GET', `/v1/cards/${uid}`)).body.card.state).toBe('issued');
    expect((await st.call('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: out.jws })).status).toBe(409);
    // installation the same way, and the two-step protocol (create, token, claim) still works
    const inst = await station.run({ kind: 'install', uid, aid: 'A1C001' }, t);
    expect(inst.recorded).toBe(true);
    expect(h.audit.events.filter((e) => e.jobId === inst.jobId).map((e) => e.op)).toEqual(['job_create', 'job_receipt']);
    const t2 = new InProcessTransport(VirtualCard.create());
    const two = await station.run({ kind: 'issue', uid: await readUid(t2) }, t2, { separateClaim: true });
    expect(two.recorded).toBe(true);
    expect(h.audit.events.filter((e) => e.jobId === two.jobId).map((e) => e.op)).toEqual(['job_create', 'job_claim', 'job_receipt']);
  }, 60_000);

  it('a card issued again after an expired unclaimed job: the pending CMK blob is replaced by the new job and activated by its receipt', async () => {
    const t = new InProcessTransport(VirtualCard.create());
    const uid = await readUid(t);
    const first = await st.ok('POST', '/v1/station/jobs', { kind: 'issue', uid });
    const blobOf = () => h.cms.db.db.selectFrom('card_key_blobs').select(['job_id', 'state', 'blob']).where('uid', '=', uid).where('aid', '=', '000000').execute();
    const before = await blobOf();
    expect(before.map((b) => [b.job_id, b.state])).toEqual([[first.jobId, 'pending']]);
    await h.cms.db.db.updateTable('station_jobs').set({ expires_at: Date.now() - 1 }).where('id', '=', first.jobId).execute();
    await h.station.jobs.sweepExpired();
    const run = await station.run({ kind: 'issue', uid }, t);
    expect(run.recorded).toBe(true);
    const after = await blobOf();
    expect(after.map((b) => [b.job_id, b.state])).toEqual([[run.jobId, 'active']]);
    expect(after[0]!.blob).not.toBe(before[0]!.blob);
  }, 60_000);

  it('a claimed job past its expiry without a receipt becomes unknown; an unclaimed one fails', async () => {
    const t = new InProcessTransport(VirtualCard.create());
    const { uid } = await station.personalise(t, []);
    const claimed = await st.ok('POST', '/v1/station/jobs', { kind: 'install', uid, aid: 'A1C001' });
    await st.ok('POST', `/v1/station/jobs/${claimed.jobId}/claim`, { token: claimed.token });
    await h.cms.db.db.updateTable('station_jobs').set({ expires_at: Date.now() - 1 }).where('id', '=', claimed.jobId).execute();
    expect(await h.station.jobs.sweepExpired()).toBe(1);
    expect((await h.station.jobs.get(claimed.jobId)).state).toBe('unknown');
    // never claimed: nothing can have happened on the card
    const t2 = new InProcessTransport(VirtualCard.create());
    const uid2 = await readUid(t2);
    const unclaimed = await st.ok('POST', '/v1/station/jobs', { kind: 'issue', uid: uid2 });
    await h.cms.db.db.updateTable('station_jobs').set({ expires_at: Date.now() - 1 }).where('id', '=', unclaimed.jobId).execute();
    await h.station.jobs.sweepExpired();
    expect((await h.station.jobs.get(unclaimed.jobId)).state).toBe('failed');
    // the unknown install is settled by probing: the station never ran it, so not applied
    const res = await (await import('../../src/cms/jobs/reconcile.js')).reconcileJob(h.station.jobs, { actor: 'test', purpose: 'test', correlationId: 't' }, claimed.jobId, t);
    expect(res).toMatchObject({ verdict: 'not-applied' });
    expect((await h.station.jobs.get(claimed.jobId)).state).toBe('reconciled');
  }, 60_000);
});

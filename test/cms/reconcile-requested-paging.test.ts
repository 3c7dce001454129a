// A station asks which reconciliations it was asked to run on the card in front of it
// (POST /v1/station/reconcile {uid}): every open job of that card is looked at, however many. The
// reconciler read only the card's first 100 open jobs per state, oldest first, so a request for a
// job behind 100 older open jobs of the same card was never found — the station never probed it.
// Here 1,100 unknown jobs of one card (more than one page of StationJobs.list, 1,000) and a failed
// one: the requests for the newest unknown job and for the failed one are found, only those.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CmsClient } from '../../src/reader/station/index.js';
import { CAMPUS, type E2e, startE2e } from '../e2e/harness.js';

const UID = '04A1B2C3D4E5F6';
const OPEN = 1100;
let h: E2e;
let station: CmsClient;

beforeAll(async () => {
  h = await startE2e({}, { limits: false });
  expect((await h.op('POST', '/v1/layouts', CAMPUS, 'application/yaml')).status).toBe(201);
  station = await h.reader('st-probe', [{ aid: 'A1C001', keyNo: 0, operations: ['install'] }]);
  const job = (i: number, state: string, uid = UID) => ({
    id: `job_r${String(i).padStart(5, '0')}${uid === UID ? '' : 'x'}`,
    kind: 'install',
    reader_id: 'st-gone',
    uid,
    aid: 'A1C001',
    state,
    jti: `jti-${i}-${uid}`,
    plan: JSON.stringify({ cmkVersion: 1, keys: [], files: [], tenant: 'access' }),
    outcome: null,
    created_at: 1_700_000_000_000 + i,
    expires_at: 1_700_000_060_000 + i,
    updated_at: 1_700_000_000_000 + i,
  });
  const rows = [...Array.from({ length: OPEN }, (_, i) => job(i, 'unknown')), job(OPEN, 'failed'), job(OPEN + 1, 'unknown', '04A1B2C3D4E5F7')];
  for (let i = 0; i < rows.length; i += 500) await h.cms.db.db.insertInto('station_jobs').values(rows.slice(i, i + 500)).execute();
}, 120_000);
afterAll(async () => h?.close());

describe('requested reconciliations of a card with many open jobs', () => {
  it('a request behind more than a page of older open jobs of the card is found', async () => {
    const newest = `job_r${String(OPEN - 1).padStart(5, '0')}`;
    const failed = `job_r${String(OPEN).padStart(5, '0')}`;
    const other = `job_r${String(OPEN + 1).padStart(5, '0')}x`;
    expect((await station.ok('POST', '/v1/station/reconcile', { uid: UID })).jobs).toEqual([]);
    for (const id of [newest, failed, other]) {
      const r = await h.op('POST', `/v1/jobs/${id}/reconcile`, { readerId: 'st-probe' });
      expect([id, r.status]).toEqual([id, 202]);
    }
    const asked = (await station.ok('POST', '/v1/station/reconcile', { uid: UID.toLowerCase() })).jobs;
    expect(asked).toEqual([
      { jobId: newest, kind: 'install', aid: 'A1C001' },
      { jobId: failed, kind: 'install', aid: 'A1C001' },
    ]);
  }, 120_000);
});

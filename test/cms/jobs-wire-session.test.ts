// A station job's answer carries the reader session's ECDH-ES JWE once, on the CMK (the first key
// every job unseals); the other keys name the session (their JWE header's sid) and unseal with the
// session key the station then holds. The answer shrinks by ~0.5 kB per key. The receipt's answer
// is the job's state only (its plan and outcome echoed the job and the results the station has).
import { createPrivateKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import { type CmsClient, readUid } from '../../src/reader/station/client.js';
import { StationExecutor } from '../../src/reader/station/executor.js';
import type { StationJob } from '../../src/reader/station/protocol.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { CAMPUS, CAMPUS_AIDS, type E2e, startE2e } from '../e2e/harness.js';

const campus = parseLayout(CAMPUS, 'campus.yaml');

describe('station job wire: the session JWE once per job', () => {
  let h: E2e;
  let cms: CmsClient;
  beforeAll(async () => {
    h = await startE2e({});
    expect((await h.op('POST', '/v1/layouts', CAMPUS, 'application/yaml')).status).toBe(201);
    cms = await h.reader('station-1', CAMPUS_AIDS.map((aid, i) => ({ aid, keyNo: 0, operations: i === 0 ? ['install', 'issue'] : ['install'] })));
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  });

  const personalise = async (t: InProcessTransport) => {
    const r = await cms.call('POST', '/v1/station/jobs', { kind: 'personalise', uid: await readUid(t), aids: CAMPUS_AIDS, picc: { keySettings: { ...campus.picc.keySettings }, randomUid: false }, claim: true });
    expect(r.status).toBe(201);
    return r.body.job as StationJob & { kind: 'personalise' };
  };

  it('personalise: the session on the CMK only; a fresh station unseals every key and the job is recorded', async () => {
    // the reader's first job: custody's concurrent first seals may each open a session of their
    // own (src/custody/seal.ts) — a key whose session is not the CMK's keeps its own
    const first = await personalise(new InProcessTransport(VirtualCard.create()));
    for (const k of first.applications.flatMap((a) => a.keys)) if (k.sealed.session !== undefined) expect(k.sealed.session).not.toBe(first.cmk.sealed.session);
    const t = new InProcessTransport(VirtualCard.create());
    const job = await personalise(t);
    expect(typeof job.cmk.sealed.session).toBe('string');
    const keys = job.applications.flatMap((a) => a.keys);
    expect(keys.length).toBeGreaterThan(5);
    for (const k of keys) expect(k.sealed.session).toBeUndefined();
    // every key's JWE names the CMK's session
    const sid = (jwe: string) => (JSON.parse(Buffer.from(jwe.split('.')[0]!, 'base64url').toString()) as { kid?: string }).kid;
    for (const k of keys) expect(sid(k.sealed.jwe)).toBe(sid(job.cmk.sealed.jwe));
    // a station that has never seen this session runs the whole job
    const ex = new StationExecutor({ readerId: 'station-1', privateKey: createPrivateKey(cms.conn.key) } as never);
    const out = await ex.run(job, t);
    expect(out.ok).toBe(true);
    const rec = await cms.call('POST', `/v1/station/jobs/${job.jobId}/receipt`, { receipt: out.jws });
    expect([rec.status, rec.body.ok, rec.body.job.state]).toEqual([200, true, 'completed']);
    // the receipt's answer: the job's state, not the plan and results the station already has
    expect([rec.body.job.plan, rec.body.job.outcome]).toEqual([undefined, undefined]);
    expect(JSON.stringify(rec.body).length).toBeLessThan(400);
  }, 60_000);
});

// Station jobs run by the reader agent against the CMS (HTTPS + mTLS): issue and install on a
// virtual card, receipts recorded; a replayed job token is refused by the reader (before the card
// is touched) and by the CMS (claim twice); every job and refusal is in the baton.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveImageAtomicSync } from '../../src/card/image-file.js';
import { VirtualCard } from '../../src/card/virtual-card.js';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { toHex } from '../../src/core/crypto/bytes.js';
import { ReaderUnsealer } from '../../src/custody/sealed.js';
import { ReaderAgent } from '../../src/reader/agent.js';
import { AuditBaton } from '../../src/reader/baton.js';
import { CmsClient } from '../../src/reader/cms-client.js';
import { JobRunner } from '../../src/reader/jobs.js';
import { ReaderKeystore } from '../../src/reader/keystore.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { PASS, type StationCms, startStationCms } from './e2e-helpers.js';

let s: StationCms;
beforeAll(async () => {
  s = await startStationCms();
}, 60_000);
afterAll(async () => s?.close());

describe('station jobs through the reader agent', () => {
  it('issue + install recorded; a replayed job is refused by the reader, a claim of the claimed job by the CMS; all in the baton', async () => {
    const st = await s.enrolled('job-station', [{ tenantId: 'cafeteria', aid: 'CAFE01', keyNo: 0, operations: ['issue', 'install'] }]);
    const ks = ReaderKeystore.open(st.dir, new TextEncoder().encode(PASS));
    const c = ks.certificates();
    const cms = new CmsClient({ url: s.url, ca: c.ca, servername: 'localhost' }, { key: ks.tlsKeyPem(), cert: c.cert });
    const baton = AuditBaton.open(st.dir);
    const agent = new ReaderAgent({ readerId: 'job-station', roles: [], baton, unsealer: new ReaderUnsealer('job-station', ks.privateKey), keys: { fetch: () => Promise.reject(new Error('unused')) }, cms });
    const jobs = new JobRunner(agent, ks, { url: s.url, servername: 'localhost' });
    const card = VirtualCard.create();
    const t = new InProcessTransport(card);
    const uid = toHex(card.uid);
    expect(await jobs.run({ kind: 'issue', uid, randomUid: false }, t)).toMatchObject({ kind: 'issue', ok: true, recorded: true });
    const claimed = await jobs.claim({ kind: 'install', uid, aid: 'CAFE01' });
    expect(await jobs.execute(claimed.jobId, claimed.job, t)).toMatchObject({ kind: 'install', ok: true, recorded: true });
    // the same job again: refused by the reader before anything reaches the card
    const before = JSON.stringify(card.toImage());
    await expect(jobs.execute(claimed.jobId, claimed.job, t)).rejects.toMatchObject({ code: 'ERR_READER_REPLAY' });
    expect(JSON.stringify(card.toImage())).toBe(before);
    // the job came back claimed in the create (no operation token travelled, no separate claim): the
    // CMS's claim route refuses it (audited), and the job has exactly one receipt
    const replay = await jobs.http.call('POST', `/v1/station/jobs/${claimed.jobId}/claim`, { token: 'x'.repeat(64) });
    expect(replay.status).toBeGreaterThanOrEqual(400);
    expect(replay.status).toBeLessThan(500);
    const entries = (await s.cms.deps.domain!.db.selectFrom('audit_entries' as never).select(['operation', 'result', 'details'] as never).where('operation' as never, 'like', 'station.job_%' as never).execute()) as unknown as { operation: string; result: string; details: string }[];
    expect(entries.filter((e) => e.details.includes(claimed.jobId)).map((e) => [e.operation, e.result])).toEqual([
      ['station.job_create', 'ok'],
      ['station.job_receipt', 'ok'],
      ['station.job_claim', 'denied'],
    ]);
    expect(baton.all().map((e) => [e.op, e.result])).toEqual([
      ['job:issue', 'ok'],
      ['job:install', 'ok'],
      ['job:install', 'refused:ERR_READER_REPLAY'],
    ]);
    await agent.sync();
    expect(baton.acknowledged).toBe(3);
    jobs.close();
    agent.close();
    cms.close();
  }, 120_000);

  it('`desfire-cms reader job` on a card image: issue then install', async () => {
    const st = await s.enrolled('job-cli', [{ tenantId: 'library', aid: '11B001', keyNo: 0, operations: ['issue', 'install'] }]);
    const card = VirtualCard.create();
    const image = join(mkdtempSync(join(tmpdir(), 'job-card-')), 'card.json');
    saveImageAtomicSync(image, card.toImage());
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env: {}, cwd: process.cwd() };
    const base = ['reader', 'job', '--dir', st.dir, '--cms', s.url, '--servername', 'localhost', '--passphrase-file', st.passFile, '--image', image];
    expect(await main([...base, '--kind', 'issue', '--profile', 'bad profile'], io)).toBe(2);
    err.length = 0;
    expect(await main([...base, '--kind', 'issue', '--no-random-uid', '--profile', 'student'], io)).toBe(0);
    expect(await main([...base, '--kind', 'install', '--aid', '11B001'], io)).toBe(0);
    expect(err).toEqual([]);
    // the card's profile is on its record (what standing-policy authorisations match)
    const uid = /card ([0-9A-F]{14})/.exec(out[0]!)![1]!;
    expect((await s.cms.deps.domain!.cards.get(uid))!.profile).toBe('student');
    expect(out).toEqual([expect.stringMatching(/^job issue .* card [0-9A-F]{14}: ok, recorded \(baton #1\)$/), expect.stringMatching(/^job install .* card [0-9A-F]{14}: ok, recorded \(baton #2\)$/)]);
  }, 120_000);
});

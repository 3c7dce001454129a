// The same rotation, approvals, KEK rewrap and compromise SQL on a real PostgreSQL (row values for
// keyset pagination, window functions for planning, casts): a small campaign with tearing, a
// rollback, a resumed rewrap, a reader key set.
import { afterAll, describe, expect, it } from 'vitest';
import { CompromiseService } from '../../src/cms/compromise/service.js';
import { KekService } from '../../src/cms/kek/rewrap.js';
import { CampaignRunner } from '../../src/cms/rotation/runner.js';
import { acceptedVersions } from '../../src/cms/rotation/versions.js';
import { AID, CTX, TENANT, makeFixture, type Fixture } from './rotation-fixture.js';
import { postgresAvailable, postgresBackend } from './storage-backends.js';

const pgOk = await postgresAvailable();
const key = { tenantId: TENANT, aid: AID, keyNo: 0 };

describe('rotation on PostgreSQL', () => {
  const backend = postgresBackend();
  let f: Fixture | undefined;
  afterAll(async () => {
    await f?.close();
    await backend.cleanup();
  });

  it.skipIf(!pgOk)('campaign with torn cards, rollback, rewrap resumed, reader key set', async () => {
    f = await makeFixture(60, { open: () => backend.open(), policy: { campaignCardThreshold: 1000 } });
    const uids = [...f.cards.keys()];
    uids.forEach((u, i) => (f!.cards.get(u)!.mode = i % 10 === 0 ? 'after-once' : i % 10 === 5 ? 'before-always' : 'none'));
    const c = await f.campaigns.create({ ...key, fromVersion: 1, target: { kind: 'all' }, batchSize: 25, maxAttempts: 2 }, 'alice');
    expect(c.cardCount).toBe(60);
    await f.campaigns.start(c.id, 'alice');
    const runner = new CampaignRunner(f.campaigns, f.executor, f.audit);
    expect(await runner.run(c.id)).toBe('finished');
    const p = await f.campaigns.progress(c.id);
    expect(p.batches.map((b) => b.batch)).toEqual([0, 1, 2]);
    expect(p.totals).toMatchObject({ done: 54, failed: 6, pending: 0 });
    for (const fl of p.failures) expect([fl.cardVersion, f.cardVersion(fl.uid)]).toEqual([1, 1]);
    await f.campaigns.rollback(c.id, 'alice');
    expect(await runner.run(c.id)).toBe('finished');
    expect((await f.campaigns.complete(c.id, 'alice')).state).toBe('rolled_back');
    for (const u of uids) expect(f.cardVersion(u)).toBe(1);
    expect(await acceptedVersions(f.handle.db, key)).toEqual([1]);

    const KEK = 'kek.acme';
    await f.custody.createKey(CTX, KEK, { purpose: 'wrap' });
    for (const uid of uids) {
      const w = await f.custody.generateKey(CTX, KEK, 'aes128', { tenant: TENANT, aid: AID, uid, keyNo: 2, version: 1 });
      await f.handle.db.insertInto('card_key_blobs').values({ uid, aid: AID, key_no: 2, key_version: 1, kek: KEK, blob: w.blob, state: 'active', job_id: 'j', created_at: 1 }).execute();
    }
    const kek = new KekService({ db: f.handle.db, custody: f.custody, audit: f.audit, approvals: f.approvals });
    await f.custody.rotateKey(CTX, KEK);
    const run = await kek.startRewrap(CTX, KEK);
    expect(await kek.runRewrap(CTX, run.id, { pageSize: 7, maxPages: 3 })).toMatchObject({ rewrapped: 21, state: 'running' });
    expect(await kek.runRewrap(CTX, run.id, { pageSize: 7 })).toMatchObject({ rewrapped: 60, state: 'done' });
    expect(await kek.census(KEK, 11)).toEqual([{ kek: KEK, kekVersion: 2, blobs: 60 }]);

    const svc = new CompromiseService({ db: f.handle.db, audit: f.audit, campaigns: f.campaigns });
    expect(await svc.readerKeySet('r-none')).toEqual([]);
  }, 120_000);
});

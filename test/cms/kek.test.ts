// KEK rotation + rewrap: dry run (blobs per KEK version), approval gate, a run interrupted after
// some pages and resumed by a new service instance (nothing lost, nothing rewrapped twice),
// final census, and every blob still unwraps under its binding.
import { afterAll, describe, expect, it } from 'vitest';
import { KekService } from '../../src/cms/kek/rewrap.js';
import { AID, CTX, TENANT, makeFixture, type Fixture } from './rotation-fixture.js';

const KEK = 'kek.acme';
const N = 2500;

describe('KEK rotation and rewrap', () => {
  let f: Fixture;
  afterAll(async () => f?.close());

  it('dry run, approvals, interrupted run resumed, census', async () => {
    f = await makeFixture(0);
    await f.custody.createKey(CTX, KEK, { purpose: 'wrap' });
    const rows = [];
    for (let i = 0; i < N; i++) {
      const uid = '04' + (0x200000 + i).toString(16).toUpperCase().padStart(6, '0') + 'A0B0C0';
      const keyNo = i % 2;
      const w = await f.custody.generateKey(CTX, KEK, 'aes128', { tenant: TENANT, aid: AID, uid, keyNo, version: 1 });
      rows.push({ uid, aid: AID, key_no: keyNo, key_version: 1, kek: KEK, blob: w.blob, state: 'active', job_id: 'j', created_at: 1 });
    }
    for (let i = 0; i < rows.length; i += 500) await f.handle.db.insertInto('card_key_blobs').values(rows.slice(i, i + 500)).execute();
    const kek = new KekService({ db: f.handle.db, custody: f.custody, audit: f.audit, approvals: f.approvals });
    expect(await kek.dryRun(CTX, KEK)).toEqual({ kek: KEK, latestVersion: 1, census: [{ kek: KEK, kekVersion: 1, blobs: N }], toRewrap: 0 });

    await expect(kek.rotate(CTX, KEK, 'nope')).rejects.toMatchObject({ code: 'ERR_APPROVAL_REQUIRED' });
    const approval = await kek.requestRotation(KEK, 'alice', 'yearly');
    await expect(kek.rotate({ ...CTX, actor: 'alice' }, KEK, approval)).rejects.toMatchObject({ code: 'ERR_APPROVAL_REQUIRED' });
    await f.approvals.vote(approval, { id: 'bob', roles: ['issuer_admin'] }, 'approve');
    await f.approvals.vote(approval, { id: 'carol', roles: ['issuer_admin'] }, 'approve');
    const { version, run } = await kek.rotate({ ...CTX, actor: 'alice' }, KEK, approval);
    expect(version).toBe(2);
    await expect(kek.rotate({ ...CTX, actor: 'alice' }, KEK, approval)).rejects.toMatchObject({ code: 'ERR_APPROVAL_STATE' });
    expect((await kek.dryRun(CTX, KEK)).toRewrap).toBe(N);

    // three pages, then "crash": a fresh service resumes from the checkpoint
    const partial = await kek.runRewrap(CTX, run.id, { pageSize: 300, maxPages: 3 });
    expect(partial).toMatchObject({ state: 'running', rewrapped: 900 });
    expect(partial.lastKey).not.toBeNull();
    const again = new KekService({ db: f.handle.db, custody: f.custody, audit: f.audit, approvals: f.approvals });
    expect((await again.unfinished()).map((r) => r.id)).toEqual([run.id]);
    const seen: number[] = [];
    const done = await again.runRewrap(CTX, run.id, { pageSize: 300, onProgress: (p) => seen.push(p.rewrapped) });
    expect(done).toMatchObject({ state: 'done', rewrapped: N, skipped: 0, failed: 0 });
    expect(seen[0]).toBe(1200);
    expect(await kek.census(KEK)).toEqual([{ kek: KEK, kekVersion: 2, blobs: N }]);
    const all = await f.handle.db.selectFrom('card_key_blobs').selectAll().execute();
    for (const r of all.slice(0, 200)) {
      expect(await f.custody.verifyWrapped(CTX, KEK, r.blob, { tenant: TENANT, aid: AID, uid: r.uid, keyNo: r.key_no, version: r.key_version })).toEqual({ kekVersion: 2 });
    }
    // a second run finds nothing to do
    const r2 = await kek.runRewrap(CTX, (await kek.startRewrap(CTX, KEK)).id);
    expect(r2).toMatchObject({ rewrapped: 0, skipped: N });
    expect(f.audit.entries.map((e) => e.operation)).toEqual(expect.arrayContaining(['kek.rotate', 'kek.rewrap.start', 'kek.rewrap.done', 'approval.consume']));
  }, 120_000);
});

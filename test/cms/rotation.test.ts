// Rotation campaigns on in-process virtual cards: 10,000 cards in batches with 5% torn
// mid-ChangeKey (before the card processes it, after it processed it, or on every attempt),
// then the true state of every card against the CMS; rollback; approvals over the threshold.
import { afterAll, describe, expect, it } from 'vitest';
import { CampaignRunner } from '../../src/cms/rotation/runner.js';
import { acceptedVersions, readerAcceptedVersions } from '../../src/cms/rotation/versions.js';
import { AID, TENANT, makeFixture, type Fixture } from './rotation-fixture.js';

const N = 10_000;
const key = { tenantId: TENANT, aid: AID, keyNo: 0 };

describe('rotation campaign over 10,000 virtual cards with 5% torn mid-ChangeKey', () => {
  let f: Fixture;
  afterAll(async () => f?.close());

  it('every card ends verified on the new version, or failed with its verified true version', async () => {
    f = await makeFixture(N, { policy: { campaignCardThreshold: 1_000_000 } });
    const uids = [...f.cards.keys()];
    // 5%: 250 torn after the card applied ChangeKey, 200 torn before, 50 torn on every attempt
    uids.forEach((u, i) => {
      const t = f.cards.get(u)!;
      if (i % 20 === 3) t.mode = i % 200 === 3 ? 'before-always' : i % 40 === 3 ? 'after-once' : 'before-once';
    });
    const modes = { after: 0, before: 0, always: 0 };
    for (const t of f.cards.values()) {
      if (t.mode === 'after-once') modes.after++;
      if (t.mode === 'before-once') modes.before++;
      if (t.mode === 'before-always') modes.always++;
    }
    expect(modes.after + modes.before + modes.always).toBe(N / 20);
    const c = await f.campaigns.create({ ...key, fromVersion: 1, target: { kind: 'all' }, batchSize: 1000, maxAttempts: 3 }, 'alice');
    expect(c.state).toBe('ready');
    expect(c.cardCount).toBe(N);
    expect(c.toVersion).toBe(2);
    await f.campaigns.start(c.id, 'alice');
    expect(await acceptedVersions(f.handle.db, key)).toEqual([2, 1]);
    const seen: number[] = [];
    const runner = new CampaignRunner(f.campaigns, f.executor, f.audit);
    const r = await runner.run(c.id, { onProgress: (p) => seen.push(p.batch) });
    expect(r).toBe('finished');
    expect(new Set(seen).size).toBe(10);

    const p = await f.campaigns.progress(c.id, { failures: 1000 });
    expect(p.totals).toEqual({ done: N - modes.always, pending: 0, failed: modes.always, reverted: 0, cancelled: 0 });
    expect(p.batches).toHaveLength(10);
    for (const b of p.batches) expect(b.pending).toBe(0);
    // failed cards: reported with their true, verified version (1)
    expect(p.failures).toHaveLength(modes.always);
    for (const fl of p.failures) {
      expect(fl.cardVersion).toBe(1);
      expect(f.cardVersion(fl.uid)).toBe(1);
      expect(f.cards.get(fl.uid)!.mode).toBe('before-always');
    }
    // the CMS mapping equals every card's true state; none unknown
    const items = await f.handle.db.selectFrom('rotation_items').select(['uid', 'state', 'card_version']).where('campaign_id', '=', c.id).execute();
    expect(items.filter((i) => i.card_version === null)).toHaveLength(0);
    const mapping = new Map((await f.handle.db.selectFrom('card_keys').select(['uid', 'key_version']).execute()).map((r) => [r.uid, Number(r.key_version)]));
    let changeKeys = 0;
    for (const it of items) {
      const truth = f.cardVersion(it.uid);
      expect(Number(it.card_version)).toBe(truth);
      expect(mapping.get(it.uid)).toBe(truth);
      expect(truth).toBe(it.state === 'done' ? 2 : 1);
      const t = f.cards.get(it.uid)!;
      // a card torn after it applied ChangeKey is reconciled, never changed twice
      if (t.mode !== 'before-always') expect(t.changeKeysProcessed).toBe(1);
      changeKeys += t.changeKeysProcessed;
    }
    expect(changeKeys).toBe(N - modes.always);

    await f.campaigns.complete(c.id, 'alice');
    expect(await acceptedVersions(f.handle.db, key)).toEqual([2]);
    expect(f.audit.entries.map((e) => e.operation)).toEqual(expect.arrayContaining(['rotation.create', 'rotation.start', 'rotation.batch', 'rotation.complete']));
    const failedAudit = f.audit.entries.filter((e) => e.operation === 'rotation.card');
    expect(failedAudit).toHaveLength(modes.always);
    for (const e of failedAudit) expect(e).toMatchObject({ result: 'error', keyVersion: 1 });
  }, 180_000);
});

describe('rollback and approvals', () => {
  let f: Fixture;
  let now = Date.now();
  afterAll(async () => f?.close());

  it('rolls back within the grace period: every card that moved is changed back', async () => {
    f = await makeFixture(60, { policy: { campaignCardThreshold: 40 }, now: () => now });
    const c = await f.campaigns.create({ ...key, fromVersion: 1, target: { kind: 'list', uids: [...f.cards.keys()].slice(0, 30) }, batchSize: 10, graceMs: 3_600_000 }, 'alice');
    expect(c.state).toBe('ready');
    expect(c.cardCount).toBe(30);
    await f.campaigns.start(c.id, 'alice');
    const runner = new CampaignRunner(f.campaigns, f.executor, f.audit);
    expect(await runner.run(c.id, { maxBatches: 2 })).toBe('max_batches');
    let p = await f.campaigns.progress(c.id);
    expect(p.totals.done).toBe(20);
    await f.campaigns.pause(c.id, 'alice');
    expect(await runner.run(c.id)).toBe('paused');
    await f.campaigns.rollback(c.id, 'alice');
    expect(await acceptedVersions(f.handle.db, key, now)).toEqual([1, 2]);
    // what a reader gets: only for a key its role covers, only while it is active
    await f.handle.db.insertInto('readers').values({ id: 'door-1', name: 'd', state: 'active', cert_serial: null, cert_pem: null, cert_not_after: null, created_at: 1, updated_at: 1 }).execute();
    await f.handle.db.insertInto('reader_roles').values({ reader_id: 'door-1', tenant_id: TENANT, aid: AID, key_no: 0, operations: '["authenticate"]', created_at: 1 }).execute();
    expect(await readerAcceptedVersions(f.handle.db, 'door-1', AID, 0, now)).toEqual({ tenantId: TENANT, versions: [1, 2] });
    expect(await readerAcceptedVersions(f.handle.db, 'door-1', AID, 1, now)).toBeUndefined();
    expect(await readerAcceptedVersions(f.handle.db, 'door-2', AID, 0, now)).toBeUndefined();
    await f.handle.db.updateTable('readers').set({ state: 'suspended' }).where('id', '=', 'door-1').execute();
    expect(await readerAcceptedVersions(f.handle.db, 'door-1', AID, 0, now)).toBeUndefined();
    expect(await runner.run(c.id)).toBe('finished');
    p = await f.campaigns.progress(c.id);
    expect(p.totals).toEqual({ done: 0, pending: 0, failed: 0, reverted: 20, cancelled: 10 });
    for (const uid of f.cards.keys()) expect(f.cardVersion(uid)).toBe(1);
    const done = await f.campaigns.complete(c.id, 'alice');
    expect(done.state).toBe('rolled_back');
    expect(await acceptedVersions(f.handle.db, key, now)).toEqual([1]);
  });

  it('refuses a rollback after the grace period', async () => {
    const c = await f.campaigns.create({ ...key, fromVersion: 1, target: { kind: 'list', uids: [...f.cards.keys()].slice(0, 5) }, graceMs: 1000 }, 'alice');
    await f.campaigns.start(c.id, 'alice');
    now += 2000;
    await expect(f.campaigns.rollback(c.id, 'alice')).rejects.toMatchObject({ code: 'ERR_ROTATION_GRACE_OVER' });
    await expect(f.campaigns.create({ ...key, fromVersion: 2, target: { kind: 'all' } }, 'alice')).rejects.toMatchObject({ code: 'ERR_ROTATION_CONFLICT' });
    await new CampaignRunner(f.campaigns, f.executor, f.audit).run(c.id);
    await f.campaigns.complete(c.id, 'alice');
  });

  it('a campaign over the threshold cannot start without M-of-N distinct approvers with the role', async () => {
    const before = await f.handle.db.selectFrom('key_versions').selectAll().execute();
    await expect(f.campaigns.create({ ...key, fromVersion: 1, target: { kind: 'bogus' } as never }, 'alice')).rejects.toMatchObject({ code: 'ERR_ROTATION_BAD_INPUT' });
    expect(await f.handle.db.selectFrom('key_versions').selectAll().execute()).toEqual(before);
    const c = await f.campaigns.create({ ...key, fromVersion: 1, target: { kind: 'all' } }, 'alice');
    expect(c.cardCount).toBe(55);
    expect(c.state).toBe('awaiting_approval');
    await expect(f.campaigns.start(c.id, 'alice')).rejects.toMatchObject({ code: 'ERR_APPROVAL_REQUIRED' });
    const a = await f.approvals.require(c.approvalId!);
    expect(a.payload).toMatchObject({ campaignId: c.id, cardCount: 55, fromVersion: 1, toVersion: c.toVersion });
    await expect(f.approvals.vote(a.id, { id: 'alice', roles: ['issuer_admin'] }, 'approve')).rejects.toMatchObject({ code: 'ERR_APPROVAL_SELF' });
    await expect(f.approvals.vote(a.id, { id: 'bob', roles: ['auditor'] }, 'approve')).rejects.toMatchObject({ code: 'ERR_APPROVAL_ROLE' });
    await f.approvals.vote(a.id, { id: 'bob', roles: ['issuer_admin'] }, 'approve');
    await expect(f.approvals.vote(a.id, { id: 'bob', roles: ['issuer_admin'] }, 'approve')).rejects.toMatchObject({ code: 'ERR_APPROVAL_DUPLICATE' });
    await expect(f.campaigns.start(c.id, 'alice')).rejects.toMatchObject({ code: 'ERR_APPROVAL_REQUIRED' });
    expect((await f.campaigns.require(c.id)).state).toBe('awaiting_approval');
    const ok = await f.approvals.vote(a.id, { id: 'carol', roles: ['issuer_admin'] }, 'approve');
    expect(ok.state).toBe('approved');
    const started = await f.campaigns.start(c.id, 'alice');
    expect(started.state).toBe('running');
    expect((await f.approvals.require(a.id)).state).toBe('consumed');
    expect(f.audit.entries.filter((e) => e.result === 'denied').map((e) => e.details?.code)).toEqual(
      expect.arrayContaining(['ERR_APPROVAL_SELF', 'ERR_APPROVAL_ROLE', 'ERR_APPROVAL_DUPLICATE', 'ERR_APPROVAL_REQUIRED']),
    );
    await f.campaigns.pause(c.id, 'alice');
  });

  it('approvals expire', async () => {
    const a = await f.approvals.request('key_export', { key: 'acme.A1B2C3.0', recipient: 'x'.repeat(43) }, 'alice', 'export');
    now += 3600 * 1000 + 1;
    await expect(f.approvals.vote(a.id, { id: 'bob', roles: ['issuer_admin'] }, 'approve')).rejects.toMatchObject({ code: 'ERR_APPROVAL_EXPIRED' });
    expect((await f.approvals.require(a.id)).state).toBe('expired');
  });
});

describe('targets, windows, rate', () => {
  it('query targets, time windows and the rate limit', async () => {
    const { inWindow } = await import('../../src/cms/rotation/campaigns.js');
    const at = (h: number) => Date.UTC(2026, 0, 1, h, 30);
    expect([inWindow({ startHour: 22, endHour: 6 }, at(23)), inWindow({ startHour: 22, endHour: 6 }, at(3)), inWindow({ startHour: 22, endHour: 6 }, at(12))]).toEqual([true, true, false]);
    expect([inWindow({ startHour: 1, endHour: 5 }, at(1)), inWindow({ startHour: 1, endHour: 5 }, at(5)), inWindow(null, at(5))]).toEqual([true, false, true]);
    const f = await makeFixture(20, { policy: { campaignCardThreshold: 1000 } });
    try {
      const prefix = [...f.cards.keys()][0]!.slice(0, 7);
      const uid0 = [...f.cards.keys()][0]!;
      await f.handle.db.updateTable('cards').set({ state: 'suspended' }).where('uid', '=', uid0).execute();
      const q = await f.campaigns.create({ ...key, fromVersion: 1, target: { kind: 'query', cardState: 'active', uidPrefix: prefix }, window: { startHour: 22, endHour: 6 }, rate: 1, maxAttempts: 2 }, 'alice');
      const expected = [...f.cards.keys()].filter((u) => u.startsWith(prefix) && u !== uid0).length;
      expect(expected).toBe(15);
      expect(q.cardCount).toBe(expected);
      await f.campaigns.start(q.id, 'alice');
      const runner = new CampaignRunner(f.campaigns, f.executor, f.audit);
      expect(await runner.run(q.id, { now: () => at(12) })).toBe('outside_window');
      const slept: number[] = [];
      expect(await runner.run(q.id, { now: () => at(23), sleep: async (ms) => void slept.push(ms) })).toBe('finished');
      expect((await f.campaigns.progress(q.id)).totals.done).toBe(expected);
      expect(f.cardVersion(uid0)).toBe(1);
      // rate 1 card/s: every card after the first waited for its slot (the injected sleep returns at once)
      expect(slept).toHaveLength(expected - 1);
      expect(Math.max(...slept)).toBeGreaterThan(1000 * (expected - 3));
    } finally {
      await f.close();
    }
  });
});

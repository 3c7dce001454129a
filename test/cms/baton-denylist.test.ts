// The denylist's change log (migration 0081: triggers on card_denylist) and BatonService.denylistFor
// on SQLite and a real PostgreSQL: whole list without a version, unchanged, the changes since a
// version (each card's last change), a version of another history or too far behind -> the whole
// list; writes by any writer (service, direct SQL, a renamed uid) are logged; concurrent writers
// leave a log whose deltas rebuild the list.
import { afterAll, describe, expect, it } from 'vitest';
import { BatonService, DENYLIST_DELTA_MAX } from '../../src/cms/baton/service.js';
import { type Backend, postgresAvailable, postgresBackend, sqliteBackend } from './storage-backends.js';

const pg = await postgresAvailable();
const backends: (() => Backend)[] = [sqliteBackend, ...(pg ? [postgresBackend] : [])];
const cleanups: Backend[] = [];
afterAll(async () => {
  for (const b of cleanups) await b.cleanup();
});
const uid = (i: number) => (0x04200000000000 + i).toString(16).toUpperCase().padStart(14, '0');

describe.each(backends.map((b) => [b().name, b] as const))('denylist delta on %s', (_name, make) => {
  it('whole list, unchanged, deltas, unknown or far-behind versions; every writer logged', async () => {
    const b = make();
    cleanups.push(b);
    const h = await b.open();
    const svc = new BatonService(h.db);
    const empty = await svc.denylistFor();
    expect(empty).toEqual({ version: '0-0', full: [] });
    expect((await svc.denylistFor('0-0')).full).toEqual([]);
    await svc.deny(uid(1), 'lost', 'op');
    await svc.deny(uid(2), 'lost', 'op');
    const v1 = await svc.denylistFor();
    expect(v1.full).toEqual([uid(1), uid(2)]);
    expect(await svc.denylistFor(v1.version)).toEqual({ version: v1.version, delta: { since: v1.version, add: [], remove: [] } });
    // re-deny (reason updated): no change; allow, deny again, a direct insert, a renamed uid
    await svc.deny(uid(1), 'stolen', 'op');
    expect((await svc.denylistFor(v1.version)).delta).toEqual({ since: v1.version, add: [], remove: [] });
    await svc.allow(uid(2));
    await svc.deny(uid(3), 'lost', 'op');
    await svc.allow(uid(3));
    await h.db.insertInto('card_denylist').values({ uid: uid(4), reason: 'clone', created_by: 'compromise', created_at: 1 }).execute();
    await h.db.updateTable('card_denylist').set({ uid: uid(5) }).where('uid', '=', uid(1)).execute();
    const d = await svc.denylistFor(v1.version);
    expect(d.delta!.since).toBe(v1.version);
    expect(d.delta!.add.sort()).toEqual([uid(4), uid(5)]);
    expect(d.delta!.remove.sort()).toEqual([uid(1), uid(2), uid(3)]);
    expect((await svc.denylistFor(d.version)).delta).toEqual({ since: d.version, add: [], remove: [] });
    expect((await svc.denylistFor()).full).toEqual([uid(4), uid(5)]);
    // a version of another history (same number, other nonce) or never issued: the whole list
    const [n] = d.version.split('-');
    expect((await svc.denylistFor(`${n}-000000000000`)).full).toEqual([uid(4), uid(5)]);
    expect((await svc.denylistFor('99999999-abc')).full).toEqual([uid(4), uid(5)]);
    expect((await svc.denylistFor('garbage')).full).toEqual([uid(4), uid(5)]);
    // further behind than DENYLIST_DELTA_MAX changes: the whole list
    const before = (await svc.denylistFor()).version;
    for (let i = 0; i <= DENYLIST_DELTA_MAX; i += 500) await h.db.insertInto('card_denylist').values(Array.from({ length: 500 }, (_, j) => ({ uid: uid(1000 + i + j), reason: 'x', created_by: 'x', created_at: 1 }))).execute();
    const far = await svc.denylistFor(before);
    expect(far.delta).toBeUndefined();
    expect(far.full!.length).toBe(2 + Math.ceil((DENYLIST_DELTA_MAX + 1) / 500) * 500);
    // the change log is pruned to the last DENYLIST_DELTA_MAX changes at the next write: the head's
    // version still answers "unchanged", a version inside the window still gets its delta, the
    // whole list is intact, and a pruned version gets the whole list (as a far-behind one did)
    const inWindow = (await svc.denylistFor()).version;
    await svc.deny(uid(7), 'lost', 'op');
    const count = async () => Number((await h.db.selectFrom('card_denylist_changes').select((e) => e.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    expect(await count()).toBe(DENYLIST_DELTA_MAX + 1);
    const head = await svc.denylistFor();
    expect(head.full!.length).toBe(far.full!.length + 1);
    expect(await svc.denylistFor(head.version)).toEqual({ version: head.version, delta: { since: head.version, add: [], remove: [] } });
    expect((await svc.denylistFor(inWindow)).delta).toEqual({ since: inWindow, add: [uid(7)], remove: [] });
    expect((await svc.denylistFor(before)).full!.length).toBe(head.full!.length);
    await svc.allow(uid(7));
    expect(await count()).toBe(DENYLIST_DELTA_MAX + 1);
  }, 60_000);

  it('concurrent writers: following the deltas from any version reached rebuilds the list', async () => {
    const b = make();
    cleanups.push(b);
    const h = await b.open();
    const svc = new BatonService(h.db);
    let held = new Set<string>();
    let version: string | undefined;
    const follow = async () => {
      const a = await svc.denylistFor(version);
      if (a.delta) {
        for (const u of a.delta.add) held.add(u);
        for (const u of a.delta.remove) held.delete(u);
      } else held = new Set(a.full);
      version = a.version;
    };
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 60; i++) {
      writes.push(i % 3 === 2 ? svc.allow(uid(i - 1)) : svc.deny(uid(i), 'x', 'y'));
      if (i % 7 === 0) writes.push(follow());
    }
    await Promise.all(writes);
    await follow();
    expect([...held].sort()).toEqual(await svc.denylist());
  }, 60_000);
});

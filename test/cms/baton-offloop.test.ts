// Baton uploads on SQLite are stored through a group commit whose COMMIT does not fsync on the
// event loop (src/cms/jobs/commit.ts GroupCommit: synchronous=NORMAL for that transaction, the
// WAL fsynced in the thread pool before the upload is answered). Before, the storing transaction
// committed with the connection's synchronous=FULL, i.e. an fsync inline on the event loop that
// every key delivery arriving meanwhile waited behind. Pinned here: the upload is acknowledged
// only after the WAL sync of its commit; the connection is FULL again outside it; the CMS wires
// the group commit into the baton route.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GENESIS, batonHash, type BatonWireEntry } from '../../src/cms/baton/chain.js';
import { BatonService, STORE_PART } from '../../src/cms/baton/service.js';
import { GroupCommit } from '../../src/cms/jobs/commit.js';
import { openDatabase } from '../../src/cms/storage/index.js';
import { startE2e } from '../e2e/harness.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) await c();
});

function chain(readerId: string, n: number): BatonWireEntry[] {
  const out: BatonWireEntry[] = [];
  let prev = GENESIS;
  for (let seq = 1; seq <= n; seq++) {
    const e = { seq, time: 1_700_000_000_000 + seq, readerId, cardUid: '04A1B2C3D4E5F6', aid: 'CAFE01', keyNo: 1, keyVersion: 1, op: 'purse-debit', result: `ok:1:${seq}`, prev };
    const hash = batonHash(e);
    out.push({ ...e, hash });
    prev = hash;
  }
  return out;
}

/** A reader_baton row of a wire entry (as the service stores it). */
function row(e: BatonWireEntry) {
  return { reader_id: e.readerId, seq: e.seq, time: e.time, card_uid: e.cardUid, aid: e.aid, key_no: e.keyNo, key_version: e.keyVersion, op: e.op, result: e.result, prev: e.prev, hash: e.hash, received_at: e.time };
}

/** A fresh SQLite file database (removed after the test). */
async function sqliteFile() {
  const dir = mkdtempSync(path.join(tmpdir(), 'dcms-baton-'));
  const h = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'cms.sqlite') });
  cleanups.push(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, h };
}

describe('baton uploads on SQLite: WAL fsync off the event loop', () => {
  it('an upload is acknowledged only after the WAL sync of its commit; synchronous is FULL outside it', async () => {
    const { dir, h } = await sqliteFile();
    const waiting: (() => void)[] = [];
    const synced: string[] = [];
    const gc = new GroupCommit(h.db, {
      native: h.sqlite!,
      walSync: (f) => {
        synced.push(f);
        return new Promise<void>((r) => waiting.push(r));
      },
    });
    const svc = new BatonService(h.db, Date.now, undefined, (fn) => gc.run(fn));
    let acked = false;
    const p = svc.sync('r1', chain('r1', 5)).then((r) => ((acked = true), r));
    for (let i = 0; i < 200 && waiting.length === 0; i++) await new Promise((r) => setImmediate(r));
    expect(synced).toEqual([`${path.join(dir, 'cms.sqlite')}-wal`]);
    expect(h.sqlite!.prepare('select count(*) as n from reader_baton').get()).toEqual({ n: 5 }); // committed ...
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(acked).toBe(false); // ... not acknowledged before the WAL is on disk
    expect(Number(h.sqlite!.pragma('synchronous', { simple: true }))).toBe(2);
    waiting.shift()!();
    expect((await p).acked).toBe(5);
  });

  it('an upload of several parts syncs the WAL once (its last part): the parts before it commit deferred; a head read meanwhile waits for a sync', async () => {
    const { h } = await sqliteFile();
    const waiting: (() => void)[] = [];
    const gc = new GroupCommit(h.db, { native: h.sqlite!, walSync: () => new Promise<void>((r) => waiting.push(r)) });
    const parts: boolean[] = [];
    const svc = new BatonService(
      h.db,
      Date.now,
      undefined,
      (fn, o) => (parts.push(o?.deferSync === true), gc.run(fn, o)),
      undefined,
      { durable: () => gc.durable() },
    );
    const N = 2 * STORE_PART + 5;
    let acked = false;
    const p = svc.sync('r2', chain('r2', N)).then((r) => ((acked = true), r));
    for (let i = 0; i < 500 && waiting.length === 0; i++) await new Promise((r) => setImmediate(r));
    // three parts, the first two deferred; the one sync asked for is the last part's
    expect(parts).toEqual([true, true, false]);
    expect(waiting).toHaveLength(1);
    expect(h.sqlite!.prepare('select count(*) as n from reader_baton').get()).toEqual({ n: N });
    expect(acked).toBe(false);
    waiting.shift()!();
    expect((await p).acked).toBe(N);
    // a head read is answered without a sync when nothing deferred is waiting ...
    expect((await svc.head('r2')).seq).toBe(N);
    // ... and after a deferred commit (an upload's part, its last part not yet committed) only after one
    await gc.run(async (tx) => tx.insertInto('reader_baton').values({ ...row(chain('r3', 1)[0]!), reader_id: 'r3' }).execute(), { deferSync: true });
    let headDone = false;
    const hp = svc.head('r3').then((x) => ((headDone = true), x));
    for (let i = 0; i < 100 && waiting.length === 0; i++) await new Promise((r) => setImmediate(r));
    expect(waiting).toHaveLength(1);
    expect(headDone).toBe(false);
    waiting.shift()!();
    expect((await hp).seq).toBe(1);
  });

  it('the CMS stores a reader upload through the group commit', async () => {
    const e2e = await startE2e();
    cleanups.push(() => e2e.close());
    const reader = await e2e.reader('door-baton', []);
    const run = vi.spyOn(GroupCommit.prototype, 'run');
    const r = await reader.call('POST', '/v1/readers/self/baton', { entries: chain('door-baton', 3) });
    expect(r.status).toBe(200);
    expect(r.body.acked).toBe(3);
    expect(run).toHaveBeenCalledTimes(1);
    const stored = await e2e.cms.deps.domain!.db.selectFrom('reader_baton').select('seq').where('reader_id', '=', 'door-baton').execute();
    expect(stored.map((s) => Number(s.seq))).toEqual([1, 2, 3]);
  });
});

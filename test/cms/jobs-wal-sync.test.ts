// The shared WAL syncer (src/cms/storage/wal-sync.ts) the station jobs' group commit uses: one per
// `-wal` file whoever asks, callers answered by the first sync that started after they asked
// (concurrent callers share syncs), the file held open (one handle) and closed once the database
// is closed.
import { mkdtempSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/cms/jobs/commit.js';
import { openDatabase, walSyncerOf } from '../../src/cms/storage/index.js';

/** This process's open handles on `file` (Linux /proc). */
function handlesOn(file: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

describe('shared WAL syncer', () => {
  it('one per file; concurrent callers share syncs; the job commit uses it; one held handle, closed after the database', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'walsync-')), 'db.sqlite');
    const h = await openDatabase({ kind: 'sqlite', file, synchronous: 'FULL' } as never);
    try {
      const n = h.sqlite!;
      n.exec('create table t (k text primary key, v text)');
      const s = walSyncerOf(n);
      expect(walSyncerOf(n)).toBe(s);
      expect(s.file).toBe(`${file}-wal`);
      const before = handlesOn(s.file);
      // one in flight: the callers that asked meanwhile share the next one
      const calls = Array.from({ length: 10 }, () => s.sync());
      expect(new Set(calls).size).toBeLessThanOrEqual(2);
      await Promise.all(calls);
      // the job group commit's writes are durable through it (and do not open a handle of their own)
      const commits = new GroupCommit(h.db, { native: n });
      await Promise.all(Array.from({ length: 20 }, (_, i) => commits.run(async (tx) => sql`insert into t (k, v) values (${`k${i}`}, 'v')`.execute(tx))));
      expect(Number((n.prepare('select count(*) as c from t').get() as { c: number }).c)).toBe(20);
      expect(handlesOn(s.file)).toBe(before + 1);
    } finally {
      await h.close();
    }
    // closed once the database is (checked on a timer; no tight bound)
    for (let i = 0; i < 100 && handlesOn(`${file}-wal`) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(handlesOn(`${file}-wal`)).toBe(0);
  }, 30_000);

  it('refuses a database that is not a file', async () => {
    const h = await openDatabase({ kind: 'sqlite', file: ':memory:' } as never);
    try {
      expect(() => walSyncerOf(h.sqlite!)).toThrow(/file database/);
    } finally {
      await h.close();
    }
  });
});

// The audit store's WAL sync on SQLite goes through the database's shared syncer
// (src/cms/storage/wal-sync.ts), the one the station jobs' group commit uses: an audit batch and a
// job commit of the same moment share syncs instead of each syncing the same `-wal` file. Pinned:
// every audit batch asks that syncer (the same object the jobs get) after its COMMIT and resolves
// only after it; with a job's sync in flight the batch still commits and resolves; a failed shared
// sync fails the append closed and the next batch goes on at the next index.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { SqlAuditStore } from '../../src/cms/audit/store.js';
import { openDatabase, walSyncerOf } from '../../src/cms/storage/index.js';
import { openLog, sampleEntry } from './audit-fixture.js';

async function fixture() {
  const file = join(mkdtempSync(join(tmpdir(), 'audit-walshared-')), 'db.sqlite');
  const h = await openDatabase({ kind: 'sqlite', file });
  const fx = await openLog(h, { store: new SqlAuditStore(h, { checkpointIntervalMs: 0, inlineSyncEntries: 0 }) });
  return { h, n: h.sqlite!, ...fx };
}

describe('audit WAL sync shared with the file’s other writers (SQLite)', () => {
  it('each batch asks the shared syncer after its COMMIT and resolves after that sync', async () => {
    const { h, n, log } = await fixture();
    try {
      const s = walSyncerOf(n);
      const order: string[] = [];
      const real = s.sync.bind(s);
      const spy = vi.spyOn(s, 'sync').mockImplementation(() => {
        // the batch's rows are committed (visible on the connection, no transaction open) when it asks
        order.push(`sync:${(n.prepare('select count(*) as c from audit_leaves').get() as { c: number }).c}:${n.inTransaction}`);
        return real().then(() => void order.push('synced'));
      });
      const e = log.record(sampleEntry(0)).then(() => order.push('resolved'));
      await e;
      expect(order).toEqual(['sync:1:false', 'synced', 'resolved']);
      expect(spy).toHaveBeenCalledTimes(1);
      spy.mockRestore();
    } finally {
      await log.close();
      await h.close();
    }
  });

  it('with a job sync in flight the batch commits and resolves; a failed shared sync fails the append closed', async () => {
    const { h, n, log } = await fixture();
    try {
      const s = walSyncerOf(n);
      // a job's sync in flight (started before the audit batch commits)
      const jobSync = s.sync();
      const rec = log.record(sampleEntry(1));
      await jobSync;
      const e = await rec;
      expect(e.index).toBe(0);
      // the shared sync fails: the batch is refused (the operation with it), health degraded
      const spy = vi.spyOn(s, 'sync').mockRejectedValue(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
      await expect(log.record(sampleEntry(2))).rejects.toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
      expect(log.health().status).toBe('degraded');
      spy.mockRestore();
      expect((await log.record(sampleEntry(3))).index).toBe(2); // the failed batch's rows were committed before the sync
    } finally {
      await log.close();
      await h.close();
    }
  });
});

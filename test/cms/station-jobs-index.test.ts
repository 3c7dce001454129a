// Migration 0082: station_jobs has an index on (created_at, id), the order GET /v1/jobs pages in
// (StationJobs.list, keyset after a cursor). On SQLite the paging query reads its page from that
// index — no scan of the table, no temp B-tree to sort it (EXPLAIN QUERY PLAN); on PostgreSQL the
// index is there with the same columns.
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/cms/storage/index.js';
import { type Backend, postgresAvailable, postgresBackend, sqliteBackend } from './storage-backends.js';

const pgOk = await postgresAvailable();
const backends: [string, () => Backend][] = [['sqlite', sqliteBackend], ...(pgOk ? [['postgres', postgresBackend] as [string, () => Backend]] : [])];

/** The query of StationJobs.list after a cursor, as it builds it (src/cms/jobs/service.ts). */
const page = (h: DatabaseHandle, filter: { state?: string } = {}) => {
  let q = h.db.selectFrom('station_jobs').selectAll();
  if (filter.state) q = q.where('state', '=', filter.state as never);
  return q
    .where((eb) => eb(eb.refTuple('created_at', 'id'), '>', eb.tuple(1_700_000_000_050, 'job_000050')))
    .orderBy('created_at')
    .orderBy('id')
    .limit(100)
    .compile();
};

describe.each(backends)('station_jobs (created_at, id) index (%s)', (name, make) => {
  const b = make();
  afterAll(() => b.cleanup());

  it('exists on (created_at, id); on SQLite the paging query searches it and does not sort', async () => {
    const h = await b.open();
    if (name === 'sqlite') {
      const n = h.sqlite!;
      expect(n.prepare("select name from pragma_index_info('station_jobs_created') order by seqno").all()).toEqual([{ name: 'created_at' }, { name: 'id' }]);
      const ins = n.prepare("insert into station_jobs (id, kind, reader_id, uid, aid, state, jti, plan, created_at, expires_at, updated_at) values (?, 'install', 'r', '04A1B2C3D4E5F6', 'A1C001', ?, 'j', '{}', ?, 0, 0)");
      n.transaction(() => {
        for (let i = 0; i < 2000; i++) ins.run(`job_${String(i).padStart(6, '0')}`, i % 2 ? 'unknown' : 'completed', 1_700_000_000_000 + i);
      })();
      n.exec('analyze');
      for (const filter of [{}, { state: 'unknown' }]) {
        const c = page(h, filter);
        const plan = (n.prepare(`explain query plan ${c.sql}`).all(...(c.parameters as unknown[])) as { detail: string }[]).map((r) => r.detail);
        expect(plan.join('\n')).toMatch(/^SEARCH station_jobs USING INDEX station_jobs_created \(\(created_at,id\)>\(\?,\?\)\)$/);
      }
      // the page itself: rows after the cursor, in order
      const c = page(h);
      const got = n.prepare(c.sql).all(...(c.parameters as unknown[])) as { id: string }[];
      expect(got.map((r) => r.id)).toEqual(Array.from({ length: 100 }, (_, i) => `job_${String(51 + i).padStart(6, '0')}`));
    } else {
      const r = await sql<{ indexdef: string }>`select indexdef from pg_indexes where schemaname = current_schema() and tablename = 'station_jobs' and indexname = 'station_jobs_created'`.execute(h.db);
      expect(r.rows).toHaveLength(1);
      expect(r.rows[0]!.indexdef).toMatch(/\(created_at, id\)$/);
    }
  });
});

// GET /v1/jobs pages through station_jobs in (created_at, id) order, after a cursor
// (StationJobs.list: `where (created_at, id) > (?, ?) order by created_at, id limit ?`). Without an
// index on those columns every page scanned the whole table and sorted it; with this one a page
// reads its rows in index order from the cursor on (SQLite's EXPLAIN QUERY PLAN: SEARCH station_jobs
// USING INDEX station_jobs_created (created_at>?), no temp B-tree for the ORDER BY). Numbered
// after the last landed migration (Kysely refuses a new name sorting before an executed one), not
// in the jobs' 0030-0039 range.
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('station_jobs_created').ifNotExists().on('station_jobs').columns(['created_at', 'id']).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('station_jobs_created').ifExists().execute();
}

// Station jobs and wrapped per-card keys (engineer H, numbers 0030-0039). Types in ../tables.ts.
import type { Kysely } from 'kysely';
import { dialectOf, types } from '../../storage/dialect.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const t = types(dialectOf(db));
  await db.schema
    .createTable('station_jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('reader_id', 'text', (c) => c.notNull())
    .addColumn('uid', 'text', (c) => c.notNull())
    .addColumn('aid', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('jti', 'text', (c) => c.notNull())
    .addColumn('plan', 'text', (c) => c.notNull())
    .addColumn('outcome', 'text')
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addColumn('expires_at', t.bigint, (c) => c.notNull())
    .addColumn('updated_at', t.bigint, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('station_jobs_card').on('station_jobs').columns(['uid', 'aid']).execute();
  await db.schema.createIndex('station_jobs_state').on('station_jobs').columns(['state', 'expires_at']).execute();
  await db.schema
    .createTable('card_key_blobs')
    .addColumn('uid', 'text', (c) => c.notNull())
    .addColumn('aid', 'text', (c) => c.notNull())
    .addColumn('key_no', 'integer', (c) => c.notNull())
    .addColumn('key_version', 'integer', (c) => c.notNull())
    .addColumn('kek', 'text', (c) => c.notNull())
    .addColumn('blob', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('job_id', 'text', (c) => c.notNull())
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('card_key_blobs_pk', ['uid', 'aid', 'key_no', 'key_version'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('card_key_blobs').execute();
  await db.schema.dropTable('station_jobs').execute();
}

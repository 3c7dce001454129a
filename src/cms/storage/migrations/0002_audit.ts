import type { Kysely } from 'kysely';
import { dialectOf, types } from '../dialect.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const t = types(dialectOf(db));
  await db.schema
    .createTable('audit_entries')
    .addColumn('idx', t.bigint, (c) => c.primaryKey())
    .addColumn('time', t.bigint, (c) => c.notNull())
    .addColumn('actor', 'text')
    .addColumn('reader_id', 'text')
    .addColumn('card_uid', 'text')
    .addColumn('tenant', 'text')
    .addColumn('aid', 'text')
    .addColumn('key_no', 'integer')
    .addColumn('key_version', 'integer')
    .addColumn('operation', 'text', (c) => c.notNull())
    .addColumn('result', 'text', (c) => c.notNull())
    .addColumn('correlation_id', 'text')
    .addColumn('details', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_entries_tenant').on('audit_entries').columns(['tenant', 'idx']).execute();
  await db.schema.createIndex('audit_entries_aid').on('audit_entries').columns(['aid', 'idx']).execute();
  await db.schema.createIndex('audit_entries_card').on('audit_entries').columns(['card_uid', 'idx']).execute();
  await db.schema.createIndex('audit_entries_reader').on('audit_entries').columns(['reader_id', 'idx']).execute();
  await db.schema.createIndex('audit_entries_time').on('audit_entries').column('time').execute();
  await db.schema
    .createTable('audit_leaves')
    .addColumn('idx', t.bigint, (c) => c.primaryKey())
    .addColumn('leaf_hash', t.blob, (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('audit_checkpoints')
    .addColumn('tree_size', t.bigint, (c) => c.primaryKey())
    .addColumn('root_hash', t.blob, (c) => c.notNull())
    .addColumn('note', 'text', (c) => c.notNull())
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audit_checkpoints').execute();
  await db.schema.dropTable('audit_leaves').execute();
  await db.schema.dropTable('audit_entries').execute();
}

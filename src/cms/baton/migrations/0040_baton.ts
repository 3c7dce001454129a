// Reader audit baton and the card denylist (the reader agent's area: migrations 0040-0049).
import type { Kysely } from 'kysely';
import { dialectOf, types } from '../../storage/dialect.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const t = types(dialectOf(db));
  await db.schema
    .createTable('reader_baton')
    .addColumn('reader_id', 'text', (c) => c.notNull())
    .addColumn('seq', t.bigint, (c) => c.notNull())
    .addColumn('time', t.bigint, (c) => c.notNull())
    .addColumn('card_uid', 'text', (c) => c.notNull())
    .addColumn('aid', 'text', (c) => c.notNull())
    .addColumn('key_no', 'integer', (c) => c.notNull())
    .addColumn('key_version', 'integer', (c) => c.notNull())
    .addColumn('op', 'text', (c) => c.notNull())
    .addColumn('result', 'text', (c) => c.notNull())
    .addColumn('prev', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('received_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('reader_baton_pk', ['reader_id', 'seq'])
    .execute();
  await db.schema
    .createTable('card_denylist')
    .addColumn('uid', 'text', (c) => c.primaryKey())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('card_denylist').execute();
  await db.schema.dropTable('reader_baton').execute();
}

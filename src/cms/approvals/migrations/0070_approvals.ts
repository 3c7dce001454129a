// Operations under approval (engineer A, numbers 0070-0079). Types in ../tables.ts.
import type { Kysely } from 'kysely';
import { dialectOf, types } from '../../storage/dialect.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const t = types(dialectOf(db));
  await db.schema
    .createTable('tenant_deletions')
    .addColumn('tenant_id', 'text', (c) => c.primaryKey())
    .addColumn('approval_id', 'text', (c) => c.notNull())
    .addColumn('deleted_by', 'text', (c) => c.notNull())
    .addColumn('cards_pending', 'integer', (c) => c.notNull())
    .addColumn('deleted_at', t.bigint, (c) => c.notNull())
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('tenant_deletions').ifExists().execute();
}

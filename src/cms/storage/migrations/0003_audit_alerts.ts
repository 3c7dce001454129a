import type { Kysely } from 'kysely';
import { dialectOf, types } from '../dialect.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const t = types(dialectOf(db));
  await db.schema
    .createTable('audit_alerts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('time', t.bigint, (c) => c.notNull())
    .addColumn('rule', 'text', (c) => c.notNull())
    .addColumn('severity', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('details', 'text', (c) => c.notNull())
    .addColumn('entry_idx', t.bigint)
    .addColumn('delivery', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('delivery_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('audit_alerts_time').on('audit_alerts').column('time').execute();
  await db.schema.createIndex('audit_alerts_delivery').on('audit_alerts').column('delivery').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audit_alerts').execute();
}

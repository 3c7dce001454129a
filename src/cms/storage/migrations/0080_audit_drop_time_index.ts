import type { Kysely } from 'kysely';

// The audit log's secondary index on `time` is dropped: no query reads entries by time (tenant
// views, the API's filters and the compromise key set go by tenant / AID / card / reader; the
// retention prune selects `idx < before AND time < cutoff`, which the primary key's range on idx
// serves), yet every appended entry paid for it — one more B-tree insert per entry and one more
// page (a WAL frame on SQLite) per commit. The other four indexes serve the views and filters.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('audit_entries_time').ifExists().execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('audit_entries_time').ifNotExists().on('audit_entries').column('time').execute();
}

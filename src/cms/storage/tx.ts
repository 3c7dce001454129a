// Transaction helpers that behave the same on SQLite and PostgreSQL.
import { type Kysely, type Transaction, sql } from 'kysely';
import type { Database, DialectKind } from './database.js';

export type Tx = Transaction<Database>;

/** Run `fn` in one transaction: everything it writes commits together or not at all. */
export function withTransaction<T>(db: Kysely<Database>, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.transaction().execute(fn);
}

/**
 * Inside a transaction, wait until no other transaction (in this or any other process) holds
 * the writer lock `name`, and hold it until commit/rollback. Use it where writers must be
 * serialised, e.g. to assign consecutive sequence numbers.
 * PostgreSQL: a transaction-scoped advisory lock. SQLite: a no-op write that takes the
 * database's RESERVED lock right away (SQLite allows one writer at a time; taking it first
 * avoids the read-then-upgrade deadlock between processes), waiting up to busy_timeout.
 */
export async function lockWriters(tx: Tx, dialect: DialectKind, name: string): Promise<void> {
  if (dialect === 'postgres') {
    await sql`select pg_advisory_xact_lock(hashtext(${name}))`.execute(tx);
  } else {
    await sql`update meta_settings set value = value where name = ${'lock:' + name}`.execute(tx);
  }
}

/** Run `fn` in a transaction that holds writer lock `name` from its first statement. */
export function withWriterLock<T>(db: Kysely<Database>, dialect: DialectKind, name: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return withTransaction(db, async (tx) => {
    await lockWriters(tx, dialect, name);
    return fn(tx);
  });
}

/** Read a setting from meta_settings (undefined when absent). */
export async function getSetting(db: Kysely<Database>, name: string): Promise<string | undefined> {
  const row = await db.selectFrom('meta_settings').select('value').where('name', '=', name).executeTakeFirst();
  return row?.value;
}

/** Insert or replace a setting. */
export async function setSetting(db: Kysely<Database>, name: string, value: string): Promise<void> {
  await db
    .insertInto('meta_settings')
    .values({ name, value })
    .onConflict((oc) => oc.column('name').doUpdateSet({ value }))
    .execute();
}

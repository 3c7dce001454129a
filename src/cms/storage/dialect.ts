// Small helpers for the few places where SQLite and PostgreSQL differ (used by migrations).
import { type Kysely, PostgresAdapter } from 'kysely';
import type { DialectKind } from './database.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function dialectOf(db: Kysely<any>): DialectKind {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/** Column types per dialect: 64-bit integer, binary, auto-increment primary key. */
export function types(d: DialectKind) {
  return d === 'postgres'
    ? ({ bigint: 'bigint', blob: 'bytea', serial: 'bigserial' } as const)
    : ({ bigint: 'integer', blob: 'blob', serial: 'integer' } as const);
}

// openDatabase: one Kysely<Database> over SQLite (better-sqlite3, the embedded default) or
// PostgreSQL (pg). Both drivers are native/optional and loaded lazily here, so a process that
// never opens a database never loads them.
//
// SQLite durability: journal_mode=WAL with synchronous=FULL, so every COMMIT fsyncs the WAL
// before it returns: a transaction that committed survives power loss. Writers amortise that
// fsync by batching (see the audit writer's group commit) rather than by weakening it.
// PostgreSQL: the server's own durability (synchronous_commit=on by default).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { CompiledQuery, type DatabaseConnection, type Driver, Kysely, PostgresDialect, RawNode, SelectQueryNode, SqliteDialect, sql } from 'kysely';
import type BetterSqlite3 from 'better-sqlite3';
import type * as PgModule from 'pg';
import type { Pool, PoolConfig } from 'pg';
import { walRestartGate } from './checkpointer.js';
import type { Database, DialectKind } from './database.js';
import { StorageError } from './errors.js';
import { migrateToLatest } from './migrate.js';

export type DatabaseConfig =
  | {
      kind: 'sqlite';
      /** Path of the database file (created with its directory); ':memory:' for throwaway use. */
      file: string;
      /** FULL (default): durable at every commit. NORMAL: durable at checkpoints only. */
      synchronous?: 'FULL' | 'NORMAL';
    }
  | {
      kind: 'postgres';
      /** postgres://user@host:port/db */
      url: string;
      /** Schema to use (created if missing); every connection gets it as its search_path. */
      schema?: string;
      /** Pool size (default 10). */
      poolSize?: number;
      /** application_name of the connections (default 'desfire-cms'). */
      applicationName?: string;
    };

export interface OpenOptions {
  /** Run pending migrations (default true). */
  migrate?: boolean;
}

export interface DatabaseHandle {
  db: Kysely<Database>;
  dialect: DialectKind;
  /** The PostgreSQL schema in use, if one was given. */
  schema?: string;
  /**
   * SQLite only: the native better-sqlite3 connection, for hot paths that batch many rows.
   * Use it only inside `db.connection().execute(...)` (which holds Kysely's connection lock),
   * so it never interleaves with a Kysely transaction on the same connection.
   */
  sqlite?: BetterSqlite3.Database;
  close(): Promise<void>;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export async function openDatabase(config: DatabaseConfig, options: OpenOptions = {}): Promise<DatabaseHandle> {
  const handle = config.kind === 'sqlite' ? await openSqlite(config) : config.kind === 'postgres' ? await openPostgres(config) : undefined;
  if (!handle) throw new StorageError('ERR_STORAGE_CONFIG', `unknown database kind '${(config as { kind?: unknown }).kind}'`);
  if (options.migrate ?? true) {
    try {
      await migrateToLatest(handle);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }
  return handle;
}

async function openSqlite(config: Extract<DatabaseConfig, { kind: 'sqlite' }>): Promise<DatabaseHandle> {
  if (typeof config.file !== 'string' || config.file === '') throw new StorageError('ERR_STORAGE_CONFIG', 'sqlite: file is required');
  const sync = config.synchronous ?? 'FULL';
  if (sync !== 'FULL' && sync !== 'NORMAL') throw new StorageError('ERR_STORAGE_CONFIG', 'sqlite: synchronous must be FULL or NORMAL');
  let Driver: typeof BetterSqlite3;
  try {
    Driver = (await import('better-sqlite3')).default;
  } catch (e) {
    throw new StorageError('ERR_STORAGE_UNAVAILABLE', 'sqlite: the better-sqlite3 driver is not installed', { cause: e });
  }
  let native: BetterSqlite3.Database;
  try {
    if (config.file !== ':memory:') mkdirSync(path.dirname(path.resolve(config.file)), { recursive: true });
    native = new Driver(config.file);
    native.pragma('busy_timeout = 5000');
    if (config.file !== ':memory:') native.pragma('journal_mode = WAL');
    native.pragma(`synchronous = ${sync}`);
    native.pragma('foreign_keys = ON');
  } catch (e) {
    throw new StorageError('ERR_STORAGE_UNAVAILABLE', `sqlite: cannot open ${config.file}: ${(e as Error).message}`, { cause: e });
  }
  const db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect(native) });
  let closed = false;
  return {
    db,
    dialect: 'sqlite',
    sqlite: native,
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}

/**
 * SQLite transactions begin IMMEDIATE: the write lock is taken at BEGIN, where SQLite's busy
 * handler waits for another connection's writer (busy_timeout). A plain (deferred) BEGIN starts
 * a READ transaction at its first SELECT, and when it later writes while another connection holds
 * the write lock, SQLite refuses the upgrade at once with SQLITE_BUSY — it never runs the busy
 * handler for a reader that wants to write (that could deadlock). The other connections are the
 * WAL checkpointer thread (./checkpointer.ts: its RESTART checkpoint holds the write lock for a few
 * ms), a CLI command or a second process on the same file: under sustained load a station job that
 * read before it wrote failed with "database is locked" (test/cms/audit-sqlite-writers.test.ts).
 * In this process the one connection already runs one transaction at a time (Kysely's connection
 * lock), so taking the write lock at BEGIN costs nothing here.
 *
 * The busy handler blocks the event loop while it waits. So every statement that would take the
 * write lock — a BEGIN (IMMEDIATE), or a write outside a transaction — first waits, asynchronously,
 * while this process's checkpointer thread of the file restarts the WAL (`walRestartGate`; a flag
 * in shared memory, so no cost otherwise). Statements inside an open transaction already hold the
 * lock; reads do not need it.
 */
class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly native: BetterSqlite3.Database) {
    super({ database: statementCache(native) });
  }

  override createDriver(): Driver {
    const driver = super.createDriver();
    const native = this.native;
    const gate = walRestartGate(native);
    driver.beginTransaction = async (connection: DatabaseConnection) => {
      await connection.executeQuery(CompiledQuery.raw('begin immediate'));
    };
    if (gate) {
      const acquire = driver.acquireConnection.bind(driver);
      const gated = new WeakSet<DatabaseConnection>();
      driver.acquireConnection = async () => {
        const c = await acquire();
        if (gated.has(c)) return c;
        gated.add(c);
        const execute = c.executeQuery.bind(c);
        c.executeQuery = <R>(q: CompiledQuery) => {
          const wait = native.inTransaction || isRead(q) ? undefined : gate();
          return wait ? wait.then(() => execute<R>(q)) : execute<R>(q);
        };
        return c;
      };
    }
    return driver;
  }
}

const PRAGMA = /^\s*pragma\b/i;

/** Prepared statements kept per SQL text (least recently used dropped beyond this many). */
export const STATEMENT_CACHE_SIZE = 512;

/**
 * The database as Kysely's SQLite driver sees it, with its statements kept: the driver prepares the
 * SQL text of every query it runs (`db.prepare(sql)`: SQLite parses and plans it again, ~30-50 us),
 * where a prepared better-sqlite3 statement can run any number of times. Kept per text, at most
 * STATEMENT_CACHE_SIZE (texts that vary — IN lists, multi-row VALUES — come and go; a kept one is
 * moved to the young end on use). A kept statement that is busy (an open iterator: Kysely's
 * `stream()`) is not handed out twice: that call gets a fresh one. SQLite re-prepares a kept
 * statement itself when the schema changes (a migration). PRAGMA texts are never kept: SQLite
 * applies a setting pragma when it COMPILES it, and a kept one run again may not apply it.
 */
export function statementCache(native: BetterSqlite3.Database, max = STATEMENT_CACHE_SIZE): { prepare(sql: string): BetterSqlite3.Statement; close(): void } {
  const kept = new Map<string, BetterSqlite3.Statement>();
  return {
    prepare(text: string): BetterSqlite3.Statement {
      if (PRAGMA.test(text)) return native.prepare(text);
      const hit = kept.get(text);
      if (hit) {
        if (hit.busy) return native.prepare(text);
        kept.delete(text);
        kept.set(text, hit);
        return hit;
      }
      const st = native.prepare(text);
      kept.set(text, st);
      if (kept.size > max) kept.delete(kept.keys().next().value!);
      return st;
    },
    close(): void {
      kept.clear();
      native.close();
    },
  };
}

/** A statement that takes no write lock: a SELECT (built, or raw text beginning with select). */
function isRead(q: CompiledQuery): boolean {
  return SelectQueryNode.is(q.query) || (RawNode.is(q.query) && /^\s*select\b/i.test(q.sql));
}

async function openPostgres(config: Extract<DatabaseConfig, { kind: 'postgres' }>): Promise<DatabaseHandle> {
  if (typeof config.url !== 'string' || !/^postgres(ql)?:\/\//.test(config.url)) {
    throw new StorageError('ERR_STORAGE_CONFIG', 'postgres: url must be a postgres:// URL');
  }
  if (config.schema !== undefined && !SCHEMA_NAME.test(config.schema)) {
    throw new StorageError('ERR_STORAGE_CONFIG', 'postgres: schema must match [a-z_][a-z0-9_]*');
  }
  let pg: typeof PgModule;
  try {
    const mod = await import('pg');
    pg = (mod.default ?? mod) as typeof PgModule;
  } catch (e) {
    throw new StorageError('ERR_STORAGE_UNAVAILABLE', 'postgres: the pg driver is not installed', { cause: e });
  }
  // int8 (bigint, oid 20) as a JS number: our bigints are indexes and millisecond times, far below 2^53.
  const types = {
    getTypeParser: ((oid: number, format?: string) =>
      oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
  };
  const poolConfig: PoolConfig = {
    connectionString: config.url,
    max: config.poolSize ?? 10,
    types,
    application_name: config.applicationName ?? 'desfire-cms',
  };
  if (config.schema) poolConfig.options = `-c search_path=${config.schema}`;
  const pool: Pool = new pg.Pool(poolConfig);
  pool.on('error', () => {
    /* an idle client died (server restart, killed connection): the pool replaces it */
  });
  // A checked-out client whose connection dies emits 'error' on itself; without a listener that
  // would crash the process. The failing query rejects anyway, and the pool discards the client.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    if (config.schema) await sql`create schema if not exists ${sql.id(config.schema)}`.execute(db);
    else await sql`select 1`.execute(db);
  } catch (e) {
    await db.destroy();
    throw new StorageError('ERR_STORAGE_UNAVAILABLE', `postgres: cannot connect: ${(e as Error).message}`, { cause: e });
  }
  let closed = false;
  return {
    db,
    dialect: 'postgres',
    ...(config.schema ? { schema: config.schema } : {}),
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}

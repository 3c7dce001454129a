// Precompiled queries for hot paths. A Kysely builder costs more than the SQLite lookup it
// describes (building the operation tree, freezing it, compiling it to SQL): on the key-delivery
// path that was about a third of the server's CPU. `prepare` builds and compiles a query ONCE with
// sentinel arguments, records where each argument lands in the parameter list, and afterwards only
// substitutes the values and hands the compiled query to `db.executeQuery` — the same SQL text,
// parameters bound by the driver (never interpolated), on every dialect. On SQLite, given the
// native better-sqlite3 connection, the statement is also prepared once (Kysely's driver prepares
// every query anew). A read never runs inside another caller's open transaction: when the
// connection has one open (`inTransaction`), the read waits for Kysely's connection lock
// (`db.connection().execute`); when it has none, the synchronous read runs at once — nothing can
// begin a transaction while it runs, and it skips the lock's promise round (most of the cost of a
// one-row lookup). On PostgreSQL the query is a NAMED prepared statement (node-postgres parses
// and plans it once per pooled connection, then only binds and executes): Kysely's PostgreSQL
// connection hands `sql` to `pg`'s `client.query(config, values)` unchanged, and a `{ name, text }`
// config is pg's own form for a named statement. Parameters are still bound by the server.
import type BetterSqlite3 from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { type CompiledQuery, type Compilable, type Kysely, RawNode, createQueryId } from 'kysely';
import { dialectOf } from '../storage/dialect.js';

type Scalar = string | number;

/** Statement names: unique per prepared query (pg refuses one name for two texts on a connection). */
const NAME_PREFIX = `dcms_${randomBytes(3).toString('hex')}_`;
let named = 0;

export interface Prepared<A extends Scalar[], R> {
  /** Run with these arguments; the rows. */
  all(...args: A): Promise<R[]>;
  /** Run with these arguments; the first row or undefined. */
  first(...args: A): Promise<R | undefined>;
}

/**
 * `build(...sentinels)` must return the query with each argument used as a plain value (the
 * sentinels are unique strings). Throws if an argument does not appear as a parameter, or the
 * parameter list holds a value that is not one of the arguments (a constant inlined by the
 * builder is fine only if it is a literal in the SQL text).
 */
export function prepare<DB, A extends Scalar[], R>(db: Kysely<DB>, arity: A['length'], build: (...args: string[]) => Compilable<R>, sqlite?: BetterSqlite3.Database): Prepared<A, R> {
  const sentinels = Array.from({ length: arity }, (_, i) => `\u0000dcms-arg-${i}\u0000`);
  const compiled = build(...sentinels).compile();
  // for every parameter position: the index of the argument it takes, or -1 (a constant)
  const slots = compiled.parameters.map((p) => sentinels.indexOf(p as string));
  for (let i = 0; i < arity; i++) if (!slots.includes(i)) throw new Error(`prepared query: argument ${i} is not a parameter`);
  const constants = compiled.parameters.slice();
  if (sqlite) {
    // Rows as arrays (`raw`), made into objects here: better-sqlite3 building the row object
    // through V8's API cost about a fifth of a one-row lookup (microbenchmark in the commit).
    const stmt = sqlite.prepare(compiled.sql);
    const columns = stmt.reader ? stmt.columns().map((c) => c.name) : [];
    if (new Set(columns).size !== columns.length || columns.includes('__proto__')) throw new Error('prepared query: result column names must be distinct plain names');
    if (stmt.reader) stmt.raw(true);
    const toRow = rowBuilder<R>(columns);
    // the parameters, refilled by each call (the statement binds them synchronously)
    const params: unknown[] = constants.slice();
    const bind = (args: A): unknown[] => {
      for (let i = 0; i < slots.length; i++) {
        const s = slots[i]!;
        if (s >= 0) params[i] = args[s];
      }
      return params;
    };
    const all = (args: A): R[] => {
      const rows = stmt.all(bind(args)) as unknown[][];
      const out = new Array<R>(rows.length);
      for (let i = 0; i < rows.length; i++) out[i] = toRow(rows[i]!);
      return out;
    };
    const first = (args: A): R | undefined => {
      const row = stmt.get(bind(args)) as unknown[] | undefined;
      return row === undefined ? undefined : toRow(row);
    };
    // at once, or after a caller's open transaction (Kysely's connection lock; see the header)
    const run = <T>(fn: (args: A) => T, args: A): Promise<T> => {
      if (sqlite.inTransaction) return db.connection().execute(async () => fn(args));
      try {
        return Promise.resolve(fn(args));
      } catch (e) {
        return Promise.reject(e as Error);
      }
    };
    return { all: (...args) => run(all, args), first: (...args) => run(first, args) };
  }
  const name = dialectOf(db as unknown as Parameters<typeof dialectOf>[0]) === 'postgres' ? `${NAME_PREFIX}${named++}` : undefined;
  const run = async (args: A): Promise<R[]> => {
    const parameters = slots.map((s, i) => (s >= 0 ? args[s] : constants[i]));
    // PostgreSQL: pg's named-statement config in place of the SQL text (a fresh object per call)
    const text = name ? ({ name, text: compiled.sql } as unknown as string) : compiled.sql;
    const q: CompiledQuery<R> = { sql: text, query: compiled.query, queryId: createQueryId(), parameters };
    return (await db.executeQuery(q)).rows;
  };
  return {
    all: (...args) => run(args),
    first: async (...args) => (await run(args))[0],
  };
}

/** A function making a raw row (values in column order) into the row object better-sqlite3 would have returned. */
function rowBuilder<R>(columns: readonly string[]): (row: unknown[]) => R {
  const n = columns.length;
  return (row) => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) o[columns[i]!] = row[i];
    return o as R;
  };
}

/**
 * A statement written as SQL text (for what the query builder cannot say, e.g. `unnest(...) with
 * ordinality`): run with these parameters, bound by the driver. On PostgreSQL a named prepared
 * statement like `prepare`'s. The text must use the dialect's placeholders ($1, ...).
 */
export function preparedText<DB, R>(db: Kysely<DB>, text: string): (parameters: readonly unknown[]) => Promise<R[]> {
  const name = dialectOf(db as unknown as Parameters<typeof dialectOf>[0]) === 'postgres' ? `${NAME_PREFIX}${named++}` : undefined;
  const query = RawNode.createWithSql(text);
  return async (parameters) => {
    const q: CompiledQuery<R> = { sql: name ? ({ name, text } as unknown as string) : text, query, queryId: createQueryId(), parameters };
    return (await db.executeQuery(q)).rows;
  };
}

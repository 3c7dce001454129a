// The statements of the job-write transactions (src/cms/jobs/commit.ts runs them), compiled once.
//
// A Kysely builder costs more than the SQLite statement it describes (building the operation tree,
// freezing it, compiling it to SQL; Kysely's SQLite driver then prepares the text anew on every
// call). Here each statement is built and compiled ONCE with sentinel arguments (as the read
// helper src/cms/delivery/prepared.ts does), and on SQLite, given the native connection the group
// commit's transaction runs on, also prepared once: a call substitutes the values and runs the
// native statement synchronously inside that open transaction (the caller holds it). Without the
// native connection (PostgreSQL, or no handle) the same compiled SQL goes through the
// transaction's `executeQuery`, parameters bound by the driver either way (never interpolated).
import type BetterSqlite3 from 'better-sqlite3';
import { type Compilable, type CompiledQuery, type Kysely, createQueryId } from 'kysely';
import type { Database } from '../storage/index.js';

type Value = string | number | null;

export interface TxStatement<A extends Value[], R> {
  /** Run inside `tx` (a transaction of the group commit): the number of rows changed. */
  run(tx: Kysely<Database>, ...args: A): Promise<number>;
  /** Run inside `tx`: the first row or undefined. */
  first(tx: Kysely<Database>, ...args: A): Promise<R | undefined>;
}

export function txStatement<A extends Value[], R = unknown>(db: Kysely<Database>, arity: A['length'], build: (...args: string[]) => Compilable<R>, native?: BetterSqlite3.Database): TxStatement<A, R> {
  const sentinels = Array.from({ length: arity }, (_, i) => `\u0000dcms-txarg-${i}\u0000`);
  const compiled = build(...sentinels).compile();
  const slots = compiled.parameters.map((p) => sentinels.indexOf(p as string));
  for (let i = 0; i < arity; i++) if (!slots.includes(i)) throw new Error(`transaction statement: argument ${i} is not a parameter`);
  if (compiled.sql.includes('\u0000')) throw new Error('transaction statement: an argument was inlined into the SQL text');
  const constants = compiled.parameters.slice();
  const bind = (args: A): unknown[] => slots.map((s, i) => (s >= 0 ? args[s] : constants[i]));
  const stmt = native?.prepare(compiled.sql);
  const query = (args: A): CompiledQuery<R> => ({ sql: compiled.sql, query: compiled.query, queryId: createQueryId(), parameters: bind(args) });
  if (stmt) {
    const reader = stmt.reader;
    return {
      run: async (_tx, ...args) => (reader ? (stmt.all(...bind(args)).length) : stmt.run(...bind(args)).changes),
      first: async (_tx, ...args) => (reader ? (stmt.get(...bind(args)) as R | undefined) : (stmt.run(...bind(args)), undefined)),
    };
  }
  return {
    run: async (tx, ...args) => {
      const r = await tx.executeQuery(query(args));
      return r.numAffectedRows !== undefined ? Number(r.numAffectedRows) : r.rows.length;
    },
    first: async (tx, ...args) => (await tx.executeQuery(query(args))).rows[0],
  };
}

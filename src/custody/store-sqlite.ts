// VaultStore over SQLite (better-sqlite3, loaded lazily): one table in a given database file,
// WAL mode. The commit is a single IMMEDIATE transaction, so concurrent processes serialise.
import type BetterSqlite3 from 'better-sqlite3';
import { equalCT } from '../core/crypto/bytes.js';
import { BackendError, CustodyInputError } from './errors.js';
import type { VaultRow, VaultStore } from './store.js';

export interface SqliteVaultStoreOptions {
  /** Table name (default custody_vault). */
  table?: string;
}

export class SqliteVaultStore implements VaultStore {
  // prepared once (the table exists before the constructor runs): a row read is the vault's
  // hottest statement (the manifest, on every refresh)
  private readonly st: { get: BetterSqlite3.Statement; list: BetterSqlite3.Statement; put: BetterSqlite3.Statement; del: BetterSqlite3.Statement };

  private constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly table: string,
  ) {
    this.st = {
      get: db.prepare(`SELECT data FROM ${table} WHERE id = ?`),
      list: db.prepare(`SELECT id, data FROM ${table} WHERE substr(id, 1, ?) = ? ORDER BY id`),
      put: db.prepare(`INSERT INTO ${table} (id, data) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data`),
      del: db.prepare(`DELETE FROM ${table} WHERE id = ?`),
    };
  }

  static async open(file: string, opts: SqliteVaultStoreOptions = {}): Promise<SqliteVaultStore> {
    const table = opts.table ?? 'custody_vault';
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(table)) throw new CustodyInputError('table name must be an SQL identifier');
    let Database: typeof BetterSqlite3;
    try {
      Database = (await import('better-sqlite3')).default;
    } catch (e) {
      throw new BackendError(`better-sqlite3 is not available: ${(e as Error).message}`);
    }
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
    db.exec(`CREATE TABLE IF NOT EXISTS ${table} (id TEXT PRIMARY KEY, data BLOB NOT NULL)`);
    return new SqliteVaultStore(db, table);
  }

  async get(id: string): Promise<Uint8Array | undefined> {
    const row = this.st.get.get(id) as { data: Buffer } | undefined;
    return row ? new Uint8Array(row.data) : undefined;
  }

  async list(prefix: string): Promise<VaultRow[]> {
    const rows = this.st.list.all(prefix.length, prefix) as { id: string; data: Buffer }[];
    return rows.map((r) => ({ id: r.id, data: new Uint8Array(r.data) }));
  }

  async commit(guard: string, expected: Uint8Array | undefined, puts: VaultRow[], deletes: string[]): Promise<boolean> {
    const { get, put, del } = this.st;
    const tx = this.db.transaction(() => {
      const cur = get.get(guard) as { data: Buffer } | undefined;
      const ok = cur === undefined || expected === undefined ? cur === undefined && expected === undefined : equalCT(new Uint8Array(cur.data), expected);
      if (!ok) return false;
      for (const p of puts) put.run(p.id, Buffer.from(p.data));
      for (const d of deletes) del.run(d);
      return true;
    });
    return tx.immediate();
  }

  /** Raw access for tamper tests and diagnostics. */
  get database(): BetterSqlite3.Database {
    return this.db;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

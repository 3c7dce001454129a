// The audit tables' secondary indexes after migration 0080 (src/cms/storage/migrations): the
// time index is gone (no query reads entries by time; every append paid a B-tree insert and, on
// SQLite, a WAL frame per commit for it), the four that serve views and filters remain; a
// database migrated before 0080 upgrades in place (its entries still verify, retention still
// prunes), on SQLite and PostgreSQL.
import { Migrator, sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/cms/audit/db-verify.js';
import { pruneOlderThan } from '../../src/cms/audit/retention.js';
import { StaticMigrationProvider, type DatabaseHandle } from '../../src/cms/storage/index.js';
import { MIGRATIONS } from '../../src/cms/storage/migrations/index.js';
import { openLog, sampleEntry } from './audit-fixture.js';
import { type Backend, postgresAvailable, postgresBackend, sqliteBackend } from './storage-backends.js';

const pgOk = await postgresAvailable();
const KEPT = ['audit_entries_aid', 'audit_entries_card', 'audit_entries_reader', 'audit_entries_tenant'];

async function entryIndexes(h: DatabaseHandle): Promise<string[]> {
  const rows =
    h.dialect === 'sqlite'
      ? await sql<{ name: string }>`select name from sqlite_master where type = 'index' and tbl_name = 'audit_entries' and sql is not null`.execute(h.db)
      : await sql<{ name: string }>`select indexname as name from pg_indexes where tablename = 'audit_entries' and schemaname = current_schema() and indexname <> 'audit_entries_pkey'`.execute(h.db);
  return rows.rows.map((r) => r.name).sort();
}

for (const make of [sqliteBackend, postgresBackend]) {
  const kind = make === sqliteBackend ? 'sqlite' : 'postgres';
  describe.skipIf(kind === 'postgres' && !pgOk)(`audit indexes on ${kind}`, () => {
    const backends: Backend[] = [];
    afterAll(async () => {
      for (const b of backends) await b.cleanup();
    });

    it('a new database has the four view/filter indexes and no time index', async () => {
      const b = make();
      backends.push(b);
      expect(await entryIndexes(await b.open())).toEqual(KEPT);
    });

    it('a database migrated before 0080 upgrades in place: entries verify, retention still prunes', async () => {
      const b = make();
      backends.push(b);
      const old = await b.open({ migrate: false });
      const migrator = new Migrator({ db: old.db, provider: new StaticMigrationProvider(MIGRATIONS), ...(old.schema ? { migrationTableSchema: old.schema } : {}) });
      const to = await migrator.migrateTo('0070_approvals');
      expect(to.error).toBeUndefined();
      expect(await entryIndexes(old)).toEqual([...KEPT, 'audit_entries_time'].sort());
      const before = await openLog(old);
      for (let i = 0; i < 6; i++) await before.log.record(sampleEntry(i));
      await before.log.close();

      const h = await b.open(); // migrates to the latest
      expect(await entryIndexes(h)).toEqual(KEPT);
      const { log, store, key } = await openLog(h, {}, before.signer);
      for (let i = 6; i < 10; i++) expect((await log.record(sampleEntry(i))).index).toBe(i);
      await log.checkpoint();
      // sampleEntry times are 1,760,000,000,000 + i s: prune the first four bodies (the leaves stay)
      expect((await pruneOlderThan(log, store, 1_760_000_000_000 + 4 * 1000)).pruned).toBe(4);
      const report = await verifyDatabase(h, key);
      expect(report.ok).toBe(true);
      expect([report.entries, report.pruned]).toEqual([6, 4]);
      await log.close();
    });
  });
}

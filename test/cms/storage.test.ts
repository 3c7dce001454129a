// One storage suite, run against SQLite and a real PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import {
  StorageError,
  appliedMigrations,
  getSetting,
  migrateToLatest,
  openDatabase,
  setSetting,
  withTransaction,
  withWriterLock,
  type DatabaseHandle,
} from '../../src/cms/storage/index.js';
import { MIGRATIONS } from '../../src/cms/storage/migrations/index.js';
import { type Backend, postgresAvailable, postgresBackend, sqliteBackend } from './storage-backends.js';

const pgOk = await postgresAvailable();

for (const make of [sqliteBackend, postgresBackend]) {
  const kind = make === sqliteBackend ? 'sqlite' : 'postgres';
  describe.skipIf(kind === 'postgres' && !pgOk)(`storage on ${kind}`, () => {
    let backend: Backend;
    let h: DatabaseHandle;
    beforeAll(async () => {
      backend = make();
      h = await backend.open();
    }, 30_000);
    afterAll(async () => {
      await backend?.cleanup();
    }, 30_000);

    it('applies every migration once, in order, and reports them', async () => {
      expect(h.dialect).toBe(kind);
      expect(await appliedMigrations(h)).toEqual(Object.keys(MIGRATIONS).sort());
      expect(await migrateToLatest(h)).toEqual([]); // idempotent
      const second = await backend.open(); // a second process on the same database
      expect(await appliedMigrations(second)).toEqual(Object.keys(MIGRATIONS).sort());
    });

    it('round-trips bigints as numbers, blobs as bytes and nullable text', async () => {
      const big = 2 ** 52 + 7;
      await h.db
        .insertInto('audit_entries')
        .values({ idx: big, time: 1_760_000_000_123, actor: null, reader_id: 'r1', card_uid: null, tenant: 't', aid: 'F00001', key_no: 2, key_version: null, operation: 'op', result: 'ok', correlation_id: null, details: '{}' })
        .execute();
      await h.db.insertInto('audit_leaves').values({ idx: big, leaf_hash: new Uint8Array([0, 1, 255]) }).execute();
      const row = await h.db.selectFrom('audit_entries').selectAll().where('idx', '=', big).executeTakeFirstOrThrow();
      expect(row.idx).toBe(big);
      expect(typeof row.time).toBe('number');
      expect(row.time).toBe(1_760_000_000_123);
      expect(row.actor).toBeNull();
      expect(row.key_no).toBe(2);
      const leaf = await h.db.selectFrom('audit_leaves').selectAll().where('idx', '=', big).executeTakeFirstOrThrow();
      expect(Array.from(leaf.leaf_hash)).toEqual([0, 1, 255]);
      await h.db.deleteFrom('audit_entries').where('idx', '=', big).execute();
      await h.db.deleteFrom('audit_leaves').where('idx', '=', big).execute();
    });

    it('a transaction commits everything or nothing', async () => {
      await withTransaction(h.db, async (tx) => {
        await setSetting(tx, 'a', '1');
        await setSetting(tx, 'b', '2');
      });
      expect(await getSetting(h.db, 'a')).toBe('1');
      await expect(
        withTransaction(h.db, async (tx) => {
          await setSetting(tx, 'a', 'changed');
          await tx.insertInto('meta_settings').values({ name: 'b', value: 'dup' }).execute(); // PK violation
        }),
      ).rejects.toThrow();
      expect(await getSetting(h.db, 'a')).toBe('1');
      expect(await getSetting(h.db, 'b')).toBe('2');
      await setSetting(h.db, 'a', '3');
      expect(await getSetting(h.db, 'a')).toBe('3');
      expect(await getSetting(h.db, 'missing')).toBeUndefined();
    });

    it('writer locks serialise read-modify-write across connections', async () => {
      // PostgreSQL: two pools (as two processes would have). SQLite: better-sqlite3 is
      // synchronous, so one process must use ONE handle per file (two handles in one thread
      // would block each other inside busy_timeout); Kysely serialises its transactions.
      const other = kind === 'postgres' ? await backend.open() : h;
      await setSetting(h.db, 'counter', '0');
      const bump = (db: DatabaseHandle) =>
        withWriterLock(db.db, db.dialect, 'counter', async (tx) => {
          const v = Number(await getSetting(tx, 'counter'));
          await sql`select 1`.execute(tx);
          await setSetting(tx, 'counter', String(v + 1));
        });
      await Promise.all(Array.from({ length: 20 }, (_, i) => bump(i % 2 ? h : other)));
      expect(await getSetting(h.db, 'counter')).toBe('20');
    }, 30_000);
  });
}

describe('openDatabase input checks', () => {
  it('rejects bad configurations with stable codes', async () => {
    await expect(openDatabase({ kind: 'nope' } as never)).rejects.toMatchObject({ code: 'ERR_STORAGE_CONFIG' });
    await expect(openDatabase({ kind: 'sqlite', file: '' })).rejects.toBeInstanceOf(StorageError);
    await expect(openDatabase({ kind: 'postgres', url: 'mysql://x' })).rejects.toMatchObject({ code: 'ERR_STORAGE_CONFIG' });
    await expect(openDatabase({ kind: 'postgres', url: 'postgres://x@127.0.0.1/x', schema: 'bad;drop' })).rejects.toMatchObject({
      code: 'ERR_STORAGE_CONFIG',
    });
  });
  it('reports an unreachable PostgreSQL as ERR_STORAGE_UNAVAILABLE', async () => {
    await expect(openDatabase({ kind: 'postgres', url: 'postgres://postgres@127.0.0.1:1/test' })).rejects.toMatchObject({
      code: 'ERR_STORAGE_UNAVAILABLE',
    });
  });
  it('reports an unopenable SQLite file as ERR_STORAGE_UNAVAILABLE', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'desfire-storage-'));
    writeFileSync(path.join(dir, 'plain-file'), 'x');
    // its "directory" is a regular file
    await expect(openDatabase({ kind: 'sqlite', file: path.join(dir, 'plain-file', 'x.sqlite') })).rejects.toMatchObject({
      code: 'ERR_STORAGE_UNAVAILABLE',
    });
    rmSync(dir, { recursive: true, force: true });
  });
});

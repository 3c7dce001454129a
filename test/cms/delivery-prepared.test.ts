// Precompiled delivery queries on SQLite (src/cms/delivery/prepared.ts): with no transaction open
// on the connection the statement runs at once; while a Kysely transaction is open the read waits
// for it (it never sees another caller's uncommitted rows), then sees what was committed.
// Arguments are bound, never interpolated. On PostgreSQL they are named prepared statements.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepare } from '../../src/cms/delivery/prepared.js';
import { type Database, type DatabaseHandle, openDatabase, withTransaction } from '../../src/cms/storage/index.js';
import { testSchema } from '../helpers/pg-schema.js';
import { PG_URL } from '../helpers/system.js';
import { postgresAvailable } from './storage-backends.js';

let h: DatabaseHandle;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'dcms-prepared-'));
  h = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'cms.sqlite') });
});
afterAll(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

const setting = () => prepare<Database, [string], { value: string }>(h.db, 1, (name) => h.db.selectFrom('meta_settings').select('value').where('name', '=', name!), h.sqlite);

describe('prepared queries on the native SQLite connection', () => {
  it('bind their arguments (a quote is data) and read committed rows', async () => {
    const q = setting();
    await h.db.insertInto('meta_settings').values({ name: "it's", value: 'v1' }).execute();
    expect(await q.first("it's")).toEqual({ value: 'v1' });
    expect(await q.first("x' or '1'='1")).toBeUndefined();
    expect(await q.all("it's")).toEqual([{ value: 'v1' }]);
  });

  it("wait for an open transaction instead of reading its uncommitted rows", async () => {
    const q = setting();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let inserted!: () => void;
    const didInsert = new Promise<void>((r) => (inserted = r));
    const tx = withTransaction(h.db, async (t) => {
      await t.insertInto('meta_settings').values({ name: 'pending', value: 'uncommitted' }).execute();
      inserted();
      await gate;
    });
    await didInsert;
    expect(h.sqlite!.inTransaction).toBe(true);
    let read: { value: string } | undefined | 'not yet' = 'not yet';
    const p = q.first('pending').then((r) => (read = r));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(read).toBe('not yet'); // waiting for the transaction, not reading inside it
    release();
    await tx;
    await p;
    expect(read).toEqual({ value: 'uncommitted' }); // read after the commit
  });

  it('a rolled-back transaction leaves nothing for the waiting read', async () => {
    const q = setting();
    let inserted!: () => void;
    const didInsert = new Promise<void>((r) => (inserted = r));
    const tx = withTransaction(h.db, async (t) => {
      await t.insertInto('meta_settings').values({ name: 'rolled-back', value: 'x' }).execute();
      inserted();
      await new Promise((r) => setTimeout(r, 20));
      throw new Error('abort');
    }).catch(() => 'aborted');
    await didInsert;
    const read = q.first('rolled-back');
    expect(await tx).toBe('aborted');
    expect(await read).toBeUndefined();
  });
});

describe.skipIf(!(await postgresAvailable()))('prepared queries on PostgreSQL', () => {
  const schema = testSchema('prep');
  let pg: DatabaseHandle;
  beforeAll(async () => {
    pg = await openDatabase({ kind: 'postgres', url: PG_URL, schema, poolSize: 1 }); // one connection: its statements are visible
  });
  afterAll(async () => {
    await pg.close(); // the schema goes in the global teardown (test/helpers/pg-schema.ts)
  });

  it('run as named statements (parsed once per connection), arguments bound', async () => {
    const q = prepare<Database, [string], { value: string }>(pg.db, 1, (name) => pg.db.selectFrom('meta_settings').select('value').where('name', '=', name!));
    await pg.db.insertInto('meta_settings').values({ name: "pg'it", value: 'v2' }).execute();
    expect(await q.first("pg'it")).toEqual({ value: 'v2' });
    expect(await q.first("x' or '1'='1")).toBeUndefined();
    expect(await q.all("pg'it")).toEqual([{ value: 'v2' }]);
    const stmts = (await sql<{ name: string; statement: string }>`select name, statement from pg_prepared_statements`.execute(pg.db)).rows;
    const mine = stmts.filter((s) => s.name.startsWith('dcms_') && s.statement.includes('meta_settings'));
    expect(mine).toHaveLength(1);
    // a second prepared query gets its own name on the same connection
    const other = prepare<Database, [string], { name: string }>(pg.db, 1, (v) => pg.db.selectFrom('meta_settings').select('name').where('value', '=', v!));
    expect(await other.first('v2')).toEqual({ name: "pg'it" });
    expect(await q.first("pg'it")).toEqual({ value: 'v2' });
  });
});

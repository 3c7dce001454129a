// The SQLite dialect keeps its prepared statements (src/cms/storage/open.ts statementCache): Kysely's
// driver prepares the text of every query it runs, and SQLite parsed and planned it again each time.
// Pinned here: one statement per text, least recently used dropped beyond the bound; a kept statement
// busy with an open iterator is not handed out again; PRAGMA texts are never kept (SQLite applies a
// setting pragma when it compiles it); through Kysely, a query after a stream of the same text that
// stopped early, and a kept SELECT sees a column added after it was kept.
import type BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { statementCache } from '../../src/cms/storage/open.js';
import { tempSqliteFile } from './sqlite-file.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const Database = (await import('better-sqlite3')).default;

function memory(): BetterSqlite3.Database {
  const n = new Database(':memory:');
  n.exec('create table t (x integer)');
  n.exec('insert into t values (1), (2), (3)');
  cleanups.push(() => void n.close());
  return n;
}

describe('the SQLite dialect\'s statement cache', () => {
  it('one statement per text; the least recently used is dropped beyond the bound', () => {
    const c = statementCache(memory(), 2);
    const a = c.prepare('select x from t where x = ?');
    expect(c.prepare('select x from t where x = ?')).toBe(a);
    const b = c.prepare('select count(*) as n from t');
    expect(b).not.toBe(a);
    expect(c.prepare('select x from t where x = ?')).toBe(a); // a is now the most recently used
    c.prepare('select max(x) as m from t'); // drops b
    expect(c.prepare('select x from t where x = ?')).toBe(a);
    expect(c.prepare('select count(*) as n from t')).not.toBe(b);
    expect((a.get(2) as { x: number }).x).toBe(2);
  });

  it('a kept statement with an open iterator is not handed out again', () => {
    const c = statementCache(memory());
    const text = 'select x from t order by x';
    const it1 = c.prepare(text).iterate();
    expect(it1.next().value).toEqual({ x: 1 });
    const other = c.prepare(text);
    expect(other.all()).toEqual([{ x: 1 }, { x: 2 }, { x: 3 }]); // would throw "busy" on the iterating one
    expect([...it1]).toEqual([{ x: 2 }, { x: 3 }]);
  });

  it('PRAGMA texts are prepared anew every time', () => {
    const c = statementCache(memory());
    expect(c.prepare('pragma synchronous = NORMAL')).not.toBe(c.prepare('pragma synchronous = NORMAL'));
    expect(c.prepare(' PRAGMA user_version')).not.toBe(c.prepare(' PRAGMA user_version'));
  });

  it('through Kysely: a stream, then the same query, and a kept SELECT after a schema change', async () => {
    const { h } = await tempSqliteFile('dcms-stmt-cache-', cleanups);
    await sql`create table s (x integer)`.execute(h.db);
    await sql`insert into s values (1), (2), (3)`.execute(h.db);
    const q = sql<{ x: number }>`select * from s order by x`;
    const seen: number[] = [];
    const all = () => h.db.selectFrom('s' as never).selectAll().orderBy('x' as never);
    // a stream stopped early leaves its (kept) statement reset: the same text runs again
    for await (const row of all().stream()) {
      seen.push((row as { x: number }).x);
      if (seen.length === 2) break;
    }
    expect(seen).toEqual([1, 2]);
    expect((await all().execute()).length).toBe(3);
    expect((await q.execute(h.db)).rows[0]).toEqual({ x: 1 });
    await sql`alter table s add column y text default 'new'`.execute(h.db);
    expect((await q.execute(h.db)).rows[0]).toEqual({ x: 1, y: 'new' });
  });
});

// The WAL checkpointer thread, one per SQLite file (src/cms/storage/checkpointer.ts), and the gate
// every SQLite writer passes (src/cms/storage/open.ts): while the thread's RESTART checkpoint holds
// the write lock, a transaction begun on a connection to the file — or a write outside one, or a
// transaction on a second connection of this process without a lease — waits for it asynchronously
// (a timer fires meanwhile), not in SQLite's busy handler on the event loop, and proceeds once the
// checkpoint is done. The RESTART is held for real: a reader on another connection keeps it waiting
// (a RESTART waits for readers, holding the write lock) until the test ends that read.
import { readdirSync, readlinkSync, unlinkSync } from 'node:fs';
import type BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { type DatabaseHandle, leaseWalCheckpointer, openDatabase, walRestartGate } from '../../src/cms/storage/index.js';
import { walRestartHolder } from './wal-restart-hold.js';
import { tempSqliteFile } from './sqlite-file.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sqliteFile = () => tempSqliteFile('dcms-wal-restart-', cleanups);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const autocheckpoint = (n: BetterSqlite3.Database) => Number(n.pragma('wal_autocheckpoint', { simple: true }));
const count = (h: DatabaseHandle, prefix: string) => (h.sqlite!.prepare('select count(*) as n from meta_settings where name like ?').get(`${prefix}%`) as { n: number }).n;

describe('the WAL checkpointer restarting the WAL, and the writers of its file', () => {
  it('a transaction, a write outside one, and a second connection\'s transaction wait for the RESTART off the event loop, then proceed', async () => {
    const { h, file } = await sqliteFile();
    // a RESTART at every interval once the WAL holds a frame; it waits up to a minute for readers
    const lease = leaseWalCheckpointer(h.sqlite!, { intervalMs: 5, restartFrames: 1, restartWaitMs: 60_000 });
    cleanups.push(() => lease.release());
    expect(autocheckpoint(h.sqlite!)).toBe(0);
    const h2 = await openDatabase({ kind: 'sqlite', file }); // another connection of this process, no lease
    cleanups.push(() => h2.close());
    const gate = walRestartGate(h.sqlite!)!;
    const holder = walRestartHolder(file, gate);
    cleanups.push(() => holder.close());
    /** Hold the checkpointer's RESTART (and so the write lock): a read open on another connection, frames written after it. */
    const holdRestart = async (): Promise<() => void> => {
      expect(await holder.hold()).toBe(true); // the thread holds the write lock, waiting for the reader
      return () => holder.release();
    };
    /** Run `write` while the RESTART is held; a timer ends the read (`fired`: whether it has). */
    const whileHeld = async (write: (fired: () => boolean) => Promise<void>): Promise<void> => {
      const release = await holdRestart();
      let fired = false;
      const timer = setTimeout(() => {
        fired = true;
        release();
      }, 20);
      try {
        await write(() => fired);
      } finally {
        clearTimeout(timer);
        holder.release();
      }
    };

    // a Kysely transaction (BEGIN IMMEDIATE) on the leased connection, and on a second connection
    // to the file, which holds no lease (the file's checkpointer gates it too)
    for (const [name, db] of [['test:tx', h], ['test:h2', h2]] as const) {
      let began: boolean | undefined;
      await whileHeld(async (fired) => {
        await db.db.transaction().execute(async (tx) => {
          began = fired();
          await sql`insert into meta_settings (name, value) values (${name}, 'x')`.execute(tx);
        });
      });
      expect([name, began]).toEqual([name, true]);
      expect(count(h, name)).toBe(1);
    }

    // a write outside a transaction
    let wrote: boolean | undefined;
    await whileHeld(async (fired) => {
      await h.db.insertInto('meta_settings').values({ name: 'test:auto', value: 'x' }).execute();
      wrote = fired();
    });
    expect(wrote).toBe(true);
    expect(count(h, 'test:auto')).toBe(1);

    // reads do not wait: a read outside a transaction runs while the RESTART is held
    const release = await holdRestart();
    try {
      expect(await h.db.selectFrom('meta_settings').select('name').where('name', '=', 'test:tx').execute()).toEqual([{ name: 'test:tx' }]);
      expect(gate()).toBeDefined(); // still held: the read did not wait for it
    } finally {
      release();
    }
  }, 120_000);

  it('the last lease released, or the thread failing, gives the connection its automatic checkpoint back; one thread per file', async () => {
    const { h } = await sqliteFile();
    const a = leaseWalCheckpointer(h.sqlite!, { intervalMs: 1000 });
    const b = leaseWalCheckpointer(h.sqlite!, { intervalMs: 1000 });
    expect(autocheckpoint(h.sqlite!)).toBe(0);
    a.release();
    a.release(); // idempotent
    expect(autocheckpoint(h.sqlite!)).toBe(0); // b still holds the file's thread
    b.release();
    expect(autocheckpoint(h.sqlite!)).toBe(1000);

    // a thread that fails (its file is gone when it opens it): the connection checkpoints itself again
    const { h: g, file } = await sqliteFile();
    const lease = leaseWalCheckpointer(g.sqlite!, { intervalMs: 5 });
    cleanups.push(() => lease.release());
    unlinkSync(file);
    expect(autocheckpoint(g.sqlite!)).toBe(0);
    for (let i = 0; i < 2000 && autocheckpoint(g.sqlite!) === 0; i++) await sleep(5);
    expect(autocheckpoint(g.sqlite!)).toBe(1000);
    expect(walRestartGate(g.sqlite!)!()).toBeUndefined();
  }, 60_000);
  it('the last lease\'s release resolves once the thread has closed its connection: the file can be removed at once', async () => {
    const { h, file, dir } = await sqliteFile();
    /** Descriptors this process holds open on the file or its -wal/-shm. */
    const fdsOn = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(file);
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    const own = fdsOn();
    const lease = leaseWalCheckpointer(h.sqlite!, { intervalMs: 1000 });
    while (fdsOn() === own) await sleep(5); // the thread has opened its connection
    await lease.release();
    await lease.release(); // idempotent
    // the thread's connection is closed (SQLite keeps its descriptors until this process's last
    // connection to the file closes: closing one would drop the other's POSIX locks): closing the
    // handle's connection (at once, no await in between) closes the last one, which removes the
    // -wal and -shm files
    h.sqlite!.close();
    expect(fdsOn()).toBe(0);
    expect(readdirSync(dir)).toEqual(['cms.sqlite']);
  });
});

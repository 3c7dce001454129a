// Hold a SQLite file's checkpointer RESTART for real (src/cms/storage/checkpointer.ts), for tests of
// the writers that must wait for it off the event loop: a read transaction open on another
// connection keeps the RESTART waiting for readers — holding the write lock — until it ends. The
// file's checkpointer must be leased with a short interval, restartFrames 1 and a long
// restartWaitMs (e.g. { intervalMs: 5, restartFrames: 1, restartWaitMs: 60_000 }).
import type BetterSqlite3 from 'better-sqlite3';

const Sqlite = (await import('better-sqlite3')).default;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface RestartHolder {
  /** Open a read, write frames after it until the thread holds the write lock (false: it never did); `release` ends the read. */
  hold(): Promise<boolean>;
  release(): void;
  close(): void;
}

/** `gate`: walRestartGate of a connection to `file` (defined while the thread restarts the WAL). */
export function walRestartHolder(file: string, gate: () => Promise<unknown> | undefined): RestartHolder {
  const reader: BetterSqlite3.Database = new Sqlite(file, { fileMustExist: true });
  // a connection that never waits for the lock (SQLITE_BUSY while the thread has it)
  const framer: BetterSqlite3.Database = new Sqlite(file, { fileMustExist: true, timeout: 0 });
  const frame = framer.prepare("insert or replace into meta_settings (name, value) values ('test:frame', 'x')");
  const release = () => {
    if (reader.open && reader.inTransaction) reader.exec('commit');
  };
  return {
    async hold() {
      // a RESTART already under way (frames written before) is not held by a read begun during it
      for (let i = 0; i < 4000 && gate(); i++) await sleep(5);
      reader.exec('begin');
      reader.prepare('select count(*) from meta_settings').get();
      for (let i = 0; i < 4000; i++) {
        if (gate()) {
          // held by the read, it stays so until release; one not waiting for the read ends in ms
          await sleep(30);
          if (gate()) return true;
        }
        try {
          frame.run();
        } catch (e) {
          if ((e as { code?: string }).code !== 'SQLITE_BUSY') throw e;
        }
        await sleep(5);
      }
      return false;
    },
    release,
    close() {
      release();
      reader.close();
      framer.close();
    },
  };
}

// A migrated SQLite file database in a fresh temporary directory, closed and removed by the
// caller's cleanup list (tests of the WAL, its checkpointer and the writers of one file).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type DatabaseHandle, openDatabase } from '../../src/cms/storage/index.js';

export async function tempSqliteFile(prefix: string, cleanups: (() => Promise<void> | void)[]): Promise<{ h: DatabaseHandle; file: string; dir: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const file = path.join(dir, 'cms.sqlite');
  const h = await openDatabase({ kind: 'sqlite', file });
  cleanups.push(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { h, file, dir };
}

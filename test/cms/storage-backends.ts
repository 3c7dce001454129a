// Test helper: the storage backends every storage-dependent suite runs against. SQLite in a
// temp directory, and a real PostgreSQL in a fresh schema of this run (dropped by the global
// teardown once every file has finished: test/helpers/pg-schema.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openDatabase, type DatabaseHandle, type OpenOptions } from '../../src/cms/storage/index.js';
import { testSchema } from '../helpers/pg-schema.js';
import { PG_URL, requireComponent, tcpReachable } from '../helpers/system.js';

export interface Backend {
  name: 'sqlite' | 'postgres';
  /** Open a (new, migrated) database; all handles opened by one backend share one database. */
  open(options?: OpenOptions): Promise<DatabaseHandle>;
  /** Close what this backend opened and remove its files (a PostgreSQL schema goes in the global teardown). */
  cleanup(): Promise<void>;
}

export function sqliteBackend(): Backend {
  const dir = mkdtempSync(path.join(tmpdir(), 'desfire-storage-'));
  const handles: DatabaseHandle[] = [];
  return {
    name: 'sqlite',
    file: path.join(dir, 'cms.sqlite'),
    async open(options) {
      const h = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'cms.sqlite') }, options);
      handles.push(h);
      return h;
    },
    async cleanup() {
      for (const h of handles) await h.close();
      rmSync(dir, { recursive: true, force: true });
    },
  } as Backend;
}

export function postgresBackend(): Backend {
  const schema = testSchema('st');
  const handles: DatabaseHandle[] = [];
  return {
    name: 'postgres',
    async open(options) {
      const h = await openDatabase({ kind: 'postgres', url: PG_URL, schema, poolSize: 4 }, options);
      handles.push(h);
      return h;
    },
    async cleanup() {
      for (const h of handles) await h.close(); // the schema itself goes in the global teardown
    },
  };
}

/** Whether PostgreSQL is reachable (skips with a reason locally, fails under CI). */
export async function postgresAvailable(): Promise<boolean> {
  const u = new URL(PG_URL);
  return requireComponent('PostgreSQL', await tcpReachable(u.hostname, Number(u.port || 5432)));
}

// Runs the static list of migrations (./migrations/index.ts) with Kysely's Migrator.
import { Migrator, type Migration, type MigrationProvider } from 'kysely';
import type { DatabaseHandle } from './open.js';
import { StorageError } from './errors.js';
import { MIGRATIONS } from './migrations/index.js';

const NAME = /^\d{4}_[a-z0-9_]+$/;

/** A provider over a static map (no file-system scanning, so bundles and tsx both work). */
export class StaticMigrationProvider implements MigrationProvider {
  constructor(private readonly migrations: Record<string, Migration>) {
    for (const name of Object.keys(migrations)) {
      if (!NAME.test(name)) throw new StorageError('ERR_STORAGE_MIGRATION', `migration name '${name}' must look like NNNN_name`);
    }
  }
  async getMigrations(): Promise<Record<string, Migration>> {
    return this.migrations;
  }
}

function migrator(handle: DatabaseHandle): Migrator {
  return new Migrator({
    db: handle.db,
    provider: new StaticMigrationProvider(MIGRATIONS),
    ...(handle.schema ? { migrationTableSchema: handle.schema } : {}),
  });
}

/** Apply every pending migration; returns the names applied. Throws ERR_STORAGE_MIGRATION on failure. */
export async function migrateToLatest(handle: DatabaseHandle): Promise<string[]> {
  const { error, results } = await migrator(handle).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new StorageError('ERR_STORAGE_MIGRATION', `migration ${failed ?? '(setup)'} failed: ${(error as Error).message ?? String(error)}`, {
      cause: error,
    });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Names of applied migrations, in order. */
export async function appliedMigrations(handle: DatabaseHandle): Promise<string[]> {
  const all = await migrator(handle).getMigrations();
  return all.filter((m) => m.executedAt !== undefined).map((m) => m.name);
}

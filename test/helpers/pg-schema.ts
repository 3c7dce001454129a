// PostgreSQL schemas of the tests. Every suite works in its own fresh schema, named with the run's
// prefix (set by test/helpers/global-setup.ts), and NO test drops a schema while others run:
// dropping one while another suite's Kysely migrator introspects the catalogue (its getTables calls
// pg_get_serial_sequence on every table it sees, resolving names after the snapshot) fails that
// other suite with `schema "…" does not exist`. The run's schemas are dropped together after every
// test file has finished (global teardown).
import { randomBytes } from 'node:crypto';

/** The schema-name prefix of this test run ('t_' when run without the global setup). */
export function schemaPrefix(): string {
  return process.env.DESFIRE_TEST_PG_SCHEMA_PREFIX ?? 't_';
}

/** A fresh schema name for one suite: `<run prefix><tag>_<random>` (matches [a-z_][a-z0-9_]*). */
export function testSchema(tag = 's'): string {
  return `${schemaPrefix()}${tag}_${randomBytes(5).toString('hex')}`;
}

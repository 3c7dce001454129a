// Vitest global setup: gives this run its own PostgreSQL schema prefix (inherited by the test
// workers through the environment) and, after every test file has finished, drops the run's
// schemas together (see pg-schema.ts for why suites never drop their own while others run).
// Runs of other checkouts on the same database have other prefixes and are left alone.
import { randomBytes } from 'node:crypto';
import { PG_URL, tcpReachable } from './system.js';

export default function setup(): () => Promise<void> {
  const prefix = `t${randomBytes(3).toString('hex')}_`;
  process.env.DESFIRE_TEST_PG_SCHEMA_PREFIX = prefix;
  return async () => {
    const u = new URL(PG_URL);
    if (!(await tcpReachable(u.hostname, Number(u.port || 5432))).ok) return;
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      const { rows } = await c.query<{ nspname: string }>("select nspname from pg_namespace where starts_with(nspname, $1)", [prefix]);
      for (const r of rows) await c.query(`drop schema if exists "${r.nspname}" cascade`);
    } finally {
      await c.end();
    }
  };
}

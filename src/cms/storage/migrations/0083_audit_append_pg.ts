// PostgreSQL: the audit chain's batch append as ONE server-side call (src/cms/audit/store.ts
// appendPostgres), so a batch is one round trip in autocommit: the function takes the chain's
// writer lock (the advisory lock `withWriterLock(…, 'audit-append')` takes: same key), reads the
// next index, and inserts the bodies and leaf hashes only if that index is the one the caller
// hashed the batch for; it returns that index and the rows inserted. The statement's implicit
// transaction commits (durably: synchronous_commit as configured) before the answer, and the lock
// ends with it. Before, the same work took three round trips (BEGIN + lock, the append, COMMIT)
// with the lock held across all of them — while the CMS's event loop was busy with other requests
// between them, every other audit batch waited (sampled under load: the audit transaction was
// 'idle in transaction', waiting for its client, ~44 % of the time).
// In plpgsql every statement takes a new snapshot (READ COMMITTED), so the max index read after
// the lock sees every batch committed before. `set search_path from current`: the tables are the
// ones of the schema the migration ran in, whatever the caller's search_path. SQLite: nothing (its
// batch is one synchronous transaction on the native connection already).
import { type Kysely, sql } from 'kysely';
import { dialectOf } from '../dialect.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  if (dialectOf(db) !== 'postgres') return;
  await sql`create function desfire_audit_append(
  p_idx bigint[], p_time bigint[], p_actor text[], p_reader_id text[], p_card_uid text[], p_tenant text[], p_aid text[],
  p_key_no integer[], p_key_version integer[], p_operation text[], p_result text[], p_correlation_id text[], p_details text[],
  p_leaf bytea[], p_start bigint)
returns table (s bigint, ne bigint, nl bigint)
language plpgsql volatile
set search_path from current
as $$
declare
  v_s bigint;
  v_ne bigint;
  v_nl bigint;
begin
  perform pg_advisory_xact_lock(hashtext('audit-append'));
  select coalesce(max(l."idx") + 1, 0) into v_s from "audit_leaves" l;
  if v_s <> p_start then
    return query select v_s, 0::bigint, 0::bigint;
    return;
  end if;
  insert into "audit_entries" ("idx", "time", "actor", "reader_id", "card_uid", "tenant", "aid", "key_no", "key_version", "operation", "result", "correlation_id", "details")
    select * from unnest(p_idx, p_time, p_actor, p_reader_id, p_card_uid, p_tenant, p_aid, p_key_no, p_key_version, p_operation, p_result, p_correlation_id, p_details);
  get diagnostics v_ne = row_count;
  insert into "audit_leaves" ("idx", "leaf_hash") select * from unnest(p_idx, p_leaf);
  get diagnostics v_nl = row_count;
  return query select v_s, v_ne, v_nl;
end $$`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  if (dialectOf(db) !== 'postgres') return;
  await sql`drop function if exists desfire_audit_append(bigint[], bigint[], text[], text[], text[], text[], text[], integer[], integer[], text[], text[], text[], text[], bytea[], bigint)`.execute(db);
}

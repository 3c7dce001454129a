// The card denylist's change log (reader delta sync, docs/reader-agent.md "Denylist"): one row per
// card that went on or off the denylist, written by triggers on card_denylist — so every writer
// (the denylist routes, the compromise service, direct SQL) is logged, none can forget to. A
// reader holds the token `<version>-<nonce>` of the last change it received and gets the changes
// after it; the nonce (random per row) makes a token from another history (a database restored
// from a backup, recreated) unknown, and such a reader gets the whole list again.
// PostgreSQL: the trigger takes a transaction-scoped advisory lock before the row takes its
// version, so versions are assigned in commit order (a reader never sees version n+1 committed
// before version n and skips n).
import { type Kysely, sql } from 'kysely';
import { dialectOf } from '../dialect.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  if (dialectOf(db) === 'postgres') {
    await sql`create table card_denylist_changes (version bigserial primary key, uid text not null, denied smallint not null, nonce text not null default substr(md5(random()::text || clock_timestamp()::text), 1, 12))`.execute(db);
    await sql`create function card_denylist_log() returns trigger language plpgsql as $$
begin
  perform pg_advisory_xact_lock(hashtext('card_denylist_changes'));
  if tg_op = 'INSERT' then
    insert into card_denylist_changes (uid, denied) values (new.uid, 1);
  elsif tg_op = 'DELETE' then
    insert into card_denylist_changes (uid, denied) values (old.uid, 0);
  elsif old.uid <> new.uid then
    insert into card_denylist_changes (uid, denied) values (old.uid, 0);
    insert into card_denylist_changes (uid, denied) values (new.uid, 1);
  end if;
  return null;
end $$`.execute(db);
    await sql`create trigger card_denylist_log after insert or update or delete on card_denylist for each row execute function card_denylist_log()`.execute(db);
  } else {
    await sql`create table card_denylist_changes (version integer primary key autoincrement, uid text not null, denied integer not null, nonce text not null default (lower(hex(randomblob(6)))))`.execute(db);
    await sql`create trigger card_denylist_log_ins after insert on card_denylist begin insert into card_denylist_changes (uid, denied) values (new.uid, 1); end`.execute(db);
    await sql`create trigger card_denylist_log_del after delete on card_denylist begin insert into card_denylist_changes (uid, denied) values (old.uid, 0); end`.execute(db);
    await sql`create trigger card_denylist_log_upd after update of uid on card_denylist when old.uid <> new.uid begin insert into card_denylist_changes (uid, denied) values (old.uid, 0); insert into card_denylist_changes (uid, denied) values (new.uid, 1); end`.execute(db);
  }
  // cards denied before this migration: logged once, so the log's changes from the start ARE the list
  await sql`insert into card_denylist_changes (uid, denied) select uid, 1 from card_denylist order by uid`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  if (dialectOf(db) === 'postgres') {
    await sql`drop trigger if exists card_denylist_log on card_denylist`.execute(db);
    await sql`drop function if exists card_denylist_log()`.execute(db);
  } else {
    for (const t of ['card_denylist_log_ins', 'card_denylist_log_del', 'card_denylist_log_upd']) await sql`drop trigger if exists ${sql.raw(t)}`.execute(db);
  }
  await db.schema.dropTable('card_denylist_changes').execute();
}

// The CMS side of the audit baton: receive a reader's entries, verify continuity, store them
// once, and raise an alert (audit_alerts, the audit log's alert table) on a gap, a fork, a
// reordering or a modified entry. Idempotent by sequence number: an entry already stored with the
// same hash is a duplicate (a reader that crashed before recording the acknowledgement sends it
// again) and is neither stored twice nor an error.
//
// Also the card denylist readers fetch on every contact.
import { randomUUID } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../storage/index.js';
import { dialectOf } from '../storage/dialect.js';
import { lockWriters, withTransaction } from '../storage/tx.js';
import type { AuditInput } from '../audit/entry.js';
import type { RecordOptions } from '../audit/log.js';
import type { RunOptions } from '../jobs/commit.js';
import { type TxStatement, txStatement } from '../jobs/writes.js';
import { type BatonWireEntry, GENESIS, batonHash } from './chain.js';

export type BatonErrorCode = 'ERR_BATON_GAP' | 'ERR_BATON_FORK' | 'ERR_BATON_REORDER' | 'ERR_BATON_TAMPERED' | 'ERR_BATON_BAD_INPUT' | 'ERR_BATON_CONFLICT';

export class BatonError extends Error {
  readonly code: BatonErrorCode;
  constructor(code: BatonErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'BatonError';
  }
}

/** The alert rules this module raises (rule ids in audit_alerts). */
// 'baton-gap' is the audit alert engine's rule id (src/cms/audit/alerts/types.ts); the others
// follow its naming. Stored in audit_alerts like every other alert (listed by the audit routes).
export const BATON_RULES = {
  gap: 'baton-gap',
  fork: 'baton-fork',
  reorder: 'baton-reorder',
  tampered: 'baton-tampered',
  clone: 'clone-suspected',
} as const;

export interface SyncResult {
  /** Highest contiguous sequence number stored for this reader. */
  acked: number;
  hash: string;
  stored: number;
  duplicates: number;
}

interface PendingAlert {
  rule: string;
  severity: 'critical' | 'warning';
  subject: string;
  message: string;
  details: Record<string, unknown>;
}

const UID_RE = /^([0-9A-F]{2}){4,10}$/;
/** A denylist version token: `<change version>-<that change's nonce>` ('0-0': no change ever). */
export const DENYLIST_TOKEN = /^([0-9]{1,15})-([0-9a-f]{1,16})$/;
/** Changes sent as a delta at most; a reader further behind gets the whole list. */
export const DENYLIST_DELTA_MAX = 1000;

/** What a reader gets of the denylist (denylistFor): the whole list, or the changes since its version. */
export interface DenylistAnswer {
  /** The token the reader sends at its next contact. */
  version: string;
  full?: string[];
  delta?: { since: string; add: string[]; remove: string[] };
}
export const MAX_BATCH = 1000;

/** The audit log's `record` (src/cms/audit/log.ts): accepted baton entries go into the tamper-evident log. */
export interface BatonAudit {
  record(input: AuditInput, opts?: RecordOptions): Promise<unknown>;
}

/**
 * Runs the storing transaction: by default one transaction of its own; the composition root gives
 * the station jobs' group commit (src/cms/jobs/commit.ts) on SQLite, whose COMMIT does not fsync
 * on the event loop (synchronous=NORMAL for that transaction, the WAL fsynced in the thread pool
 * before the caller is answered: the durability of FULL) — the inline fsync of an upload's COMMIT
 * stalled every key delivery arriving meanwhile.
 */
export type BatonCommit = <T>(fn: (tx: Transaction<Database>) => Promise<T>, opts?: RunOptions) => Promise<T>;

/**
 * An upload's audit records are handed to the audit log this many at a time by default (see
 * auditFresh): a chunk is one synchronous stretch of the audit log's commit (~1 ms for 16 under
 * load; 64 took 2.5-6 ms, and a key delivery arriving meanwhile waited for it).
 */
export const AUDIT_CHUNK = 16;
const DEFER_SYNC = { deferSync: true };
/** Entries hashed per turn of the event loop when an upload is verified (~4 us each). */
export const VERIFY_SLICE = 32;

/** One turn of the event loop: what is waiting (a delivery's request, I/O callbacks) runs first. */
const turn = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

export interface BatonServiceOptions {
  /** Audit records handed to the audit log per chunk (default AUDIT_CHUNK). */
  auditChunk?: number;
  /**
   * With a `commit` that honours `deferSync` (the group commit's): resolves once every commit made
   * before the call is durable (GroupCommit.durable). Called before a head read from the store is
   * answered, so a reader is never told an entry is stored that a crash could still take.
   */
  durable?: () => Promise<void>;
}
/** Rows per INSERT statement when storing an upload (one multi-row statement: on SQLite as cheap as as many prepared single-row runs, on PostgreSQL one round trip instead of 32). */
const INSERT_ROWS = 32;
/** Entries stored per transaction when an upload is stored (see storeInParts): one INSERT statement each. */
export const STORE_PART = INSERT_ROWS;
const ROW_COLUMNS = 12;
type Value = string | number | null;

export class BatonService {
  private readonly commit: BatonCommit;
  private readonly inserts = new Map<number, TxStatement<Value[], unknown>>();

  /**
   * `native` (SQLite): the connection `commit` runs its transactions on; the storing INSERTs are
   * prepared on it once and run synchronously inside the open transaction. Give it only together
   * with a `commit` whose transactions run on that connection (the route's group commit).
   */
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number = Date.now,
    private readonly audit?: BatonAudit,
    commit?: BatonCommit,
    private readonly native?: BetterSqlite3.Database,
    opts: BatonServiceOptions = {},
  ) {
    this.commit = commit ?? ((fn) => withTransaction(this.db, fn));
    this.durable = opts.durable;
    this.auditChunk = opts.auditChunk ?? AUDIT_CHUNK;
    if (!Number.isInteger(this.auditChunk) || this.auditChunk < 1) throw new BatonError('ERR_BATON_BAD_INPUT', 'auditChunk must be a positive integer');
  }

  private readonly auditChunk: number;
  private readonly durable?: () => Promise<void>;

  /** The stored head (durable: what it includes is on disk when this resolves — the reader treats it as acknowledged). */
  async head(readerId: string): Promise<{ seq: number; hash: string }> {
    const r = await this.db.selectFrom('reader_baton').select(['seq', 'hash']).where('reader_id', '=', readerId).orderBy('seq', 'desc').limit(1).executeTakeFirst();
    // an upload's parts before its last are committed without their sync (storeInParts): the row
    // read may be one of them
    if (this.durable) await this.durable();
    return r ? { seq: Number(r.seq), hash: r.hash } : { seq: 0, hash: GENESIS };
  }

  async entries(readerId: string, opts: { after?: number; limit?: number } = {}): Promise<BatonWireEntry[]> {
    const rows = await this.db
      .selectFrom('reader_baton')
      .selectAll()
      .where('reader_id', '=', readerId)
      .where('seq', '>', opts.after ?? 0)
      .orderBy('seq')
      .limit(Math.min(opts.limit ?? 500, 5000))
      .execute();
    return rows.map((r) => ({
      seq: Number(r.seq),
      time: Number(r.time),
      readerId: r.reader_id,
      cardUid: r.card_uid,
      aid: r.aid,
      keyNo: r.key_no,
      keyVersion: r.key_version,
      op: r.op,
      result: r.result,
      prev: r.prev,
      hash: r.hash,
    }));
  }

  /**
   * Check a batch against itself (order, each entry's hash: computed once per upload), or a
   * BatonError with its alert pushed to `alerts`. No database access. The hashes are computed
   * VERIFY_SLICE entries per turn of the event loop: a request that arrives meanwhile (a key
   * delivery) is served between two slices instead of after the whole upload's hashing.
   */
  private async verify(readerId: string, batch: BatonWireEntry[], alerts: PendingAlert[]): Promise<void> {
    const subject = `reader:${readerId}`;
    for (let i = 1; i < batch.length; i++) {
      if (batch[i]!.seq <= batch[i - 1]!.seq) {
        alerts.push({ rule: BATON_RULES.reorder, severity: 'critical', subject, message: `reader ${readerId} sent baton entries out of order (seq ${batch[i - 1]!.seq} then ${batch[i]!.seq})`, details: { seq: batch[i]!.seq, after: batch[i - 1]!.seq } });
        throw new BatonError('ERR_BATON_REORDER', 'baton entries out of order');
      }
    }
    for (let from = 0; from < batch.length; from += VERIFY_SLICE) {
      if (from > 0) await turn();
      const to = Math.min(from + VERIFY_SLICE, batch.length);
      for (let i = from; i < to; i++) {
        const e = batch[i]!;
        if (e.readerId !== readerId || batonHash(e) !== e.hash) {
          alerts.push({ rule: BATON_RULES.tampered, severity: 'critical', subject, message: `baton entry ${e.seq} of reader ${readerId} does not match its hash (modified)`, details: { seq: e.seq } });
          throw new BatonError('ERR_BATON_TAMPERED', `baton entry ${e.seq} was modified`);
        }
      }
    }
  }

  /**
   * Check a verified batch's continuity with what is stored (read through `db`: inside the
   * storing transaction, under the reader's writer lock, this is what makes concurrent uploads
   * safe): the entries to store, or a BatonError (with its alert pushed to `alerts`).
   */
  private async plan(db: Kysely<Database>, readerId: string, batch: BatonWireEntry[], alerts: PendingAlert[]): Promise<{ fresh: BatonWireEntry[]; duplicates: number; acked: number; hash: string }> {
    const subject = `reader:${readerId}`;
    const head = await this.headIn(db, readerId);
    let prevSeq = head.seq;
    let prevHash = head.hash;
    let duplicates = 0;
    const fresh: BatonWireEntry[] = [];
    // entries at or below the stored head (a resent batch: duplicates, or a fork) are a prefix of
    // the (ordered) batch: their stored hashes in ONE range query, not one query per entry
    let stored: Map<number, string> | undefined;
    if (batch.length && batch[0]!.seq <= head.seq) {
      let last = 0;
      while (last + 1 < batch.length && batch[last + 1]!.seq <= head.seq) last++;
      const rows = await db.selectFrom('reader_baton').select(['seq', 'hash']).where('reader_id', '=', readerId).where('seq', '>=', batch[0]!.seq).where('seq', '<=', batch[last]!.seq).execute();
      stored = new Map(rows.map((r) => [Number(r.seq), r.hash]));
    }
    for (const e of batch) {
      if (e.seq <= head.seq) {
        const hash = stored!.get(e.seq);
        if (hash === undefined || hash !== e.hash) {
          alerts.push({ rule: BATON_RULES.fork, severity: 'critical', subject, message: `reader ${readerId} sent a different entry ${e.seq} than the one stored (fork)`, details: { seq: e.seq } });
          throw new BatonError('ERR_BATON_FORK', `baton entry ${e.seq} differs from the stored one`);
        }
        duplicates++;
        continue;
      }
      if (e.seq !== prevSeq + 1) {
        alerts.push({ rule: BATON_RULES.gap, severity: 'critical', subject, message: `reader ${readerId} baton gap: entries ${prevSeq + 1}..${e.seq - 1} missing`, details: { seq: e.seq, expected: prevSeq + 1 } });
        throw new BatonError('ERR_BATON_GAP', `baton entries ${prevSeq + 1}..${e.seq - 1} are missing`);
      }
      if (e.prev !== prevHash) {
        alerts.push({ rule: BATON_RULES.fork, severity: 'critical', subject, message: `reader ${readerId} baton entry ${e.seq} does not chain to entry ${prevSeq} (fork)`, details: { seq: e.seq } });
        throw new BatonError('ERR_BATON_FORK', `baton entry ${e.seq} does not chain to the stored log`);
      }
      fresh.push(e);
      prevSeq = e.seq;
      prevHash = e.hash;
    }
    return { fresh, duplicates, acked: prevSeq, hash: prevHash };
  }

  /**
   * Hand the fresh entries to the audit log AUDIT_CHUNK at a time, in order, each chunk settled
   * before the next is queued (the batch summary goes with the last chunk). The audit log commits
   * its FIFO queue in groups: handed all at once, an upload of a few hundred entries sat in front
   * of every key delivery's audit entry queued meanwhile until all of it was committed and fsynced;
   * now such an entry waits behind at most one chunk. Every chunk but the last is recorded with
   * `deferSync` (committed, not yet synced): the last chunk's sync makes the whole upload durable
   * (one database file, synced in order), and nothing is stored or acknowledged before it. One
   * WAL fsync per upload instead of one per chunk: an upload of a few hundred entries took ~80 ms
   * under load with a sync per chunk, and a delivery arriving meanwhile found a chunk's sync in
   * flight and waited for it and its own. Any failure refuses the batch: the rest is not queued,
   * and the caller stores and acknowledges nothing.
   */
  private async auditFresh(audit: BatonAudit, readerId: string, fresh: BatonWireEntry[], duplicates: number): Promise<void> {
    for (let from = 0; from < fresh.length; from += this.auditChunk) {
      const to = Math.min(from + this.auditChunk, fresh.length);
      const opts = to === fresh.length ? undefined : DEFER_SYNC;
      const written: Promise<unknown>[] = [];
      for (let i = from; i < to; i++) {
        const e = fresh[i]!;
        written.push(
          audit.record({
            time: e.time,
            readerId,
            cardUid: e.cardUid || null,
            aid: e.aid || null,
            keyNo: e.keyNo >= 0 ? e.keyNo : null,
            keyVersion: e.keyVersion >= 0 ? e.keyVersion : null,
            operation: `reader.${e.op}`,
            result: e.result,
            details: { batonSeq: e.seq },
          }, opts),
        );
      }
      if (to === fresh.length) written.push(audit.record({ readerId, operation: 'reader.baton', result: 'ok', details: { seqFrom: fresh[0]!.seq, seqTo: fresh[fresh.length - 1]!.seq, duplicates } }));
      // every record of the chunk settled before going on; any failure refuses the batch
      const settled = await Promise.allSettled(written);
      const bad = settled.find((r) => r.status === 'rejected');
      if (bad) throw bad.reason;
    }
  }

  /** The INSERT of `n` rows, compiled once (on SQLite with the native connection: prepared once). */
  private insertRows(n: number): TxStatement<Value[], unknown> {
    let s = this.inserts.get(n);
    if (!s) {
      const db = this.db;
      s = txStatement<Value[]>(
        db,
        n * ROW_COLUMNS,
        (...a) =>
          db.insertInto('reader_baton').values(
            Array.from({ length: n }, (_, r) => {
              const c = (i: number) => a[r * ROW_COLUMNS + i] as unknown as number;
              return { reader_id: a[r * ROW_COLUMNS]!, seq: c(1), time: c(2), card_uid: a[r * ROW_COLUMNS + 3]!, aid: a[r * ROW_COLUMNS + 4]!, key_no: c(5), key_version: c(6), op: a[r * ROW_COLUMNS + 7]!, result: a[r * ROW_COLUMNS + 8]!, prev: a[r * ROW_COLUMNS + 9]!, hash: a[r * ROW_COLUMNS + 10]!, received_at: c(11) };
            }),
          ),
        this.native,
      );
      this.inserts.set(n, s);
    }
    return s;
  }

  /** Store `rows` (verified, continuous) inside `tx`: INSERT_ROWS rows per statement. */
  private async store(tx: Kysely<Database>, readerId: string, rows: BatonWireEntry[], at: number): Promise<void> {
    for (let from = 0; from < rows.length; from += INSERT_ROWS) {
      const to = Math.min(from + INSERT_ROWS, rows.length);
      const args: Value[] = new Array((to - from) * ROW_COLUMNS);
      let k = 0;
      for (let i = from; i < to; i++) {
        const e = rows[i]!;
        args[k++] = readerId;
        args[k++] = e.seq;
        args[k++] = e.time;
        args[k++] = e.cardUid;
        args[k++] = e.aid;
        args[k++] = e.keyNo;
        args[k++] = e.keyVersion;
        args[k++] = e.op;
        args[k++] = e.result;
        args[k++] = e.prev;
        args[k++] = e.hash;
        args[k++] = at;
      }
      await this.insertRows(to - from).run(tx, ...args);
    }
  }

  /**
   * Store a verified batch STORE_PART entries per transaction, in order, each transaction checking
   * continuity again under the reader's writer lock (a concurrent upload may have stored some of
   * these; the second part continues from the first). One transaction for the whole upload held
   * the database's only writer — and, with the synchronous driver, the event loop — for all of its
   * INSERTs (~8 ms for 340 entries under load): every key delivery's durable audit entry waited
   * behind it. Between two parts the event loop serves what arrived. A failure after some parts
   * leaves a stored prefix of the chain and acknowledges nothing: the reader sends the batch again
   * and the stored prefix comes back as duplicates (idempotent by sequence number). Every part but
   * the last commits with `deferSync` (no WAL sync of its own): the last part's sync makes them all
   * durable before the upload is answered (a head read meanwhile waits for a sync: head()).
   */
  private async storeInParts(readerId: string, batch: BatonWireEntry[], alerts: PendingAlert[]): Promise<SyncResult> {
    const at = this.now();
    const out: SyncResult = { acked: 0, hash: GENESIS, stored: 0, duplicates: 0 };
    // an empty batch is one transaction too: the answer is the stored head
    for (let from = 0; from === 0 || from < batch.length; from += STORE_PART) {
      if (from > 0) await turn(); // whatever the commit function: what waits runs between two parts
      const part = batch.slice(from, from + STORE_PART);
      const p = await this.commit(
        async (tx) => {
          await lockWriters(tx, dialectOf(this.db), `baton:${readerId}`);
          const planned = await this.plan(tx, readerId, part, alerts);
          await this.store(tx, readerId, planned.fresh, at);
          return planned;
        },
        from + STORE_PART < batch.length ? DEFER_SYNC : undefined,
      );
      for (const e of p.fresh) {
        if (e.result.startsWith('clone-suspected') && UID_RE.test(e.cardUid))
          alerts.push({ rule: BATON_RULES.clone, severity: 'critical', subject: `card:${e.cardUid}`, message: `reader ${readerId} saw a card-side counter go backwards on card ${e.cardUid} (clone suspected)`, details: { seq: e.seq, readerId, aid: e.aid, result: e.result } });
      }
      out.acked = p.acked;
      out.hash = p.hash;
      out.stored += p.fresh.length;
      out.duplicates += p.duplicates;
    }
    return out;
  }

  /** Verify and store a batch from `readerId` (the mTLS identity, never a field of the body). */
  async sync(readerId: string, batch: BatonWireEntry[]): Promise<SyncResult> {
    if (!Array.isArray(batch) || batch.length > MAX_BATCH) throw new BatonError('ERR_BATON_BAD_INPUT', `a batch holds at most ${MAX_BATCH} entries`);
    const alerts: PendingAlert[] = [];
    let failure: BatonError | undefined;
    let result: SyncResult | undefined;
    try {
      await this.verify(readerId, batch, alerts);
      // Into the audit log first (it fails closed: nothing is acknowledged that is not audited):
      // each reader operation, then one 'reader.baton' entry for the batch (the audit alert
      // engine's baton-gap rule watches seqFrom/seqTo). Outside the storing transaction (the audit
      // log writes through its own transactions); a concurrent duplicate upload may audit an entry
      // twice, never zero times. In chunks (auditFresh): a chunk's records share the audit log's
      // group commits (awaited one by one they took one commit + WAL fsync each), and a key
      // delivery's entry queued meanwhile is committed after at most one chunk.
      if (this.audit) {
        await turn();
        const pre = await this.plan(this.db, readerId, batch, alerts);
        if (pre.fresh.length) await this.auditFresh(this.audit, readerId, pre.fresh, pre.duplicates);
      }
      result = await this.storeInParts(readerId, batch, alerts);
    } catch (e) {
      if (e instanceof BatonError) failure = e;
      else throw e;
    }
    await this.raise(alerts);
    if (failure) throw failure;
    return result!;
  }

  private async headIn(tx: Kysely<Database>, readerId: string): Promise<{ seq: number; hash: string }> {
    const r = await tx.selectFrom('reader_baton').select(['seq', 'hash']).where('reader_id', '=', readerId).orderBy('seq', 'desc').limit(1).executeTakeFirst();
    return r ? { seq: Number(r.seq), hash: r.hash } : { seq: 0, hash: GENESIS };
  }

  /** Store alerts once each (a reader retrying the same bad batch raises one alert, not many). */
  private async raise(alerts: PendingAlert[]): Promise<void> {
    for (const a of alerts) {
      const details = JSON.stringify(a.details);
      const dup = await this.db.selectFrom('audit_alerts').select('id').where('rule', '=', a.rule).where('subject', '=', a.subject).where('details', '=', details).executeTakeFirst();
      if (dup) continue;
      await this.db
        .insertInto('audit_alerts')
        .values({ id: randomUUID(), time: this.now(), rule: a.rule, severity: a.severity, subject: a.subject, message: a.message, details, entry_idx: null, delivery: 0, delivery_attempts: 0 })
        .execute();
    }
  }

  // ---- denylist -------------------------------------------------------------------------------

  /**
   * The denylist for a reader that holds `token` (the `version` of the last answer it applied;
   * absent: it holds nothing, e.g. after a restart). Unchanged: `delta` with nothing in it; behind
   * by at most DENYLIST_DELTA_MAX changes of a known history: the cards added and removed since
   * (each card's last change); otherwise (no token, unknown token — another history, a restored
   * database — or far behind): the `full` list. Read fresh from the database on every call: a card
   * denied at any time is in the answer of the reader's very next contact.
   */
  async denylistFor(token?: string): Promise<DenylistAnswer> {
    const m = token === undefined ? null : DENYLIST_TOKEN.exec(token);
    if (m && m[1] !== '0') {
      const v = Number(m[1]);
      const at = await this.db.selectFrom('card_denylist_changes').select('nonce').where('version', '=', v).executeTakeFirst();
      if (at && at.nonce === m[2]) {
        const rows = await this.db.selectFrom('card_denylist_changes').select(['version', 'uid', 'denied', 'nonce']).where('version', '>', v).orderBy('version').limit(DENYLIST_DELTA_MAX + 1).execute();
        if (rows.length === 0) return { version: token!, delta: { since: token!, add: [], remove: [] } };
        if (rows.length <= DENYLIST_DELTA_MAX) {
          const last = new Map<string, number>();
          for (const r of rows) last.set(r.uid, Number(r.denied));
          const add: string[] = [];
          const remove: string[] = [];
          for (const [uid, denied] of last) (denied ? add : remove).push(uid);
          const top = rows[rows.length - 1]!;
          return { version: `${top.version}-${top.nonce}`, delta: { since: token!, add, remove } };
        }
      }
    }
    // the version first, then the list: the list holds at least that version's state (a change
    // committed in between is in the list and comes again in the next delta: set operations)
    const head = await this.db.selectFrom('card_denylist_changes').select(['version', 'nonce']).orderBy('version', 'desc').limit(1).executeTakeFirst();
    return { version: head ? `${head.version}-${head.nonce}` : '0-0', full: await this.denylist() };
  }

  async denylist(): Promise<string[]> {
    const rows = await this.db.selectFrom('card_denylist').select('uid').orderBy('uid').execute();
    return rows.map((r) => r.uid);
  }

  async deny(uid: string, reason: string, by: string): Promise<void> {
    const u = uid.toUpperCase();
    if (!UID_RE.test(u)) throw new BatonError('ERR_BATON_BAD_INPUT', 'uid must be 4..10 bytes of hex');
    await this.db
      .insertInto('card_denylist')
      .values({ uid: u, reason, created_by: by, created_at: this.now() })
      .onConflict((oc) => oc.column('uid').doUpdateSet({ reason, created_by: by }))
      .execute();
    await this.pruneChanges();
  }

  /**
   * Drop the change log's rows older than the last DENYLIST_DELTA_MAX changes: no delta can use
   * them (a reader that far behind gets the whole list; its version, no longer found, is unknown —
   * the same answer), so the log stays bounded however many cards go on and off the list. Run
   * after each denylist write of this service; writes by others (the compromise service, direct
   * SQL) are pruned at the next one.
   */
  async pruneChanges(): Promise<void> {
    const head = await this.db.selectFrom('card_denylist_changes').select('version').orderBy('version', 'desc').limit(1).executeTakeFirst();
    if (head && Number(head.version) > DENYLIST_DELTA_MAX) await this.db.deleteFrom('card_denylist_changes').where('version', '<', Number(head.version) - DENYLIST_DELTA_MAX).execute();
  }

  async allow(uid: string): Promise<boolean> {
    const r = await this.db.deleteFrom('card_denylist').where('uid', '=', uid.toUpperCase()).executeTakeFirst();
    await this.pruneChanges();
    return Number(r.numDeletedRows) > 0;
  }
}

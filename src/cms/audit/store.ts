// Where the audit log lives: a small interface (so tests can inject a failing store) and its
// SQL implementation over the shared Kysely database (SQLite or PostgreSQL).
import type { Statement } from 'better-sqlite3';
import type { DatabaseHandle } from '../storage/index.js';
import { getSetting, setSetting, withTransaction, withWriterLock } from '../storage/tx.js';
import type { AuditEntry, Json } from './entry.js';
import type { AuditAlertTable, AuditEntryTable } from './tables.js';

export interface StoredCheckpoint {
  size: number;
  root: Uint8Array;
  note: string;
  createdAt: number;
}

export interface EntryQuery {
  /** First index (inclusive). */
  from?: number;
  /** Last index (exclusive). */
  to?: number;
  limit?: number;
  tenant?: string;
  aids?: string[];
  cardUid?: string;
  readerId?: string;
}

export type AlertRow = AuditAlertTable;

export interface AuditStore {
  /**
   * Append entries atomically: assign consecutive indexes after the current end (serialised
   * across processes), store bodies and leaf hashes in ONE transaction, durable on return.
   */
  append(entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array): Promise<{ start: number; leaves: Uint8Array[] }>;
  size(): Promise<number>;
  /** Leaf hashes of [from, to) in index order. */
  leaves(from: number, to: number): Promise<{ idx: number; leaf: Uint8Array }[]>;
  entries(q: EntryQuery): Promise<AuditEntry[]>;
  saveCheckpoint(cp: StoredCheckpoint): Promise<void>;
  checkpoints(): Promise<StoredCheckpoint[]>;
  latestCheckpoint(): Promise<StoredCheckpoint | undefined>;
  checkpointAt(size: number): Promise<StoredCheckpoint | undefined>;
  /**
   * Delete entry bodies with idx < beforeIndex and time < olderThan; leaf hashes stay. Records
   * the retention watermark (a missing body at or above it is a deletion, not retention).
   */
  pruneBodies(beforeIndex: number, olderThan: number): Promise<number>;
  /** Indexes below this may have had their bodies pruned by retention. */
  prunedBefore(): Promise<number>;
  saveAlert(a: AlertRow): Promise<void>;
  alerts(q: { since?: number; limit?: number; rule?: string; undelivered?: boolean }): Promise<AlertRow[]>;
  markAlert(id: string, delivery: number, attempts: number): Promise<void>;
}

const CHUNK = 500;
/** Rows per multi-row INSERT on the SQLite hot path (13 parameters a row). */
const SQLITE_ROWS = 64;
const PRUNED = 'audit.pruned_before';

function toRow(e: AuditEntry): AuditEntryTable {
  return {
    idx: e.index,
    time: e.time,
    actor: e.actor,
    reader_id: e.readerId,
    card_uid: e.cardUid,
    tenant: e.tenant,
    aid: e.aid,
    key_no: e.keyNo,
    key_version: e.keyVersion,
    operation: e.operation,
    result: e.result,
    correlation_id: e.correlationId,
    details: JSON.stringify(e.details),
  };
}

export function fromRow(r: AuditEntryTable): AuditEntry {
  return {
    index: Number(r.idx),
    time: Number(r.time),
    actor: r.actor,
    readerId: r.reader_id,
    cardUid: r.card_uid,
    tenant: r.tenant,
    aid: r.aid,
    keyNo: r.key_no === null ? null : Number(r.key_no),
    keyVersion: r.key_version === null ? null : Number(r.key_version),
    operation: r.operation,
    result: r.result,
    correlationId: r.correlation_id,
    details: JSON.parse(r.details) as Record<string, Json>,
  };
}

export class SqlAuditStore implements AuditStore {
  private native?: { max: Statement; entry: Statement; entries: Statement; leaf: Statement; leaves: Statement; lock: Statement };

  constructor(private readonly h: DatabaseHandle) {}

  async append(entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array): Promise<{ start: number; leaves: Uint8Array[] }> {
    if (this.h.sqlite) return this.appendSqlite(entries, leafOf);
    return withWriterLock(this.h.db, this.h.dialect, 'audit-append', async (tx) => {
      const row = await tx
        .selectFrom('audit_leaves')
        .select((eb) => eb.fn.max('idx').as('m'))
        .executeTakeFirst();
      const start = row?.m === null || row?.m === undefined ? 0 : Number(row.m) + 1;
      const full = entries.map((e, i) => ({ ...e, index: start + i }));
      const leaves = full.map(leafOf);
      for (let i = 0; i < full.length; i += CHUNK) {
        const part = full.slice(i, i + CHUNK);
        await tx.insertInto('audit_entries').values(part.map(toRow)).execute();
        await tx
          .insertInto('audit_leaves')
          .values(part.map((e, j) => ({ idx: e.index, leaf_hash: leaves[i + j]! })))
          .execute();
      }
      return { start, leaves };
    });
  }

  /**
   * SQLite hot path: prepared statements on the native connection, in one BEGIN IMMEDIATE
   * transaction (one fsync per batch with synchronous=FULL), while holding Kysely's
   * connection lock so no Kysely transaction interleaves.
   */
  private appendSqlite(entries: Omit<AuditEntry, 'index'>[], leafOf: (e: AuditEntry) => Uint8Array): Promise<{ start: number; leaves: Uint8Array[] }> {
    const n = this.h.sqlite!;
    if (!this.native) {
      const cols = '(idx, time, actor, reader_id, card_uid, tenant, aid, key_no, key_version, operation, result, correlation_id, details)';
      const row = '(?,?,?,?,?,?,?,?,?,?,?,?,?)';
      this.native = {
        max: n.prepare('select max(idx) as m from audit_leaves'),
        entry: n.prepare(`insert into audit_entries ${cols} values ${row}`),
        entries: n.prepare(`insert into audit_entries ${cols} values ${Array(SQLITE_ROWS).fill(row).join(',')}`),
        leaf: n.prepare('insert into audit_leaves (idx, leaf_hash) values (?, ?)'),
        leaves: n.prepare(`insert into audit_leaves (idx, leaf_hash) values ${Array(SQLITE_ROWS).fill('(?,?)').join(',')}`),
        lock: n.prepare("update meta_settings set value = value where name = 'lock:audit-append'"),
      };
    }
    const st = this.native;
    const tx = n.transaction(() => {
      st.lock.run();
      const m = (st.max.get() as { m: number | null }).m;
      const start = m === null ? 0 : m + 1;
      const leaves: Uint8Array[] = new Array<Uint8Array>(entries.length);
      // multi-row statements of SQLITE_ROWS rows (fewer statement executions), singles for the rest
      const ea: unknown[] = [];
      const la: unknown[] = [];
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        const idx = start + i;
        const l = leafOf({ ...e, index: idx });
        leaves[i] = l;
        ea.push(idx, e.time, e.actor, e.readerId, e.cardUid, e.tenant, e.aid, e.keyNo, e.keyVersion, e.operation, e.result, e.correlationId, JSON.stringify(e.details));
        la.push(idx, l);
        if (la.length === 2 * SQLITE_ROWS) {
          st.entries.run(ea);
          st.leaves.run(la);
          ea.length = 0;
          la.length = 0;
        }
      }
      for (let k = 0; k < la.length / 2; k++) {
        st.entry.run(ea.slice(k * 13, k * 13 + 13));
        st.leaf.run(la[2 * k], la[2 * k + 1]);
      }
      return { start, leaves };
    });
    return this.h.db.connection().execute(async () => tx.immediate());
  }

  async size(): Promise<number> {
    const row = await this.h.db
      .selectFrom('audit_leaves')
      .select((eb) => eb.fn.max('idx').as('m'))
      .executeTakeFirst();
    return row?.m === null || row?.m === undefined ? 0 : Number(row.m) + 1;
  }

  async leaves(from: number, to: number): Promise<{ idx: number; leaf: Uint8Array }[]> {
    const rows = await this.h.db.selectFrom('audit_leaves').selectAll().where('idx', '>=', from).where('idx', '<', to).orderBy('idx').execute();
    return rows.map((r) => ({ idx: Number(r.idx), leaf: new Uint8Array(r.leaf_hash) }));
  }

  async entries(q: EntryQuery): Promise<AuditEntry[]> {
    let s = this.h.db.selectFrom('audit_entries').selectAll();
    if (q.from !== undefined) s = s.where('idx', '>=', q.from);
    if (q.to !== undefined) s = s.where('idx', '<', q.to);
    if (q.tenant !== undefined && q.aids?.length) {
      const { tenant, aids } = q;
      s = s.where((eb) => eb.or([eb('tenant', '=', tenant), eb('aid', 'in', aids)]));
    } else if (q.tenant !== undefined) s = s.where('tenant', '=', q.tenant);
    else if (q.aids?.length) s = s.where('aid', 'in', q.aids);
    if (q.cardUid !== undefined) s = s.where('card_uid', '=', q.cardUid);
    if (q.readerId !== undefined) s = s.where('reader_id', '=', q.readerId);
    const rows = await s.orderBy('idx').limit(q.limit ?? 1000).execute();
    return rows.map(fromRow);
  }

  async saveCheckpoint(cp: StoredCheckpoint): Promise<void> {
    await this.h.db
      .insertInto('audit_checkpoints')
      .values({ tree_size: cp.size, root_hash: cp.root, note: cp.note, created_at: cp.createdAt })
      .onConflict((oc) => oc.column('tree_size').doNothing())
      .execute();
  }

  async checkpoints(): Promise<StoredCheckpoint[]> {
    const rows = await this.h.db.selectFrom('audit_checkpoints').selectAll().orderBy('tree_size').execute();
    return rows.map((r) => ({ size: Number(r.tree_size), root: new Uint8Array(r.root_hash), note: r.note, createdAt: Number(r.created_at) }));
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const r = await this.h.db.selectFrom('audit_checkpoints').selectAll().orderBy('tree_size', 'desc').limit(1).executeTakeFirst();
    return r && { size: Number(r.tree_size), root: new Uint8Array(r.root_hash), note: r.note, createdAt: Number(r.created_at) };
  }

  async checkpointAt(size: number): Promise<StoredCheckpoint | undefined> {
    const r = await this.h.db.selectFrom('audit_checkpoints').selectAll().where('tree_size', '=', size).executeTakeFirst();
    return r && { size: Number(r.tree_size), root: new Uint8Array(r.root_hash), note: r.note, createdAt: Number(r.created_at) };
  }

  async pruneBodies(beforeIndex: number, olderThan: number): Promise<number> {
    return withTransaction(this.h.db, async (tx) => {
      const top = await tx
        .selectFrom('audit_entries')
        .select((eb) => eb.fn.max('idx').as('m'))
        .where('idx', '<', beforeIndex)
        .where('time', '<', olderThan)
        .executeTakeFirst();
      const res = await tx.deleteFrom('audit_entries').where('idx', '<', beforeIndex).where('time', '<', olderThan).executeTakeFirst();
      const prev = Number((await getSetting(tx, PRUNED)) ?? 0);
      const mark = top?.m === null || top?.m === undefined ? 0 : Number(top.m) + 1;
      if (mark > prev) await setSetting(tx, PRUNED, String(mark));
      return Number(res.numDeletedRows);
    });
  }

  async prunedBefore(): Promise<number> {
    return Number((await getSetting(this.h.db, PRUNED)) ?? 0);
  }

  async saveAlert(a: AlertRow): Promise<void> {
    await this.h.db.insertInto('audit_alerts').values(a).execute();
  }

  async alerts(q: { since?: number; limit?: number; rule?: string; undelivered?: boolean }): Promise<AlertRow[]> {
    let s = this.h.db.selectFrom('audit_alerts').selectAll();
    if (q.since !== undefined) s = s.where('time', '>=', q.since);
    if (q.rule !== undefined) s = s.where('rule', '=', q.rule);
    if (q.undelivered) s = s.where('delivery', '=', 0);
    const rows = await s.orderBy('time').orderBy('id').limit(q.limit ?? 1000).execute();
    return rows.map((r) => ({ ...r, time: Number(r.time), entry_idx: r.entry_idx === null ? null : Number(r.entry_idx) }));
  }

  async markAlert(id: string, delivery: number, attempts: number): Promise<void> {
    await this.h.db.updateTable('audit_alerts').set({ delivery, delivery_attempts: attempts }).where('id', '=', id).execute();
  }
}

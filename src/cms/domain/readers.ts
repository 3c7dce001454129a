// Readers: registration, state (active ⇄ suspended → revoked), their certificate, and roles that
// grant (tenant, AID, keyNo, operations). authorise() is the one check every key release and job
// goes through.
import { READER_ID_RE } from '../pki/enrolment.js';
import { DomainError } from './errors.js';
import { checkReaderTransition, isReaderState, type ReaderState } from './lifecycle.js';
import { atomic, checkAid, checkInt, inserted, updated, type Db } from './db.js';

/** What a role may do with its (AID, keyNo). */
export const OPERATIONS = [
  'deliver', // receive the card key online (sealed)
  'offline', // keep the per-card keys received online in the reader's offline cache
  'offline-master', // receive the AN10922 master itself for offline use (wider blast radius; src/cms/delivery/masters.ts)
  'install', // station: install / delete the application
  'issue', // station: personalise blank cards (PICC level)
  'rotate', // change the key to a new version in the field
] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface Reader {
  id: string;
  name: string;
  state: ReaderState;
  certSerial: string | null;
  certNotAfter: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface ReaderRole {
  readerId: string;
  tenantId: string;
  aid: string;
  keyNo: number;
  operations: Operation[];
}

type ReaderRow = {
  id: string;
  name: string;
  state: string;
  cert_serial: string | null;
  cert_pem: string | null;
  cert_not_after: number | null;
  created_at: number;
  updated_at: number;
};

function toReader(r: ReaderRow): Reader {
  if (!isReaderState(r.state)) throw new DomainError('ERR_DOMAIN_STATE', `reader ${r.id} has an unknown state in storage`);
  return {
    id: r.id,
    name: r.name,
    state: r.state,
    certSerial: r.cert_serial,
    certNotAfter: r.cert_not_after === null ? null : Number(r.cert_not_after),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

function checkReaderId(id: unknown): string {
  if (typeof id !== 'string' || !READER_ID_RE.test(id)) throw new DomainError('ERR_DOMAIN_BAD_INPUT', 'reader id must match [a-z0-9][a-z0-9._-]{0,62}');
  return id;
}

function checkOperations(ops: unknown): Operation[] {
  if (!Array.isArray(ops) || ops.length === 0 || !ops.every((o) => (OPERATIONS as readonly unknown[]).includes(o)))
    throw new DomainError('ERR_DOMAIN_BAD_INPUT', `operations must be a non-empty list of: ${OPERATIONS.join(', ')}`);
  return [...new Set(ops as Operation[])].sort();
}

const norm = (serial: string) => serial.toLowerCase().replace(/^0+(?=.)/, '');

export class ReaderRepository {
  constructor(private readonly db: Db) {}

  /** Register a reader (active, no certificate yet: it enrols with a one-time code). */
  async register(id: string, name: string, now = Date.now()): Promise<Reader> {
    const rid = checkReaderId(id);
    if (typeof name !== 'string' || name.length < 1 || name.length > 128) throw new DomainError('ERR_DOMAIN_BAD_INPUT', 'reader name must be 1..128 characters');
    const row: ReaderRow = { id: rid, name, state: 'active', cert_serial: null, cert_pem: null, cert_not_after: null, created_at: now, updated_at: now };
    const r = await this.db.insertInto('readers').values(row).onConflict((oc) => oc.column('id').doNothing()).executeTakeFirst();
    if (!inserted(r)) throw new DomainError('ERR_DOMAIN_CONFLICT', `reader ${rid} already exists`);
    return toReader(row);
  }

  async get(id: string): Promise<Reader | undefined> {
    const r = await this.db.selectFrom('readers').selectAll().where('id', '=', checkReaderId(id)).executeTakeFirst();
    return r ? toReader(r) : undefined;
  }

  async require(id: string): Promise<Reader> {
    const r = await this.get(id);
    if (!r) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `reader ${id} not found`);
    return r;
  }

  /** For verifyReaderCertificate: the reader's state, undefined when unknown. */
  async state(id: string): Promise<ReaderState | undefined> {
    if (typeof id !== 'string' || !READER_ID_RE.test(id)) return undefined;
    return (await this.get(id))?.state;
  }

  async certificatePem(id: string): Promise<string | undefined> {
    const r = await this.db.selectFrom('readers').select('cert_pem').where('id', '=', checkReaderId(id)).executeTakeFirst();
    return r?.cert_pem ?? undefined;
  }

  /**
   * Attach a newly issued certificate (after enrolment). The previous certificate, if any, is
   * revoked in the same transaction. A revoked reader never gets a certificate again.
   */
  async attachCertificate(id: string, cert: { serial: string; pem: string; notAfter: number }, now = Date.now()): Promise<void> {
    const rid = checkReaderId(id);
    await atomic(this.db, async (tx) => {
      const r = await tx.selectFrom('readers').select(['state', 'cert_serial']).where('id', '=', rid).executeTakeFirst();
      if (!r) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `reader ${rid} not found`);
      if (r.state === 'revoked') throw new DomainError('ERR_DOMAIN_STATE', `reader ${rid} is revoked`);
      if (r.cert_serial)
        await tx
          .insertInto('revoked_certificates')
          .values({ serial: norm(r.cert_serial), reason: 'superseded', revoked_at: now })
          .onConflict((oc) => oc.column('serial').doNothing())
          .execute();
      await tx
        .updateTable('readers')
        .set({ cert_serial: norm(cert.serial), cert_pem: cert.pem, cert_not_after: cert.notAfter, updated_at: now })
        .where('id', '=', rid)
        .execute();
    });
  }

  /** Change state; revoking also revokes the current certificate (same transaction). */
  async setState(id: string, to: ReaderState, now = Date.now()): Promise<Reader> {
    const rid = checkReaderId(id);
    return atomic(this.db, async (tx) => {
      const r = await tx.selectFrom('readers').selectAll().where('id', '=', rid).executeTakeFirst();
      if (!r) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `reader ${rid} not found`);
      const reader = toReader(r);
      checkReaderTransition(reader.state, to);
      const u = await tx.updateTable('readers').set({ state: to, updated_at: now }).where('id', '=', rid).where('state', '=', reader.state).executeTakeFirst();
      if (!updated(u)) throw new DomainError('ERR_DOMAIN_CONFLICT', `reader ${rid} changed state concurrently`);
      if (to === 'revoked' && reader.certSerial)
        await tx
          .insertInto('revoked_certificates')
          .values({ serial: norm(reader.certSerial), reason: 'reader revoked', revoked_at: now })
          .onConflict((oc) => oc.column('serial').doNothing())
          .execute();
      return { ...reader, state: to, updatedAt: now };
    });
  }

  /** Grant (or replace) a role: the reader may perform `operations` with key `keyNo` of `aid`. */
  async grantRole(role: ReaderRole, now = Date.now()): Promise<ReaderRole> {
    const rid = checkReaderId(role.readerId);
    const aid = checkAid(role.aid);
    const keyNo = checkInt('keyNo', role.keyNo, 0, 13);
    const operations = checkOperations(role.operations);
    return atomic(this.db, async (tx) => {
      const reader = await tx.selectFrom('readers').select('state').where('id', '=', rid).executeTakeFirst();
      if (!reader) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `reader ${rid} not found`);
      if (reader.state === 'revoked') throw new DomainError('ERR_DOMAIN_STATE', `reader ${rid} is revoked`);
      const app = await tx.selectFrom('applications').select(['tenant_id', 'key_count']).where('aid', '=', aid).executeTakeFirst();
      if (!app) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `application ${aid} not registered`);
      if (app.tenant_id !== role.tenantId)
        throw new DomainError('ERR_DOMAIN_CONFLICT', `application ${aid} does not belong to tenant ${String(role.tenantId)}`);
      if (keyNo >= Number(app.key_count)) throw new DomainError('ERR_DOMAIN_BAD_INPUT', `application ${aid} has no key ${keyNo}`);
      const ops = JSON.stringify(operations);
      await tx
        .insertInto('reader_roles')
        .values({ reader_id: rid, tenant_id: app.tenant_id, aid, key_no: keyNo, operations: ops, created_at: now })
        .onConflict((oc) => oc.columns(['reader_id', 'aid', 'key_no']).doUpdateSet({ operations: ops }))
        .execute();
      return { readerId: rid, tenantId: app.tenant_id, aid, keyNo, operations };
    });
  }

  async revokeRole(readerId: string, aid: string, keyNo: number): Promise<boolean> {
    const r = await this.db
      .deleteFrom('reader_roles')
      .where('reader_id', '=', checkReaderId(readerId))
      .where('aid', '=', checkAid(aid))
      .where('key_no', '=', checkInt('keyNo', keyNo, 0, 13))
      .executeTakeFirst();
    return (r.numDeletedRows ?? 0n) > 0n;
  }

  async roles(readerId: string): Promise<ReaderRole[]> {
    const rows = await this.db.selectFrom('reader_roles').selectAll().where('reader_id', '=', checkReaderId(readerId)).orderBy('aid').orderBy('key_no').execute();
    return rows.map((r) => ({
      readerId: r.reader_id,
      tenantId: r.tenant_id,
      aid: r.aid,
      keyNo: Number(r.key_no),
      operations: JSON.parse(r.operations) as Operation[],
    }));
  }

  /**
   * The one authorisation check: the reader exists, is active, and holds a role granting
   * `operation` on (aid, keyNo). Returns that role; otherwise ERR_DOMAIN_FORBIDDEN (one code for
   * every reason, the message says which).
   */
  async authorise(readerId: string, req: { aid: string; keyNo: number; operation: Operation }): Promise<ReaderRole> {
    const rid = checkReaderId(readerId);
    const aid = checkAid(req.aid);
    const keyNo = checkInt('keyNo', req.keyNo, 0, 13);
    const reader = await this.db.selectFrom('readers').select('state').where('id', '=', rid).executeTakeFirst();
    if (!reader) throw new DomainError('ERR_DOMAIN_FORBIDDEN', `reader ${rid} is unknown`);
    if (reader.state !== 'active') throw new DomainError('ERR_DOMAIN_FORBIDDEN', `reader ${rid} is ${reader.state}`);
    const role = await this.db
      .selectFrom('reader_roles')
      .selectAll()
      .where('reader_id', '=', rid)
      .where('aid', '=', aid)
      .where('key_no', '=', keyNo)
      .executeTakeFirst();
    const ops = role ? (JSON.parse(role.operations) as Operation[]) : [];
    if (!role || !ops.includes(req.operation))
      throw new DomainError('ERR_DOMAIN_FORBIDDEN', `reader ${rid} has no role for ${req.operation} on ${aid} key ${keyNo}`);
    return { readerId: rid, tenantId: role.tenant_id, aid, keyNo, operations: ops };
  }
}

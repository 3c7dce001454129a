// SQL implementations of the PKI's store interfaces (src/cms/pki): enrolment codes, certificate
// revocations and the CMS's own wrapped keys, shared by every CMS process on one database.
import type { CaKeyStore, StoredKeyRecord } from '../pki/keystore.js';
import type { EnrolmentCodeRecord, EnrolmentCodeStore } from '../pki/enrolment.js';
import type { RevocationList, RevokedEntry } from '../pki/revocation.js';
import { DomainError } from './errors.js';
import { inserted, type Db } from './db.js';

const norm = (serial: string) => serial.toLowerCase().replace(/^0+(?=.)/, '');

export class SqlEnrolmentCodeStore implements EnrolmentCodeStore {
  constructor(private readonly db: Db) {}

  async insert(rec: EnrolmentCodeRecord): Promise<void> {
    const r = await this.db
      .insertInto('enrolment_codes')
      .values({
        code_hash: rec.codeHash,
        reader_id: rec.readerId,
        created_by: rec.createdBy,
        created_at: rec.createdAt,
        expires_at: rec.expiresAt,
        used_at: rec.usedAt ?? null,
      })
      .onConflict((oc) => oc.column('code_hash').doNothing())
      .executeTakeFirst();
    if (!inserted(r)) throw new DomainError('ERR_DOMAIN_CONFLICT', 'duplicate enrolment code');
  }

  /** One UPDATE … WHERE unused AND unexpired RETURNING: atomic on SQLite and PostgreSQL. */
  async consume(codeHash: string, now: number): Promise<EnrolmentCodeRecord | undefined> {
    const r = await this.db
      .updateTable('enrolment_codes')
      .set({ used_at: now })
      .where('code_hash', '=', codeHash)
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .returningAll()
      .executeTakeFirst();
    if (!r) return undefined;
    return {
      codeHash: r.code_hash,
      readerId: r.reader_id,
      createdBy: r.created_by,
      createdAt: Number(r.created_at),
      expiresAt: Number(r.expires_at),
      usedAt: now,
    };
  }
}

export class SqlRevocationList implements RevocationList {
  constructor(private readonly db: Db) {}

  async revoke(serial: string, reason: string, at = new Date()): Promise<void> {
    await this.db
      .insertInto('revoked_certificates')
      .values({ serial: norm(serial), reason, revoked_at: at.getTime() })
      .onConflict((oc) => oc.column('serial').doNothing())
      .execute();
  }

  async isRevoked(serial: string): Promise<boolean> {
    const r = await this.db.selectFrom('revoked_certificates').select('serial').where('serial', '=', norm(serial)).executeTakeFirst();
    return r !== undefined;
  }

  async list(): Promise<RevokedEntry[]> {
    const rows = await this.db.selectFrom('revoked_certificates').selectAll().orderBy('revoked_at').execute();
    return rows.map((r) => ({ serial: r.serial, reason: r.reason, revokedAt: new Date(Number(r.revoked_at)) }));
  }
}

export class SqlCaKeyStore implements CaKeyStore {
  constructor(private readonly db: Db) {}

  async load(name: string): Promise<StoredKeyRecord | undefined> {
    const r = await this.db.selectFrom('cms_keys').selectAll().where('name', '=', name).executeTakeFirst();
    return r ? { publicPem: r.public_pem, wrappedPrivateKey: r.wrapped_private_key, createdAt: r.created_at } : undefined;
  }

  async saveIfAbsent(name: string, rec: StoredKeyRecord): Promise<boolean> {
    const r = await this.db
      .insertInto('cms_keys')
      .values({ name, public_pem: rec.publicPem, wrapped_private_key: rec.wrappedPrivateKey, created_at: rec.createdAt })
      .onConflict((oc) => oc.column('name').doNothing())
      .executeTakeFirst();
    return inserted(r);
  }
}

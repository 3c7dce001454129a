// CMS domain tables (engineer F): tenants, applications, cards and their CardUID <-> AID <-> key
// versions mapping, readers and their roles, enrolment codes, revoked certificates, the CMS's own
// wrapped keys. Types in src/cms/domain/tables.ts.
import type { Kysely } from 'kysely';
import { dialectOf, types } from '../dialect.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const t = types(dialectOf(db));
  await db.schema
    .createTable('tenants')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('applications')
    .addColumn('aid', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('key_type', 'text', (c) => c.notNull())
    .addColumn('key_count', 'integer', (c) => c.notNull())
    .addColumn('layout_name', 'text', (c) => c.notNull())
    .addColumn('definition', 'text', (c) => c.notNull())
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('applications_tenant').on('applications').column('tenant_id').execute();
  await db.schema
    .createTable('cards')
    .addColumn('uid', 'text', (c) => c.primaryKey())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('random_uid', 'integer', (c) => c.notNull())
    .addColumn('picc_key_version', 'integer', (c) => c.notNull())
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addColumn('updated_at', t.bigint, (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('card_applications')
    .addColumn('uid', 'text', (c) => c.notNull().references('cards.uid'))
    .addColumn('aid', 'text', (c) => c.notNull().references('applications.aid'))
    .addColumn('installed_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('card_applications_pk', ['uid', 'aid'])
    .execute();
  await db.schema.createIndex('card_applications_aid').on('card_applications').columns(['aid', 'uid']).execute();
  await db.schema
    .createTable('card_keys')
    .addColumn('uid', 'text', (c) => c.notNull())
    .addColumn('aid', 'text', (c) => c.notNull())
    .addColumn('key_no', 'integer', (c) => c.notNull())
    .addColumn('key_version', 'integer', (c) => c.notNull())
    .addColumn('updated_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('card_keys_pk', ['uid', 'aid', 'key_no'])
    .addForeignKeyConstraint('card_keys_app_fk', ['uid', 'aid'], 'card_applications', ['uid', 'aid'], (c) => c.onDelete('cascade'))
    .execute();
  await db.schema.createIndex('card_keys_version').on('card_keys').columns(['aid', 'key_no', 'key_version']).execute();
  await db.schema
    .createTable('readers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('cert_serial', 'text')
    .addColumn('cert_pem', 'text')
    .addColumn('cert_not_after', t.bigint)
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addColumn('updated_at', t.bigint, (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('reader_roles')
    .addColumn('reader_id', 'text', (c) => c.notNull().references('readers.id'))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
    .addColumn('aid', 'text', (c) => c.notNull().references('applications.aid'))
    .addColumn('key_no', 'integer', (c) => c.notNull())
    .addColumn('operations', 'text', (c) => c.notNull())
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('reader_roles_pk', ['reader_id', 'aid', 'key_no'])
    .execute();
  await db.schema
    .createTable('enrolment_codes')
    .addColumn('code_hash', 'text', (c) => c.primaryKey())
    .addColumn('reader_id', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addColumn('expires_at', t.bigint, (c) => c.notNull())
    .addColumn('used_at', t.bigint)
    .execute();
  await db.schema
    .createTable('revoked_certificates')
    .addColumn('serial', 'text', (c) => c.primaryKey())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('revoked_at', t.bigint, (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('cms_keys')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('public_pem', 'text', (c) => c.notNull())
    .addColumn('wrapped_private_key', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['cms_keys', 'revoked_certificates', 'enrolment_codes', 'reader_roles', 'readers', 'card_keys', 'card_applications', 'cards', 'applications', 'tenants'])
    await db.schema.dropTable(t).execute();
}

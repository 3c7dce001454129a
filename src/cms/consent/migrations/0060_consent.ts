// Tenant authorisations, authorisation requests, cardholder consent records and pending deletions
// (engineer K, numbers 0060-0069). Types in ../tables.ts.
import type { Kysely } from 'kysely';
import { dialectOf, types } from '../../storage/dialect.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const t = types(dialectOf(db));
  await db.schema
    .createTable('consent_authorisations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('aid', 'text', (c) => c.notNull())
    .addColumn('operation', 'text', (c) => c.notNull())
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('card_uids', 'text')
    .addColumn('card_profile', 'text')
    .addColumn('valid_from', t.bigint, (c) => c.notNull())
    .addColumn('expires_at', t.bigint, (c) => c.notNull())
    .addColumn('granted_by', 'text', (c) => c.notNull())
    .addColumn('request_id', 'text')
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addColumn('revoked_at', t.bigint)
    .addColumn('revoked_by', 'text')
    .execute();
  await db.schema.createIndex('consent_authorisations_lookup').on('consent_authorisations').columns(['tenant_id', 'aid', 'operation']).execute();
  await db.schema
    .createTable('consent_requests')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('aid', 'text', (c) => c.notNull())
    .addColumn('operation', 'text', (c) => c.notNull())
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('card_uids', 'text')
    .addColumn('card_profile', 'text')
    .addColumn('ttl_seconds', 'integer', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addColumn('decided_by', 'text')
    .addColumn('decided_at', t.bigint)
    .addColumn('decision_reason', 'text')
    .addColumn('authorisation_id', 'text')
    .execute();
  await db.schema.createIndex('consent_requests_tenant').on('consent_requests').columns(['tenant_id', 'state']).execute();
  await db.schema
    .createTable('cardholder_consents')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('uid', 'text', (c) => c.notNull())
    .addColumn('aid', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('cardholder', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('given_at', t.bigint, (c) => c.notNull())
    .addColumn('recorded_by', 'text', (c) => c.notNull())
    .addColumn('evidence', 'text')
    .addColumn('withdrawn_at', t.bigint)
    .addColumn('withdrawn_by', 'text')
    .execute();
  await db.schema.createIndex('cardholder_consents_card').on('cardholder_consents').columns(['uid', 'aid']).execute();
  await db.schema
    .createTable('pending_deletions')
    .addColumn('uid', 'text', (c) => c.notNull())
    .addColumn('aid', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('consent_id', 'text')
    .addColumn('authorisation_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addColumn('done_at', t.bigint)
    .addPrimaryKeyConstraint('pending_deletions_pk', ['uid', 'aid', 'created_at'])
    .execute();
  await db.schema.createIndex('pending_deletions_card').on('pending_deletions').columns(['uid', 'state']).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['pending_deletions', 'cardholder_consents', 'consent_requests', 'consent_authorisations']) await db.schema.dropTable(t).ifExists().execute();
}

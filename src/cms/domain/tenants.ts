// Tenants and their applications (AIDs), registered from a linted layout in one transaction.
import type { ExpressionBuilder } from 'kysely';
import type { Database } from '../storage/database.js';
import { applicationsOf, lintLayout, type Layout, type LayoutApplication } from '../layout/index.js';
import { DomainError } from './errors.js';
import { lockWriters } from '../storage/tx.js';
import { dialectOf } from '../storage/dialect.js';
import { ISSUER_TENANT, atomic, checkAid, checkTenantId, inserted, type Db } from './db.js';

export { ISSUER_TENANT };

export interface Tenant {
  id: string;
  name: string;
  createdAt: number;
}

export interface Application {
  aid: string;
  tenantId: string;
  name: string;
  keyType: string;
  keyCount: number;
  layoutName: string;
  /** The normalised application layout (positions dropped). */
  definition: Omit<LayoutApplication, 'pos'>;
  createdAt: number;
}

type AppRow = {
  aid: string;
  tenant_id: string;
  name: string;
  key_type: string;
  key_count: number;
  layout_name: string;
  definition: string;
  created_at: number;
};

function toApp(r: AppRow): Application {
  return {
    aid: r.aid,
    tenantId: r.tenant_id,
    name: r.name,
    keyType: r.key_type,
    keyCount: Number(r.key_count),
    layoutName: r.layout_name,
    definition: JSON.parse(r.definition) as Application['definition'],
    createdAt: Number(r.created_at),
  };
}

/** The stored form of an application's layout: no source positions, stable key order. */
export function definitionOf(app: LayoutApplication): string {
  return JSON.stringify(app, (k, v: unknown) => (k === 'pos' ? undefined : v));
}

export class TenantRepository {
  constructor(private readonly db: Db) {}

  async createTenant(id: string, name: string, now = Date.now()): Promise<Tenant> {
    checkTenantId(id);
    if (typeof name !== 'string' || name.length < 1 || name.length > 128) throw new DomainError('ERR_DOMAIN_BAD_INPUT', 'tenant name must be 1..128 characters');
    if (await this.db.selectFrom('tenant_deletions').select('tenant_id').where('tenant_id', '=', id).executeTakeFirst()) throw new DomainError('ERR_DOMAIN_CONFLICT', `tenant ${id} was deleted; a deleted tenant's id is not reused`);
    const r = await this.db.insertInto('tenants').values({ id, name, created_at: now }).onConflict((oc) => oc.column('id').doNothing()).executeTakeFirst();
    if (!inserted(r)) throw new DomainError('ERR_DOMAIN_CONFLICT', `tenant ${id} already exists`);
    return { id, name, createdAt: now };
  }

  async tenant(id: string): Promise<Tenant | undefined> {
    const r = await this.db.selectFrom('tenants').selectAll().where('id', '=', id).where(notDeleted).executeTakeFirst();
    return r ? { id: r.id, name: r.name, createdAt: Number(r.created_at) } : undefined;
  }

  async tenants(): Promise<Tenant[]> {
    const rows = await this.db.selectFrom('tenants').selectAll().where(notDeleted).orderBy('id').execute();
    return rows.map((r) => ({ id: r.id, name: r.name, createdAt: Number(r.created_at) }));
  }

  async application(aid: string): Promise<Application | undefined> {
    const r = await this.db.selectFrom('applications').selectAll().where('aid', '=', checkAid(aid)).executeTakeFirst();
    return r ? toApp(r) : undefined;
  }

  async applications(tenantId?: string): Promise<Application[]> {
    let q = this.db.selectFrom('applications').selectAll();
    if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
    return (await q.orderBy('aid').execute()).map(toApp);
  }

  /**
   * Register every tenant and application of a layout, atomically. The layout must lint without
   * errors (ERR_DOMAIN_LAYOUT_FINDINGS lists the rule ids otherwise). Re-registering the identical
   * layout is a no-op; an AID already registered differently, or to another tenant, is a conflict
   * and nothing is written.
   */
  async registerLayout(layout: Layout, now = Date.now()): Promise<{ tenants: string[]; applications: string[] }> {
    const errors = lintLayout(layout).filter((f) => f.severity === 'error');
    if (errors.length > 0) {
      const rules = [...new Set(errors.map((f) => f.rule))];
      throw new DomainError('ERR_DOMAIN_LAYOUT_FINDINGS', `layout breaks isolation rules: ${rules.join(', ')}`, {
        rules,
        findings: errors.map((f) => ({ rule: f.rule, pointer: f.pointer, line: f.line, col: f.col, message: f.message })),
      });
    }
    for (const t of layout.tenants) checkTenantId(t.id);
    return atomic(this.db, async (tx) => {
      // Serialise layout registrations across processes (PostgreSQL advisory lock / SQLite
      // RESERVED lock), so two registering the same layout see each other's rows, not a PK error.
      await lockWriters(tx as Parameters<typeof lockWriters>[0], dialectOf(tx), 'domain-layout');
      const newTenants: string[] = [];
      const newApps: string[] = [];
      for (const t of layout.tenants) {
        if (await tx.selectFrom('tenant_deletions').select('tenant_id').where('tenant_id', '=', t.id).executeTakeFirst())
          throw new DomainError('ERR_DOMAIN_CONFLICT', `tenant ${t.id} was deleted; a deleted tenant's id is not reused`, { tenant: t.id });
        const existing = await tx.selectFrom('tenants').select('id').where('id', '=', t.id).executeTakeFirst();
        if (!existing) {
          await tx.insertInto('tenants').values({ id: t.id, name: t.name, created_at: now }).execute();
          newTenants.push(t.id);
        }
      }
      for (const app of applicationsOf(layout)) {
        const def = definitionOf(app);
        const row = await tx.selectFrom('applications').select(['tenant_id', 'definition']).where('aid', '=', app.aid).executeTakeFirst();
        if (row) {
          if (row.tenant_id !== app.tenantId)
            throw new DomainError('ERR_DOMAIN_CONFLICT', `AID ${app.aid} belongs to tenant ${row.tenant_id}`, { aid: app.aid });
          if (row.definition !== def)
            throw new DomainError('ERR_DOMAIN_CONFLICT', `AID ${app.aid} is already registered with another definition`, { aid: app.aid });
          continue;
        }
        await tx
          .insertInto('applications')
          .values({
            aid: app.aid,
            tenant_id: app.tenantId,
            name: app.name,
            key_type: app.keyType,
            key_count: app.keyCount,
            layout_name: layout.name,
            definition: def,
            created_at: now,
          })
          .execute();
        newApps.push(app.aid);
      }
      return { tenants: newTenants, applications: newApps };
    });
  }

  /** The (card, AID) pairs of cards that still hold one of the tenant's applications. */
  async holdings(tenantId: string): Promise<{ uid: string; aid: string }[]> {
    return this.db
      .selectFrom('card_applications as ca')
      .innerJoin('applications as a', 'a.aid', 'ca.aid')
      .select(['ca.uid', 'ca.aid'])
      .where('a.tenant_id', '=', tenantId)
      .orderBy('ca.aid')
      .orderBy('ca.uid')
      .execute();
  }

  /** The tombstone of a deleted tenant (undefined: not deleted). */
  async deletion(id: string): Promise<{ approvalId: string; deletedBy: string; deletedAt: number; rowsKept: boolean } | undefined> {
    const t = await this.db.selectFrom('tenant_deletions').selectAll().where('tenant_id', '=', id).executeTakeFirst();
    if (!t) return undefined;
    const row = await this.db.selectFrom('tenants').select('id').where('id', '=', id).executeTakeFirst();
    return { approvalId: t.approval_id, deletedBy: t.deleted_by, deletedAt: Number(t.deleted_at), rowsKept: row !== undefined };
  }

  /**
   * Finish a deletion whose removals were scheduled: once no card holds any of the tenant's
   * applications, drop the rows kept for the removal jobs (in one transaction). ERR_DOMAIN_STATE
   * (details.cards) while cards still hold one.
   */
  async purgeDeleted(id: string): Promise<{ applications: string[] }> {
    return atomic(this.db, async (tx) => {
      if (!(await tx.selectFrom('tenant_deletions').select('tenant_id').where('tenant_id', '=', id).executeTakeFirst())) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `tenant ${id} was not deleted`);
      const holdings = await new TenantRepository(tx).holdings(id);
      const cards = new Set(holdings.map((h) => h.uid)).size;
      if (cards > 0) throw new DomainError('ERR_DOMAIN_STATE', `${cards} cards still hold applications of deleted tenant ${id}`, { cards });
      const apps = (await tx.selectFrom('applications').select('aid').where('tenant_id', '=', id).orderBy('aid').execute()).map((a) => a.aid);
      await dropRows(tx, id, apps);
      return { applications: apps };
    });
  }

  /**
   * Delete a tenant (its approval was consumed by the caller), in one transaction: a tombstone (the
   * id is never reused; the tenant disappears from every listing), its readers' roles removed, and
   * — when no card holds any of its applications any more — its applications, per-card key rows
   * and wrapped blobs. `schedule` runs inside the transaction (e.g. pending removals for the cards
   * that still hold an application); then those rows stay, hidden, for the removal jobs.
   * Audit history, campaigns and consent records are kept.
   */
  async deleteTenant(
    id: string,
    o: { approvalId: string; actor: string; now?: number; schedule?: (tx: Db, holdings: { uid: string; aid: string }[]) => Promise<void> },
  ): Promise<{ readerRolesRemoved: number; cardsPending: number; applications: string[] }> {
    return atomic(this.db, async (tx) => {
      const t = await tx.selectFrom('tenants').select('id').where('id', '=', id).where(notDeleted).executeTakeFirst();
      if (!t) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `tenant ${id} not found`);
      const apps = (await tx.selectFrom('applications').select('aid').where('tenant_id', '=', id).orderBy('aid').execute()).map((a) => a.aid);
      const holdings = await new TenantRepository(tx).holdings(id);
      const cardsPending = new Set(holdings.map((h) => h.uid)).size;
      if (holdings.length > 0) {
        if (!o.schedule) throw new DomainError('ERR_DOMAIN_STATE', `${cardsPending} cards still hold applications of tenant ${id}`, { cards: cardsPending });
        await o.schedule(tx, holdings);
      }
      const roles = await tx.deleteFrom('reader_roles').where('tenant_id', '=', id).executeTakeFirst();
      await tx.insertInto('tenant_deletions').values({ tenant_id: id, approval_id: o.approvalId, deleted_by: o.actor, cards_pending: cardsPending, deleted_at: o.now ?? Date.now() }).execute();
      if (holdings.length === 0) await dropRows(tx, id, apps);
      return { readerRolesRemoved: Number(roles.numDeletedRows ?? 0n), cardsPending, applications: apps };
    });
  }
}

/** The rows of a deleted tenant that nothing references any more: applications, per-card key rows and blobs, the tenant. */
async function dropRows(tx: Db, id: string, apps: string[]): Promise<void> {
  if (apps.length > 0) {
    await tx.deleteFrom('card_keys').where('aid', 'in', apps).execute();
    await tx.deleteFrom('card_key_blobs').where('aid', 'in', apps).execute();
    await tx.deleteFrom('applications').where('tenant_id', '=', id).execute();
  }
  await tx.deleteFrom('tenants').where('id', '=', id).execute();
}

/** Tenants without a tombstone (src/cms/approvals/tables.ts). */
const notDeleted = (eb: ExpressionBuilder<Database, 'tenants'>) => eb.not(eb.exists(eb.selectFrom('tenant_deletions as td').select('td.tenant_id').whereRef('td.tenant_id', '=', 'tenants.id')));


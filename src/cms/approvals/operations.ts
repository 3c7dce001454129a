// The critical operations that run only with a consumed M-of-N approval naming exactly their
// target (guard.ts): key export and tenant deletion. (KEK rotation and large campaigns consume
// theirs in src/cms/kek and src/cms/rotation; vault unseal in ./unseal.ts.) Every check that can
// refuse runs BEFORE the approval is consumed, so a refused operation leaves the approval usable;
// every outcome is in the audit log.
import type { CallerContext, KeyCustody } from '../../custody/types.js';
import { type ExportRecipient, type KeyExport, NotExtractableError, recipientThumbprint } from '../../custody/export.js';
import type { TenantRepository } from '../domain/tenants.js';
import type { AuditRecorder } from '../rotation/audit.js';
import { ConsentService } from '../consent/service.js';
import type { Database } from '../storage/index.js';
import type { Kysely } from 'kysely';
import { keyOwner } from '../api/routes/custody.js';
import { consumeFor, requireApprovalId } from './guard.js';
import type { ApprovalService } from './service.js';

/** A refusal of an operation under approval: stable code and the HTTP status the API answers. */
export class OperationError extends Error {
  constructor(
    readonly code: 'ERR_TENANT_HAS_CARDS' | 'ERR_TENANT_NOT_FOUND' | 'ERR_CUSTODY_NOT_EXTRACTABLE',
    readonly status: number,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'OperationError';
  }
}

export interface OperationsDeps {
  db: Kysely<Database>;
  custody: KeyCustody;
  approvals: ApprovalService;
  audit: AuditRecorder;
  tenants: TenantRepository;
}

/** Pending removals of a deleted tenant's applications stay valid this long (seconds). */
const REMOVAL_TTL_S = 366 * 24 * 3600;

export class CriticalOperations {
  constructor(private readonly d: OperationsDeps) {}

  /**
   * Export custody key `name` (version: latest unless given) sealed to `recipient`, with a consumed
   * key_export approval naming the key and the recipient key's thumbprint.
   */
  async exportKey(ctx: CallerContext, name: string, recipient: ExportRecipient, approvalId: string | undefined, version?: number): Promise<KeyExport> {
    const exportKey = this.d.custody.exportKey?.bind(this.d.custody);
    if (!exportKey) throw new NotExtractableError(`the ${this.d.custody.backend} custody backend cannot export keys`);
    const thumbprint = await recipientThumbprint(recipient);
    const r = await exportKey(ctx, name, recipient, {
      ...(version !== undefined ? { version } : {}),
      authorise: async () => void (await consumeFor(this.d.approvals, 'key_export', approvalId, ctx.actor, { key: name, recipient: thumbprint })),
    });
    await this.d.audit.record({ actor: ctx.actor, operation: 'custody.key.export', result: 'ok', correlationId: approvalId ?? null, tenant: keyOwner(name), details: { keyName: name, version: r.version, recipient: `jwk:${thumbprint}` } });
    return r;
  }

  /**
   * Delete tenant `id` with a consumed tenant_deletion approval. Refused (ERR_TENANT_HAS_CARDS, the
   * count in details) while cards hold its applications, unless `scheduleRemoval`: then a delete
   * authorisation per application (granted by `approval:<id>`) and a pending removal per (card,
   * AID) are written in the same transaction, for the stations to carry out at each card's next
   * presentation. After the commit every custody key of the tenant is retired: rotated once, then
   * every version that ever protected data destroyed (the fresh latest version never did).
   */
  async deleteTenant(ctx: CallerContext, id: string, approvalId: string | undefined, o: { scheduleRemoval?: boolean } = {}) {
    const gone = await this.d.tenants.deletion(id);
    if (gone?.rowsKept) return this.finishDeletion(ctx, id);
    requireApprovalId('tenant_deletion', approvalId, { tenantId: id });
    const t = await this.d.tenants.tenant(id);
    if (!t) throw new OperationError('ERR_TENANT_NOT_FOUND', 404, `tenant ${id} not found`);
    const holdings = await this.d.tenants.holdings(id);
    const cards = new Set(holdings.map((h) => h.uid)).size;
    if (cards > 0 && !o.scheduleRemoval) {
      await this.d.audit.record({ actor: ctx.actor, operation: 'tenant.delete', result: 'denied', tenant: id, correlationId: approvalId ?? null, details: { code: 'ERR_TENANT_HAS_CARDS', cards } });
      throw new OperationError('ERR_TENANT_HAS_CARDS', 409, `${cards} cards still hold applications of tenant ${id}: remove them first, or delete with scheduleRemoval`, { cards });
    }
    // custody must answer (unsealed) before the approval is used
    const keys = (await this.d.custody.listKeys(ctx)).filter((k) => keyOwner(k.name) === id);
    const approval = await consumeFor(this.d.approvals, 'tenant_deletion', approvalId, ctx.actor, { tenantId: id });
    const consent = new ConsentService({ db: this.d.db });
    const r = await this.d.tenants.deleteTenant(id, {
      approvalId: approval.id,
      actor: ctx.actor,
      ...(o.scheduleRemoval
        ? {
            schedule: async (tx, hs) => {
              const now = Date.now();
              for (const aid of [...new Set(hs.map((h) => h.aid))]) {
                const auth = await consent.grant({ actor: `approval:${approval.id}` }, { tenant: id, aid, operation: 'delete', profile: '*', ttlSeconds: REMOVAL_TTL_S }, null, tx);
                const rows = hs.filter((h) => h.aid === aid).map((h) => ({ uid: h.uid, aid, tenant_id: id, reason: 'tenant_deleted', consent_id: null, authorisation_id: auth.id, state: 'pending', created_at: now, done_at: null }));
                for (let i = 0; i < rows.length; i += 500) await tx.insertInto('pending_deletions').values(rows.slice(i, i + 500)).execute();
              }
            },
          }
        : {}),
    });
    const retired: { key: string; destroyed: number[] }[] = [];
    const failed: { key: string; code: string }[] = [];
    for (const k of keys) {
      try {
        const info = await this.d.custody.rotateKey(ctx, k.name);
        const destroyed: number[] = [];
        for (const v of info.versions) {
          if (v.version === info.latestVersion || v.state === 'destroyed') continue;
          await this.d.custody.destroyVersion(ctx, k.name, v.version);
          destroyed.push(v.version);
        }
        retired.push({ key: k.name, destroyed });
      } catch (e) {
        failed.push({ key: k.name, code: String((e as { code?: string }).code ?? 'ERR_CUSTODY_BACKEND') });
      }
    }
    const out = { tenantId: id, approvalId: approval.id, readerRolesRemoved: r.readerRolesRemoved, cardsPending: r.cardsPending, applications: r.applications, keysRetired: retired, keysFailed: failed };
    await this.d.audit.record({
      actor: ctx.actor,
      operation: 'tenant.delete',
      result: failed.length ? 'partial' : 'ok',
      tenant: id,
      correlationId: approval.id,
      details: { readerRolesRemoved: r.readerRolesRemoved, cardsPending: r.cardsPending, applications: r.applications, keysRetired: retired.map((x) => x.key), keysFailed: failed.map((x) => `${x.key}:${x.code}`) },
    });
    return out;
  }

  /**
   * A tenant deleted with scheduled removals: once the last card has lost its applications, drop
   * the rows kept for the removal jobs (no new approval: the deletion was approved). Until then
   * ERR_TENANT_HAS_CARDS with the number of cards still to be cleaned.
   */
  private async finishDeletion(ctx: CallerContext, id: string) {
    const cards = new Set((await this.d.tenants.holdings(id)).map((h) => h.uid)).size;
    if (cards > 0) throw new OperationError('ERR_TENANT_HAS_CARDS', 409, `tenant ${id} is deleted; ${cards} cards still hold its applications (removal scheduled)`, { cards, deleted: true });
    const r = await this.d.tenants.purgeDeleted(id);
    await this.d.audit.record({ actor: ctx.actor, operation: 'tenant.purge', result: 'ok', tenant: id, details: { applications: r.applications } });
    return { tenantId: id, purged: true, applications: r.applications };
  }
}

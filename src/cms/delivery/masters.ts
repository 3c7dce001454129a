// Offline diversification masters: a reader whose role grants 'offline-master' on (AID, keyNo)
// can receive the AN10922 master of that key, sealed to its certificate key, for offline use with
// cards it has never seen online (the reader derives the card key itself, holds the master only
// in memory, for the TTL: 5..15 min, default 10).
//
// This is a wider blast radius than per-card keys: a reader that leaks the master leaks the key
// of EVERY card of that (AID, keyNo) until the master is rotated, not just of the cards it saw.
// So it is off unless a role says so explicitly ('offline-master' is separate from 'offline',
// which only lets a reader cache the per-card keys it received online), only diversified keys
// qualify (random keys have no master), and every release is audited twice: custody's
// 'seal_master' event (key name, version, reader) and this module's 'key_delivery' event with
// tenant/AID/key number (outcome ok or refused with its code).
import type { SealedMaster } from '../../custody/seal-master.js';
import type { CallerContext, DiversifyAlg, KeyCustody } from '../../custody/types.js';
import type { ReaderRepository, TenantRepository } from '../domain/index.js';
import type { StationAuditSink } from '../jobs/audit.js';
import { JobError } from '../jobs/errors.js';
import { masterKeyName } from '../jobs/keys.js';
import { RecipientCache } from '../jobs/recipient.js';
import { checkAidHex } from '../jobs/plan.js';

export interface MasterDeliveryOptions {
  custody: KeyCustody;
  readers: ReaderRepository;
  tenants: TenantRepository;
  audit: StationAuditSink;
  recipients?: RecipientCache;
  /** Lifetime of a sealed master, seconds (300..900, default 600). */
  ttlSeconds?: number;
  now?: () => number;
}

export interface MasterDeliveryRequest {
  aid: string;
  keyNo: number;
}

/** What the reader needs to derive card keys itself: the sealed master and the derivation recipe. */
export interface MasterDeliveryResult {
  tenant: string;
  aid: string;
  keyNo: number;
  /** The master version = the card key version it derives. */
  keyVersion: number;
  alg: DiversifyAlg;
  /** Diversification input parts, in order (layout: uid, aid, system, keyNo). */
  input: string[];
  systemIdentifier: string;
  sealed: SealedMaster;
}

export class MasterDelivery {
  private readonly recipients: RecipientCache;
  private readonly now: () => number;

  constructor(private readonly o: MasterDeliveryOptions) {
    this.recipients = o.recipients ?? new RecipientCache(o.readers);
    this.now = o.now ?? Date.now;
  }

  async deliverMaster(ctx: CallerContext, readerId: string, req: MasterDeliveryRequest): Promise<MasterDeliveryResult> {
    const d = { readerId, aid: String(req?.aid ?? '').slice(0, 6).toUpperCase(), keyNo: typeof req?.keyNo === 'number' ? req.keyNo : -1 };
    let out: MasterDeliveryResult;
    try {
      out = await this.unchecked(ctx, readerId, req);
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'ERR_INTERNAL';
      await this.o.audit.append({ time: new Date(this.now()).toISOString(), source: 'cms', op: 'key_delivery', outcome: 'refused', actor: ctx.actor, correlationId: ctx.correlationId, ...d, code: `master:${code}` });
      throw e;
    }
    await this.o.audit.append({ time: new Date(this.now()).toISOString(), source: 'cms', op: 'key_delivery', outcome: 'ok', actor: ctx.actor, correlationId: ctx.correlationId, ...d, keyVersion: out.keyVersion, code: 'master' });
    return out;
  }

  private async unchecked(ctx: CallerContext, readerId: string, req: MasterDeliveryRequest): Promise<MasterDeliveryResult> {
    const aid = checkAidHex(req?.aid);
    const keyNo = req?.keyNo;
    if (!Number.isInteger(keyNo) || keyNo < 0 || keyNo > 13) throw new JobError('ERR_JOB_BAD_INPUT', 'keyNo must be an integer in 0..13');
    const reader = await this.o.readers.get(readerId);
    if (!reader || reader.state !== 'active') throw new JobError('ERR_DELIVERY_READER_STATE', `reader ${readerId} is ${reader?.state ?? 'unknown'}`);
    const role = (await this.o.readers.roles(readerId)).find((r) => r.aid === aid && r.keyNo === keyNo);
    if (!role || !(role.operations as string[]).includes('offline-master'))
      throw new JobError('ERR_DELIVERY_FORBIDDEN', `reader ${readerId} has no role granting 'offline-master' on key ${keyNo} of ${aid}`);
    const app = await this.o.tenants.application(aid);
    if (!app || app.tenantId !== role.tenantId) throw new JobError('ERR_DELIVERY_FORBIDDEN', `application ${aid} is not the role's tenant's`);
    const k = app.definition.keys.find((x) => x.no === keyNo);
    if (!k) throw new JobError('ERR_JOB_BAD_INPUT', `application ${aid} has no key ${keyNo}`);
    if (k.derivation.method !== 'diversified') throw new JobError('ERR_DELIVERY_NOT_DIVERSIFIED', `key ${keyNo} of ${aid} is ${k.derivation.method}: there is no master to release`);
    const { recipient } = await this.recipients.of(readerId);
    let sealed: SealedMaster;
    try {
      sealed = await this.o.custody.sealMaster(ctx, { master: masterKeyName(k.derivation.master), tenant: app.tenantId, aid, keyNo }, recipient, { ...(this.o.ttlSeconds ? { ttlSeconds: this.o.ttlSeconds } : {}) });
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ERR_CUSTODY_NOT_EXTRACTABLE') throw new JobError('ERR_DELIVERY_NOT_EXTRACTABLE', (e as Error).message);
      if (code === 'ERR_CUSTODY_UNKNOWN_KEY') throw new JobError('ERR_DELIVERY_NO_MASTER', `key ${keyNo} of ${aid} has no master yet (no card carries it)`);
      throw e;
    }
    return { tenant: app.tenantId, aid, keyNo, keyVersion: sealed.masterVersion, alg: sealed.alg, input: [...k.derivation.input], systemIdentifier: app.definition.systemIdentifier, sealed };
  }
}

// Field rotations (issue #7): during a campaign's grace period a runtime reader that meets a card
// still on the old version (it authenticated with the previous version) upgrades it in the field.
//
//   request: the reader (mTLS) names the card, the key and the version the card proved; the CMS
//            checks that the reader's role covers (AID, keyNo) with operation 'rotate', that the
//            card is a PENDING item of a RUNNING campaign of that key whose old version is the
//            card's and still within its grace period, and that no other field operation for the
//            card is live. It answers the old and new card keys, each sealed to the reader
//            (custody seal: never plaintext), and a single-use operation token (stored as its
//            SHA-256 only) valid for `ttlMs`.
//   report:  the reader ran the shared card step (src/reader/station/rotate.ts rotateOneCard:
//            ChangeKey + verification, reconciliation after a tear) and returns a receipt signed
//            with its certificate's key (jobId = operation id, jti = campaign id, one result
//            { op: 'RotateKey', status, aid, keyNo, keyVersion = verified card version, code }).
//            The CMS uses the token once, verifies the receipt and records the item exactly like
//            the campaign runner (settleOutcomes: 'done' on the new version, or a retry / 'failed'
//            with the verified card version, card_keys following).
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { KeyCustody } from '../../custody/types.js';
import type { SealedKey } from '../../custody/sealed.js';
import type { KeyBinding } from '../../custody/types.js';
import { ReaderRepository, TenantRepository } from '../domain/index.js';
import { CardKeys } from '../jobs/keys.js';
import { RecipientCache } from '../jobs/recipient.js';
import { verifyReceipt } from '../pki/receipts.js';
import type { Database } from '../storage/index.js';
import type { AuditRecorder } from './audit.js';
import type { CampaignService } from './campaigns.js';
import { RotationError } from './errors.js';
import { settleOutcomes, type CardRotationReport } from './runner.js';

type Db = Kysely<Database>;

export interface FieldRotationRequest {
  uid: string;
  aid: string;
  keyNo: number;
  /** The version the card proved (the reader authenticated with it). */
  cardVersion: number;
}

export interface FieldRotationGrant {
  operationId: string;
  /** Single use; present it with the receipt. */
  token: string;
  campaignId: string;
  uid: string;
  aid: string;
  keyNo: number;
  fromVersion: number;
  toVersion: number;
  expiresAt: number;
  oldKey: { binding: KeyBinding; sealed: SealedKey };
  newKey: { binding: KeyBinding; sealed: SealedKey };
}

export interface FieldRotationResult {
  operationId: string;
  /** The item's state after the report: done | pending (retry later) | failed. */
  state: string;
  cardVersion: number | null;
}

export interface FieldRotationOptions {
  db: Db;
  custody: KeyCustody;
  audit: AuditRecorder;
  campaigns: CampaignService;
  /** Lifetime of an operation (default 120 s). */
  ttlMs?: number;
  now?: () => number;
}

export const FIELD_RESULT_OP = 'RotateKey';
const UID_RE = /^([0-9A-F]{2}){4,10}$/;
const AID_RE = /^[0-9A-F]{6}$/;
const sha256hex = (s: string): string => createHash('sha256').update(s).digest('hex');

export class FieldRotationService {
  private readonly now: () => number;
  private readonly keys: CardKeys;
  private readonly recipients: RecipientCache;
  private readonly readers: ReaderRepository;
  private readonly tenants: TenantRepository;

  constructor(private readonly o: FieldRotationOptions) {
    this.now = o.now ?? Date.now;
    this.keys = new CardKeys(o.custody);
    this.readers = new ReaderRepository(o.db);
    this.tenants = new TenantRepository(o.db);
    this.recipients = new RecipientCache(this.readers);
  }

  async request(readerId: string, req: FieldRotationRequest): Promise<FieldRotationGrant> {
    const uid = String(req?.uid ?? '').toUpperCase();
    const aid = String(req?.aid ?? '').toUpperCase();
    const keyNo = req?.keyNo;
    const cardVersion = req?.cardVersion;
    if (!UID_RE.test(uid) || !AID_RE.test(aid) || !Number.isInteger(keyNo) || keyNo < 0 || keyNo > 13 || !Number.isInteger(cardVersion) || cardVersion < 0 || cardVersion > 255)
      throw new RotationError('ERR_ROTATION_BAD_INPUT', 'uid (hex), aid (6 hex), keyNo (0..13) and cardVersion (0..255) are required');
    const base = { actor: `reader:${readerId}`, readerId, cardUid: uid, aid, keyNo, operation: 'rotation.field.request' };
    const refuse = async (e: RotationError): Promise<never> => {
      await this.o.audit.record({ ...base, result: 'denied', details: { code: e.code } });
      throw e;
    };
    const role = await this.o.db
      .selectFrom('reader_roles as rr')
      .innerJoin('readers as r', 'r.id', 'rr.reader_id')
      .select(['rr.tenant_id', 'rr.operations'])
      .where('rr.reader_id', '=', readerId)
      .where('rr.aid', '=', aid)
      .where('rr.key_no', '=', keyNo)
      .where('r.state', '=', 'active')
      .executeTakeFirst();
    if (!role || !(JSON.parse(role.operations) as string[]).includes('rotate'))
      return refuse(new RotationError('ERR_ROTATION_FIELD_FORBIDDEN', `reader ${readerId} has no 'rotate' role for key ${keyNo} of ${aid}`));
    const now = this.now();
    const item = await this.o.db
      .selectFrom('rotation_items as i')
      .innerJoin('rotation_campaigns as c', 'c.id', 'i.campaign_id')
      .innerJoin('key_versions as v', (j) => j.onRef('v.tenant_id', '=', 'c.tenant_id').onRef('v.aid', '=', 'c.aid').onRef('v.key_no', '=', 'c.key_no').onRef('v.version', '=', 'c.from_version'))
      .select(['c.id', 'v.grace_until'])
      .where('c.tenant_id', '=', role.tenant_id)
      .where('c.aid', '=', aid)
      .where('c.key_no', '=', keyNo)
      .where('c.state', '=', 'running')
      .where('c.from_version', '=', cardVersion)
      .where('i.uid', '=', uid)
      .where('i.state', '=', 'pending')
      .executeTakeFirst();
    if (!item || Number(item.grace_until ?? 0) <= now)
      return refuse(new RotationError('ERR_ROTATION_FIELD_NOT_PENDING', `card ${uid} is not a pending card of a running campaign of key ${keyNo} of ${aid} on version ${cardVersion} within its grace period`));
    const c = await this.o.campaigns.require(item.id);
    const live = await this.o.db.selectFrom('rotation_field_ops').select('id').where('campaign_id', '=', c.id).where('uid', '=', uid).where('state', '=', 'issued').where('expires_at', '>', now).executeTakeFirst();
    if (live) return refuse(new RotationError('ERR_ROTATION_CONFLICT', `card ${uid} is being rotated by another field operation`));
    const app = await this.tenants.application(aid);
    if (!app || app.tenantId !== role.tenant_id) return refuse(new RotationError('ERR_ROTATION_FIELD_FORBIDDEN', `application ${aid} is not the role's tenant's`));
    const id = randomUUID();
    const ctx = { actor: `reader:${readerId}`, purpose: 'field rotation of a card key', correlationId: id };
    const { recipient } = await this.recipients.of(readerId);
    const ttlMs = this.o.ttlMs ?? 120_000;
    const seal = async (version: number) => {
      const source = await this.keys.appSource(this.o.db, app, uid, keyNo, version);
      return { binding: source.binding, sealed: await this.o.custody.seal(ctx, source, recipient, { ttlSeconds: Math.ceil(ttlMs / 1000) }) };
    };
    const oldKey = await seal(c.fromVersion);
    const newKey = await seal(c.toVersion);
    const token = randomBytes(32).toString('base64url');
    const expiresAt = now + ttlMs;
    await this.o.db
      .insertInto('rotation_field_ops')
      .values({ id, token_hash: sha256hex(token), campaign_id: c.id, uid, reader_id: readerId, from_version: c.fromVersion, to_version: c.toVersion, state: 'issued', card_version: null, expires_at: expiresAt, created_at: now, updated_at: now })
      .execute();
    await this.o.audit.record({ ...base, tenant: c.tenantId, keyVersion: c.toVersion, result: 'ok', correlationId: c.id, details: { operationId: id, fromVersion: c.fromVersion } });
    return { operationId: id, token, campaignId: c.id, uid, aid, keyNo, fromVersion: c.fromVersion, toVersion: c.toVersion, expiresAt, oldKey, newKey };
  }

  async report(readerId: string, operationId: string, body: { token: string; receipt: string }): Promise<FieldRotationResult> {
    const base = { actor: `reader:${readerId}`, readerId, operation: 'rotation.field.report', correlationId: String(operationId).slice(0, 64) };
    const refuse = async (e: RotationError): Promise<never> => {
      await this.o.audit.record({ ...base, result: 'denied', details: { code: e.code } });
      throw e;
    };
    const op = typeof operationId === 'string' && operationId.length <= 64 ? await this.o.db.selectFrom('rotation_field_ops').selectAll().where('id', '=', operationId).executeTakeFirst() : undefined;
    const now = this.now();
    const given = Buffer.from(sha256hex(String(body?.token ?? '')));
    if (!op || op.reader_id !== readerId || !timingSafeEqual(given, Buffer.from(op.token_hash)) || op.state !== 'issued' || Number(op.expires_at) <= now)
      return refuse(new RotationError('ERR_ROTATION_FIELD_TOKEN', 'unknown, expired or already used operation token'));
    const pem = await this.readers.certificatePem(readerId);
    let rep: CardRotationReport;
    try {
      const r = await verifyReceipt(String(body?.receipt ?? ''), pem ?? '', { jobId: op.id, jti: op.campaign_id });
      const res = r.results.find((x) => x.op === FIELD_RESULT_OP);
      if (r.uid !== op.uid || r.results.length !== 1 || !res) throw new Error('receipt is not for this card or not a rotation');
      const v = res.keyVersion;
      if (v !== undefined && (!Number.isInteger(v) || (v !== op.from_version && v !== op.to_version))) throw new Error('receipt names a version that is neither the old nor the new one');
      const code = (res as { code?: unknown }).code;
      const ok = res.status === 0 && v === op.to_version;
      rep = { ok, cardVersion: v ?? null, ...(!ok ? { code: typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'ERR_ROTATION_CARD' } : {}) };
    } catch (e) {
      return refuse(new RotationError('ERR_ROTATION_FIELD_RECEIPT', `receipt refused: ${(e as Error).message}`));
    }
    // the token is used once, whatever happens next
    const used = await this.o.db
      .updateTable('rotation_field_ops')
      .set({ state: rep.ok ? 'done' : 'failed', card_version: rep.cardVersion, updated_at: now })
      .where('id', '=', op.id)
      .where('state', '=', 'issued')
      .executeTakeFirst();
    if ((used.numUpdatedRows ?? 0n) === 0n) return refuse(new RotationError('ERR_ROTATION_FIELD_TOKEN', 'operation token already used'));
    const c = await this.o.campaigns.require(op.campaign_id);
    const item = await this.o.db.selectFrom('rotation_items').select(['attempts', 'state']).where('campaign_id', '=', c.id).where('uid', '=', op.uid).executeTakeFirst();
    if (item?.state === 'pending') await settleOutcomes(this.o.db, this.o.audit, c, [{ uid: op.uid, attempt: Number(item.attempts) + 1, rep }], 'pending', c.toVersion, `reader:${readerId}`);
    const after = await this.o.db.selectFrom('rotation_items').select(['state', 'card_version']).where('campaign_id', '=', c.id).where('uid', '=', op.uid).executeTakeFirst();
    await this.o.audit.record({
      ...base,
      correlationId: c.id,
      tenant: c.tenantId,
      cardUid: op.uid,
      aid: c.aid,
      keyNo: c.keyNo,
      keyVersion: rep.cardVersion,
      result: rep.ok ? 'ok' : 'error',
      details: { operationId: op.id, itemState: after?.state ?? 'unknown', ...(rep.code ? { code: rep.code } : {}) },
    });
    return { operationId: op.id, state: after?.state ?? 'unknown', cardVersion: after?.card_version === null || after?.card_version === undefined ? null : Number(after.card_version) };
  }
}

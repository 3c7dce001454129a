// Field rotation by a runtime reader (issue #7): when a card in front of the reader proved the
// PREVIOUS version of a key during a campaign's grace period, the reader upgrades it on the spot:
//
//   1. POST /v1/readers/self/rotations {uid, aid, keyNo, cardVersion}: the CMS checks the role
//      ('rotate' for this AID/keyNo) and that the card is a pending card of the running campaign,
//      and answers the old and new keys sealed to this reader + a single-use operation token;
//   2. the shared card step rotateOneCard (station/rotate.ts): GetKeyVersion, authenticate with
//      the old key, ChangeKey to the new key and version, verify (GetKeyVersion + authentication
//      with the new key); after any failure (a tear) a reconciliation that proves the card's
//      version by authentication;
//   3. POST /v1/readers/self/rotations/:id/receipt {token, receipt}: a receipt signed with the
//      reader's certificate key (jobId = operation id, jti = campaign id, one 'RotateKey' result
//      with the verified card version); the CMS records the campaign item like its runner does.
//
// Both keys are wiped after the card step; nothing key-related is logged or returned.
import type { KeyObject } from 'node:crypto';
import { CompactSign } from 'jose';
import { DesfireClient } from '../core/client/index.js';
import { wipe } from '../core/crypto/bytes.js';
import type { KeyType } from '../core/crypto/cipher.js';
import type { Transport } from '../core/transport.js';
import type { SealedKey } from '../custody/sealed.js';
import { ReaderUnsealer } from '../custody/sealed.js';
import type { KeyBinding } from '../custody/types.js';
import { rotateOneCard, type CardRotationResult } from './station/rotate.js';

/** A sealed card key as the CMS answers it (unsealed with this reader's key, bound to `binding`). */
export type SealedDelivery = { binding: KeyBinding; sealed: SealedKey };

/** The CMS's answer (the reader may not import CMS code: this is the wire shape of src/cms/rotation/field.ts FieldRotationGrant). */
export type FieldGrant = { operationId: string; token: string; campaignId: string; uid: string; aid: string; keyNo: number; fromVersion: number; toVersion: number; oldKey: SealedDelivery; newKey: SealedDelivery };

export interface FieldRotationOutcome {
  operationId: string;
  /** The campaign item's state as the CMS recorded it: done | pending (retried later) | failed. */
  state: string;
  cardVersion: number | null;
  /** What the card step found (the receipt carries the same). */
  card: CardRotationResult;
}

export interface FieldRotatorOptions {
  /** The reader's mTLS client to the CMS (reader/cms-client.ts CmsClient). */
  cms: { call<T>(method: string, path: string, body?: unknown): Promise<T> };
  readerId: string;
  /** The key its certificate certifies: unseals the deliveries and signs the receipt. */
  privateKey: KeyObject;
  keyType?: KeyType;
  method?: 'ev2' | 'aes';
  /** Build a client (tests inject a fixed random source). */
  client?: (t: Transport) => DesfireClient;
  /** Present the card again for the reconciliation after a failure (default: the same transport). */
  represent?: () => Promise<Transport | undefined>;
  now?: () => number;
  /** How long the accepted versions of a key are cached (default 30 s). */
  acceptedTtlMs?: number;
}

/** Refusals that only mean "nothing to do for this card": upgradeIfPrevious answers undefined. */
const NOTHING_TO_DO = new Set(['ERR_ROTATION_FIELD_NOT_PENDING', 'ERR_ROTATION_FIELD_FORBIDDEN', 'ERR_ROTATION_CONFLICT']);

/** The receipt's one result. `code` (when not ok) is a stable error code, never key material. */
export interface FieldReceiptResult {
  op: 'RotateKey';
  status: number;
  aid: string;
  keyNo: number;
  keyVersion?: number;
  code?: string;
}

export class FieldRotator {
  private readonly unsealer: ReaderUnsealer;
  private readonly accepted = new Map<string, { versions: number[]; until: number }>();

  constructor(private readonly o: FieldRotatorOptions) {
    this.unsealer = new ReaderUnsealer(o.readerId, o.privateKey);
  }

  /**
   * The hook for a runtime transaction: when the card proved the PREVIOUS accepted version of the
   * key (GET /v1/readers/self/key-versions, cached), upgrade it; undefined when there is nothing
   * to do (card on the current version, no campaign item pending for it, no 'rotate' role).
   */
  async upgradeIfPrevious(transport: Transport, card: { uid: string; aid: string; keyNo: number; cardVersion: number }): Promise<FieldRotationOutcome | undefined> {
    const now = (this.o.now ?? Date.now)();
    const k = `${card.aid}/${card.keyNo}`;
    let hit = this.accepted.get(k);
    if (!hit || hit.until <= now) {
      const r = await this.o.cms.call<{ versions: number[] }>('GET', `/v1/readers/self/key-versions/${card.aid}/${card.keyNo}`);
      hit = { versions: r.versions, until: now + (this.o.acceptedTtlMs ?? 30_000) };
      this.accepted.set(k, hit);
    }
    if (hit.versions.length < 2 || card.cardVersion !== hit.versions[1]) return undefined;
    try {
      return await this.upgrade(transport, card);
    } catch (e) {
      if (NOTHING_TO_DO.has((e as { cmsCode?: string }).cmsCode ?? '')) return undefined;
      throw e;
    }
  }

  /** Upgrade the key of the card on `transport` from `cardVersion` (proven by the caller's authentication). */
  async upgrade(transport: Transport, card: { uid: string; aid: string; keyNo: number; cardVersion: number }): Promise<FieldRotationOutcome> {
    const g = await this.o.cms.call<FieldGrant>('POST', '/v1/readers/self/rotations', { uid: card.uid, aid: card.aid, keyNo: card.keyNo, cardVersion: card.cardVersion });
    const oldKey = await this.unsealer.unseal(g.oldKey.sealed, g.oldKey.binding);
    let newKey: Uint8Array;
    try {
      newKey = await this.unsealer.unseal(g.newKey.sealed, g.newKey.binding);
    } catch (e) {
      wipe(oldKey);
      throw e;
    }
    let presented = 0;
    let r: CardRotationResult;
    try {
      r = await rotateOneCard(
        {
          present: async () => (presented++ === 0 ? transport : this.o.represent ? this.o.represent() : transport),
          key: async (_job, version) => (version === g.fromVersion ? oldKey : newKey).slice(),
          client: this.o.client ?? ((t) => new DesfireClient(t)),
          ...(this.o.keyType ? { keyType: this.o.keyType } : {}),
          ...(this.o.method ? { method: this.o.method } : {}),
        },
        { uid: g.uid, tenantId: g.oldKey.binding.tenant, aid: g.aid, keyNo: g.keyNo, fromVersion: g.fromVersion, toVersion: g.toVersion, attempt: 1 },
      );
    } finally {
      wipe(oldKey, newKey);
    }
    const result: FieldReceiptResult = { op: 'RotateKey', status: r.ok ? 0 : 0xff, aid: g.aid, keyNo: g.keyNo, ...(r.cardVersion !== null ? { keyVersion: r.cardVersion } : {}), ...(!r.ok && r.code ? { code: r.code } : {}) };
    const receipt = { jobId: g.operationId, jti: g.campaignId, uid: g.uid, results: [result], at: Math.floor((this.o.now ?? Date.now)() / 1000) };
    const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(receipt))).setProtectedHeader({ alg: 'ES256', typ: 'desfire-receipt+jws' }).sign(this.o.privateKey);
    const rec = await this.o.cms.call<{ operationId: string; state: string; cardVersion: number | null }>('POST', `/v1/readers/self/rotations/${encodeURIComponent(g.operationId)}/receipt`, { token: g.token, receipt: jws });
    return { ...rec, card: r };
  }
}

// The card-side step of a key rotation (engineer J), shared by the reader agent, the station
// executor and the CMS's in-process campaign runner (through src/cli or tests: cms may not import
// reader code, so the runner takes this as an injected executor).
//
//   rotateCardKey:    select the AID, probe GetKeyVersion, authenticate with the old key,
//                     ChangeKey to the new key and version, then verify: GetKeyVersion == new and
//                     an authentication with the new key succeeds.
//   reconcileCardKey: after a tear (card removed mid-ChangeKey) or any failure, find the card's
//                     true state: probe GetKeyVersion, then authenticate with the candidate of
//                     that version first and the others after. The answer is a verified version,
//                     never a guess; 'unreachable' only when the card does not answer at all.
//
// Key bytes are passed in by the caller (unsealed deliveries or custody's exportForCard) and are
// never logged or put in an outcome; the caller wipes them.
import type { DesfireClient } from '../../core/client/index.js';
import { wipe } from '../../core/crypto/bytes.js';
import type { KeyType } from '../../core/crypto/cipher.js';
import type { Transport } from '../../core/transport.js';

export interface RotationKeys {
  /** AID as 6 hex digits (MSB first, as in layouts). */
  aid: string;
  keyNo: number;
  keyType: KeyType;
  /** 'ev2' (default) or 'aes' (EV1 AES authentication). */
  method?: 'ev2' | 'aes';
  oldKey: Uint8Array;
  oldVersion: number;
  newKey: Uint8Array;
  newVersion: number;
  /**
   * The key that authorises ChangeKey when it is not the key being changed (e.g. the AMK when the
   * application's change-key setting is 0). Default: the key being changed (its old value).
   */
  changeAuth?: { keyNo: number; key: Uint8Array };
}

export type RotateResult =
  /** ChangeKey done and verified. */
  | 'changed'
  /** The card already had the new version (an earlier torn attempt completed); verified. */
  | 'already';

export interface RotateOutcome {
  result: RotateResult;
  /** Verified version on the card (== newVersion). */
  version: number;
}

export interface ReconcileOutcome {
  /** 'verified': `version` is the card's version, proven by authentication with its key. */
  state: 'verified' | 'mismatch' | 'unreachable';
  /** The version the card reports (GetKeyVersion), when it answered. */
  reported?: number;
  /** The verified version (state 'verified'). */
  version?: number;
  /** Error code of the last failure (never key material). */
  code?: string;
}

export class RotationStepError extends Error {
  readonly code: string;
  constructor(code: 'ERR_ROTATE_UNEXPECTED_VERSION' | 'ERR_ROTATE_VERIFY', message: string) {
    super(message);
    this.code = code;
    this.name = 'RotationStepError';
  }
}

const aidNumber = (aid: string): number => parseInt(aid, 16);

async function tryAuth(client: DesfireClient, keyNo: number, key: Uint8Array, keyType: KeyType, method: 'ev2' | 'aes'): Promise<boolean> {
  try {
    await client.authenticate(keyNo, key, { method, keyType });
    return true;
  } catch {
    return false;
  }
}

/**
 * Rotate one key on the card in front of `client`. Throws on any failure (transport, card status,
 * verification): the caller then reconciles with reconcileCardKey to learn the true state.
 */
export async function rotateCardKey(client: DesfireClient, k: RotationKeys): Promise<RotateOutcome> {
  const method = k.method ?? 'ev2';
  await client.selectApplication(aidNumber(k.aid));
  const before = await client.getKeyVersion(k.keyNo);
  if (before === k.newVersion) {
    await verify(client, k, method);
    return { result: 'already', version: k.newVersion };
  }
  if (before !== k.oldVersion) {
    throw new RotationStepError('ERR_ROTATE_UNEXPECTED_VERSION', `key ${k.keyNo} of ${k.aid} is at version ${before}, expected ${k.oldVersion} or ${k.newVersion}`);
  }
  const auth = k.changeAuth ?? { keyNo: k.keyNo, key: k.oldKey };
  await client.authenticate(auth.keyNo, auth.key, { method, keyType: k.keyType });
  await client.changeKey(k.keyNo, k.newKey, {
    keyType: k.keyType,
    keyVersion: k.newVersion,
    ...(auth.keyNo !== k.keyNo ? { oldKey: k.oldKey } : {}),
  });
  await verify(client, k, method);
  return { result: 'changed', version: k.newVersion };
}

async function verify(client: DesfireClient, k: RotationKeys, method: 'ev2' | 'aes'): Promise<void> {
  await client.selectApplication(aidNumber(k.aid));
  const v = await client.getKeyVersion(k.keyNo);
  if (v !== k.newVersion) throw new RotationStepError('ERR_ROTATE_VERIFY', `key ${k.keyNo} of ${k.aid} reports version ${v} after ChangeKey, expected ${k.newVersion}`);
  if (!(await tryAuth(client, k.keyNo, k.newKey, k.keyType, method))) {
    throw new RotationStepError('ERR_ROTATE_VERIFY', `authentication with the new key ${k.keyNo} of ${k.aid} failed`);
  }
  client.dropSession();
}

/**
 * Find the true version of a key after a failure: GetKeyVersion, then authenticate with the
 * candidate of the reported version first and every other candidate after (a card's version
 * byte is not proof: only a successful authentication is).
 */
export async function reconcileCardKey(
  client: DesfireClient,
  r: { aid: string; keyNo: number; keyType: KeyType; method?: 'ev2' | 'aes'; candidates: { version: number; key: Uint8Array }[] },
): Promise<ReconcileOutcome> {
  const method = r.method ?? 'ev2';
  let reported: number;
  try {
    await client.selectApplication(aidNumber(r.aid));
    reported = await client.getKeyVersion(r.keyNo);
  } catch (e) {
    return { state: 'unreachable', code: (e as { code?: string }).code ?? 'ERR_UNREACHABLE' };
  }
  const ordered = [...r.candidates].sort((a, b) => Number(b.version === reported) - Number(a.version === reported));
  for (const c of ordered) {
    if (await tryAuth(client, r.keyNo, c.key, r.keyType, method)) {
      client.dropSession();
      return { state: 'verified', reported, version: c.version };
    }
  }
  return { state: 'mismatch', reported, code: 'ERR_ROTATE_NO_KEY_MATCHES' };
}

// ---------- an executor over the card step ----------

/** One card's rotation request, as the CMS campaign runner sends it (structurally its CardRotationRequest). */
export interface CardRotationJob {
  uid: string;
  tenantId: string;
  aid: string;
  keyNo: number;
  fromVersion: number;
  toVersion: number;
  attempt: number;
}

export interface CardRotationResult {
  ok: boolean;
  cardVersion: number | null;
  code?: string;
}

export interface LocalRotationOptions {
  /** The card with this UID, presented to a reader (undefined: not in the field). Called again to reconcile. */
  present(uid: string): Promise<Transport | undefined>;
  /** The card key of `version` (unsealed delivery or custody export); the executor wipes it. */
  key(job: CardRotationJob, version: number): Promise<Uint8Array>;
  keyType?: KeyType;
  method?: 'ev2' | 'aes';
  /** Build a client (tests inject a fixed random source). */
  client(t: Transport): DesfireClient;
}

/**
 * Rotate one card: the card step, and on any failure a reconciliation on a fresh presentation of
 * the card, so the report carries the card's verified version.
 */
export async function rotateOneCard(o: LocalRotationOptions, job: CardRotationJob): Promise<CardRotationResult> {
  const keyType = o.keyType ?? 'aes';
  const t = await o.present(job.uid);
  if (!t) return { ok: false, cardVersion: null, code: 'ERR_CARD_ABSENT' };
  const oldKey = await o.key(job, job.fromVersion);
  const newKey = await o.key(job, job.toVersion);
  try {
    try {
      await rotateCardKey(o.client(t), { aid: job.aid, keyNo: job.keyNo, keyType, method: o.method ?? 'ev2', oldKey, oldVersion: job.fromVersion, newKey, newVersion: job.toVersion });
      return { ok: true, cardVersion: job.toVersion };
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'ERR_ROTATE';
      const t2 = await o.present(job.uid);
      if (!t2) return { ok: false, cardVersion: null, code };
      const r = await reconcileCardKey(o.client(t2), {
        aid: job.aid,
        keyNo: job.keyNo,
        keyType,
        method: o.method ?? 'ev2',
        candidates: [
          { version: job.fromVersion, key: oldKey },
          { version: job.toVersion, key: newKey },
        ],
      });
      if (r.state !== 'verified') return { ok: false, cardVersion: null, code: r.code ?? code };
      if (r.version === job.toVersion && r.reported === job.toVersion) return { ok: true, cardVersion: job.toVersion };
      return { ok: false, cardVersion: r.version ?? null, code };
    }
  } finally {
    wipe(oldKey);
    wipe(newKey);
  }
}

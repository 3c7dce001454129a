// Sealing an AN10922 diversification master ITSELF to a reader, for offline use with cards the
// reader has never seen online (KeyCustody.sealMaster). Nothing is derived: the master version's
// material is sealed to the reader's P-256 key and wiped. This is a far wider release than a
// per-card key — whoever holds the master can compute the key of every card of that (AID, keyNo)
// — so the CMS releases it only to a reader whose role explicitly grants 'offline-master', for a
// short TTL (5..15 min), and custody audits it as its own operation ('seal_master').
//
// Backends:
// - embedded: supported (the master lives in the CMS process anyway).
// - Vault Transit: masters are decrypted into the CMS process to derive (vault-transit.ts), but
//   leave it only when the backend is configured with `exportableMasters: true` (the counterpart
//   of Transit's own `exportable` key flag); otherwise ERR_CUSTODY_NOT_EXTRACTABLE.
// - PKCS#11: always ERR_CUSTODY_NOT_EXTRACTABLE (masters are CKA_EXTRACTABLE=false by design).
//
// Format: compact JWE `alg: "ECDH-ES+A256KW", enc: "A256GCM"` to the reader key, protected
// header (the AAD) `typ: "dcms-master+jwe"`, `kid` = reader id, and `dcms: { t, aid, kn, m, mv,
// alg, exp }` = tenant, AID, key number, master key name, master version, diversification
// algorithm, expiry (Unix seconds). The payload is the raw master bytes. `unsealMaster` (the
// reader side; node:crypto + jose only) refuses another reader's, another (tenant, AID, keyNo)'s
// or an expired delivery.
import type { KeyObject } from 'node:crypto';
import { CompactEncrypt } from 'jose';
import type { DiversifyAlg } from '../core/crypto/an10922.js';
import { wipe } from '../core/crypto/bytes.js';
import { checkKeyName, checkVersion } from './binding.js';
import type { CustodyEngine } from './engine.js';
import { CustodyError, CustodyInputError } from './errors.js';
import type { EcdhAgreement } from './ecdh-es.js';
import { openEcdhEs, parseCompact, readerPublicKey, type ReaderRecipient, SealedDeliveryError } from './sealed.js';

export const MASTER_TYP = 'dcms-master+jwe';
/** Lifetime of a sealed master, seconds: 5..15 minutes, default 10. */
export const MASTER_TTL = { min: 300, max: 900, default: 600 } as const;

/** What a master delivery is for: the (tenant, AID, keyNo) whose card keys it derives. */
export interface MasterRequest {
  /** Custody key name of the master. */
  master: string;
  /** Master version (default: the latest usable one). */
  masterVersion?: number;
  tenant: string;
  aid: string;
  keyNo: number;
}

export interface MasterClaim {
  t: string;
  aid: string;
  kn: number;
  m: string;
  mv: number;
  alg: DiversifyAlg;
  exp: number;
}

export interface SealedMaster {
  format: 'jwe-compact';
  jwe: string;
  /** ISO 8601. */
  expiresAt: string;
  master: string;
  masterVersion: number;
  alg: DiversifyAlg;
}

export interface MasterSealOptions {
  /** Seconds, MASTER_TTL.min..MASTER_TTL.max (default MASTER_TTL.default). */
  ttlSeconds?: number;
}

/** An engine able to hand out a copy of a master version (the caller wipes it). */
export interface MasterMaterialSource {
  masterMaterial(name: string, version: number | undefined): Promise<{ version: number; alg: DiversifyAlg; material: Uint8Array }>;
}

export class MasterNotExtractableError extends CustodyError {
  constructor(message: string) {
    super('ERR_CUSTODY_NOT_EXTRACTABLE', message);
  }
}

function hasMasterMaterial(e: CustodyEngine): e is CustodyEngine & MasterMaterialSource {
  return typeof (e as Partial<MasterMaterialSource>).masterMaterial === 'function';
}

/** Validate a request, recipient and options (before anything is read). */
export function checkMasterRequest(req: MasterRequest, recipient: ReaderRecipient, opts: MasterSealOptions): number {
  if (!req || typeof req !== 'object') throw new CustodyInputError('master request is required');
  checkKeyName(req.master);
  if (req.masterVersion !== undefined) checkVersion(req.masterVersion, 'masterVersion');
  if (typeof req.tenant !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(req.tenant)) throw new CustodyInputError('tenant must be a tenant id');
  if (typeof req.aid !== 'string' || !/^[0-9A-Fa-f]{6}$/.test(req.aid)) throw new CustodyInputError('aid must be 6 hex digits');
  if (!Number.isInteger(req.keyNo) || req.keyNo < 0 || req.keyNo > 13) throw new CustodyInputError('keyNo must be an integer in 0..13');
  if (!recipient || typeof recipient.readerId !== 'string' || recipient.readerId.length === 0 || recipient.readerId.length > 256) throw new CustodyInputError('recipient needs a readerId');
  try {
    readerPublicKey(recipient.publicKey);
  } catch (e) {
    throw new CustodyInputError((e as Error).message);
  }
  const ttl = opts.ttlSeconds ?? MASTER_TTL.default;
  if (!Number.isInteger(ttl) || ttl < MASTER_TTL.min || ttl > MASTER_TTL.max) throw new CustodyInputError(`ttlSeconds must be an integer in ${MASTER_TTL.min}..${MASTER_TTL.max}`);
  return ttl;
}

/**
 * Custody's side (called by Custody.sealMaster inside its audited `run`): check, read a copy of
 * the master version from the engine, seal it to the reader, wipe it. `d.keyVersion` gets the
 * master version and `d.master` the (tenant, AID, keyNo) it opens, for the audit event.
 */
export async function sealMasterWith(engine: CustodyEngine, req: MasterRequest, recipient: ReaderRecipient, opts: MasterSealOptions, d: { keyVersion?: number; master?: { tenant: string; aid: string; keyNo: number } }, now: () => number): Promise<SealedMaster> {
  const ttl = checkMasterRequest(req, recipient, opts);
  d.master = { tenant: req.tenant, aid: req.aid.toUpperCase(), keyNo: req.keyNo };
  if (!hasMasterMaterial(engine)) throw new MasterNotExtractableError(`the ${engine.backend} backend's masters cannot leave it (non-extractable): no offline masters with this backend`);
  engine.assertReady();
  const { version, alg, material } = await engine.masterMaterial(req.master, req.masterVersion);
  d.keyVersion = version;
  try {
    const exp = Math.floor(now() / 1000) + ttl;
    const claim: MasterClaim = { t: req.tenant, aid: req.aid.toUpperCase(), kn: req.keyNo, m: req.master, mv: version, alg, exp };
    const jwe = await new CompactEncrypt(material).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', typ: MASTER_TYP, kid: recipient.readerId, dcms: claim }).encrypt(readerPublicKey(recipient.publicKey));
    return { format: 'jwe-compact', jwe, expiresAt: new Date(exp * 1000).toISOString(), master: req.master, masterVersion: version, alg };
  } finally {
    wipe(material);
  }
}

/**
 * The reader's side: open a sealed master with the reader's private key. Refuses a delivery for
 * another reader, another (tenant, AID, keyNo), or past its expiry. Returns the master bytes (the
 * caller wipes them) and the claim.
 */
export async function unsealMaster(
  sealed: SealedMaster,
  privateKey: KeyObject | EcdhAgreement,
  readerId: string,
  expect: { tenant: string; aid: string; keyNo: number },
  nowMs: number = Date.now(),
): Promise<{ material: Uint8Array; claim: MasterClaim }> {
  if (!sealed || sealed.format !== 'jwe-compact') throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'unknown master delivery format');
  const p = parseCompact(sealed.jwe);
  if (p.header.typ !== MASTER_TYP) throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'not a master delivery');
  if (p.header.alg !== 'ECDH-ES+A256KW' || p.header.enc !== 'A256GCM') throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'master delivery must be ECDH-ES+A256KW/A256GCM');
  if (p.header.kid !== readerId) throw new SealedDeliveryError('ERR_SEALED_BINDING', 'master sealed to another reader');
  const c = p.header.dcms as MasterClaim | undefined;
  if (!c || typeof c !== 'object') throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'master delivery has no claim');
  if (c.t !== expect.tenant || c.aid !== expect.aid.toUpperCase() || c.kn !== expect.keyNo) throw new SealedDeliveryError('ERR_SEALED_BINDING', 'master delivery is for another tenant, AID or key number');
  if (c.alg !== 'aes128' && c.alg !== '2k3des' && c.alg !== '3k3des') throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'unknown diversification algorithm');
  if (typeof c.exp !== 'number' || c.exp <= Math.floor(nowMs / 1000)) throw new SealedDeliveryError('ERR_SEALED_EXPIRED', 'master delivery has expired');
  let material: Uint8Array;
  try {
    material = await openEcdhEs(sealed.jwe, privateKey);
  } catch {
    throw new SealedDeliveryError('ERR_SEALED_DECRYPT', 'master delivery does not decrypt with this reader key');
  }
  if (material.length !== (c.alg === '3k3des' ? 24 : 16)) {
    wipe(material);
    throw new SealedDeliveryError('ERR_SEALED_FORMAT', 'master length does not match its algorithm');
  }
  return { material, claim: c };
}

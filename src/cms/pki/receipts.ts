// Receipts: the reader signs what it did (job id, token jti, card UID, per-step results) with its
// certificate's key, as a compact JWS (ES256). The CMS verifies with the reader's certificate and
// checks the receipt is for the job and token it issued. A bad signature is ERR_RECEIPT_SIGNATURE.
//
// Verification uses node:crypto with the certificate's public key parsed once per certificate
// (a bounded cache keyed by the certificate's SHA-256 fingerprint): the caller passes the reader's
// CURRENT certificate on every receipt, and revocation / reader state are the caller's per-request
// checks (the mTLS authenticator), so the cache holds no trust decision, only a parsed key.
import { CompactSign } from 'jose';
import { type KeyObject, X509Certificate, createHash, verify as ecVerify } from 'node:crypto';
import { PkiError } from './errors.js';
import type { CryptoKey } from './webcrypto.js';

export interface ReceiptResult {
  /** The operation, e.g. "CreateApplication", "ChangeKey", "CreateFile". */
  op: string;
  /** DESFire status byte (0x00 OK) as returned by the card. */
  status: number;
  aid?: string;
  keyNo?: number;
  keyVersion?: number;
  fileNo?: number;
}

export interface Receipt {
  jobId: string;
  jti: string;
  /** Card UID, upper-case hex (7 bytes, or 4 for random UIDs before GetCardUID). */
  uid: string;
  results: ReceiptResult[];
  /** Unix seconds when the reader finished. */
  at: number;
  /** The tenant authorisation the job ran under (src/cms/consent), as the job named it. */
  authorisation?: string;
}

const TYP = 'desfire-receipt+jws';
const MAX_RECEIPT_CHARS = 65_536;
const B64URL_RE = /^[A-Za-z0-9_-]*$/;
const KEY_CACHE_MAX = 4096;
const keyCache = new Map<string, KeyObject>();

/** The P-256 public key of a certificate, parsed once per certificate (by fingerprint). */
function certificateKey(pem: string): KeyObject {
  const b64 = pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '');
  const fingerprint = createHash('sha256').update(b64).digest('base64');
  const hit = keyCache.get(fingerprint);
  if (hit) return hit;
  let key: KeyObject;
  try {
    key = new X509Certificate(pem).publicKey;
  } catch {
    throw new PkiError('ERR_RECEIPT_SIGNATURE', "the reader's certificate cannot be read");
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new PkiError('ERR_RECEIPT_SIGNATURE', "the reader's certificate key is not P-256");
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value!);
  keyCache.set(fingerprint, key);
  return key;
}

function checkShape(r: unknown): Receipt {
  const o = r as Partial<Receipt> | null;
  const ok =
    !!o &&
    typeof o === 'object' &&
    typeof o.jobId === 'string' &&
    typeof o.jti === 'string' &&
    typeof o.uid === 'string' &&
    /^([0-9A-F]{2}){4,10}$/.test(o.uid) &&
    typeof o.at === 'number' &&
    (o.authorisation === undefined || (typeof o.authorisation === 'string' && o.authorisation.length <= 64)) &&
    Array.isArray(o.results) &&
    o.results.length <= 256 &&
    o.results.every((x) => !!x && typeof x.op === 'string' && Number.isInteger(x.status) && x.status >= 0 && x.status <= 0xff);
  if (!ok) throw new PkiError('ERR_RECEIPT_INVALID', 'receipt fields malformed');
  return o as Receipt;
}

/** Reader side: sign a receipt with the reader's private key (the one its certificate certifies). */
export async function signReceipt(receipt: Receipt, readerKey: CryptoKey): Promise<string> {
  checkShape(receipt);
  const payload = new TextEncoder().encode(JSON.stringify(receipt));
  return new CompactSign(payload).setProtectedHeader({ alg: 'ES256', typ: TYP }).sign(readerKey);
}

/** CMS side: verify a receipt against the reader's certificate and the expected job and token. */
export async function verifyReceipt(jws: string, readerCertificatePem: string, expect: { jobId: string; jti: string }): Promise<Receipt> {
  if (typeof jws !== 'string' || jws.length > MAX_RECEIPT_CHARS || jws.split('.').length !== 3)
    throw new PkiError('ERR_RECEIPT_INVALID', 'receipt is not a compact JWS');
  const [h, p, sig] = jws.split('.') as [string, string, string];
  const key = certificateKey(readerCertificatePem);
  if (!B64URL_RE.test(h) || !B64URL_RE.test(p) || !B64URL_RE.test(sig)) throw new PkiError('ERR_RECEIPT_INVALID', 'receipt is not a compact JWS');
  let header: { alg?: unknown; typ?: unknown; crit?: unknown; b64?: unknown };
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as typeof header;
  } catch {
    throw new PkiError('ERR_RECEIPT_INVALID', 'receipt header is not JSON');
  }
  // ES256 only; no critical extensions (RFC 7515 4.1.11: unknown ones must be refused)
  if (!header || typeof header !== 'object' || header.alg !== 'ES256' || header.crit !== undefined || header.b64 !== undefined || (header.typ !== undefined && header.typ !== TYP))
    throw new PkiError('ERR_RECEIPT_SIGNATURE', "receipt signature does not verify with the reader's certificate");
  const signature = Buffer.from(sig, 'base64url');
  if (signature.length !== 64 || !ecVerify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, signature))
    throw new PkiError('ERR_RECEIPT_SIGNATURE', "receipt signature does not verify with the reader's certificate");
  const payload = Buffer.from(p, 'base64url');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    throw new PkiError('ERR_RECEIPT_INVALID', 'receipt payload is not JSON');
  }
  const r = checkShape(parsed);
  if (r.jobId !== expect.jobId || r.jti !== expect.jti) throw new PkiError('ERR_RECEIPT_MISMATCH', 'receipt is for another job or token');
  return r;
}

// Receipts: the reader signs what it did (job id, token jti, card UID, per-step results) with its
// certificate's key, as a compact JWS (ES256). The CMS verifies with the reader's certificate and
// checks the receipt is for the job and token it issued. A bad signature is ERR_RECEIPT_SIGNATURE.
import { CompactSign, compactVerify, importX509 } from 'jose';
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
  const key = await importX509(readerCertificatePem, 'ES256');
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(jws, key, { algorithms: ['ES256'] }));
  } catch {
    throw new PkiError('ERR_RECEIPT_SIGNATURE', "receipt signature does not verify with the reader's certificate");
  }
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

// Receipts: the station signs what the card answered (compact JWS, ES256) with the key its
// certificate certifies; the CMS verifies with that certificate (src/cms/pki/receipts.ts reads the
// same format: header { alg: ES256, typ: desfire-receipt+jws }, payload = the receipt JSON).
import type { KeyObject } from 'node:crypto';
import { CompactSign } from 'jose';
import { RECEIPT_TYP, type StationReceipt } from './protocol.js';

export async function signStationReceipt(receipt: StationReceipt, privateKey: KeyObject): Promise<string> {
  const payload = new TextEncoder().encode(JSON.stringify(receipt));
  return new CompactSign(payload).setProtectedHeader({ alg: 'ES256', typ: RECEIPT_TYP }).sign(privateKey);
}

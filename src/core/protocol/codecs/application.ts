// Application identifiers and CreateApplication parameters.
//   AID: 3 bytes, least significant byte first (AID 0x000000 is the PICC level).
//   CreateApplication: AID(3) KS1 KS2 [ISO FID(2, LSB first) [DF name 1..16]]
//   KS2: key count (1..14) | 0x20 ISO file identifiers | key type (0x00 DES/2K3DES, 0x40 3K3DES, 0x80 AES).

import { FrameError } from '../../errors.js';
import { ValueRangeError, checkBytes, checkInt } from '../errors.js';
import { APP_KEY_TYPE_BITS, decodeAppKeySettings, decodeAppKeyTypeBits, encodeAppKeySettings, type AppKeySettings, type AppKeyType } from './keySettings.js';
import { ByteReader, le } from './reader.js';

export const PICC_AID = 0x000000;
export const MAX_AID = 0xffffff;
export const ISO_FID_FLAG = 0x20;

export function encodeAid(aid: number): Uint8Array {
  checkInt('aid', aid, 0, MAX_AID);
  return Uint8Array.from(le(aid, 3));
}

export function decodeAid(data: Uint8Array): number {
  const r = new ByteReader(data, 'AID');
  const v = r.u24le();
  r.end();
  return v;
}

/** AID as 6 hex digits, most significant first (the way AIDs are usually written: F0A1B2). */
export function aidToString(aid: number): string {
  checkInt('aid', aid, 0, MAX_AID);
  return aid.toString(16).toUpperCase().padStart(6, '0');
}

export interface CreateApplicationParams {
  readonly aid: number;
  readonly settings: AppKeySettings;
  /** 1..14 */
  readonly keyCount: number;
  readonly keyType: AppKeyType;
  /** Files of the application carry ISO file identifiers (0x20 flag). */
  readonly isoFileIds: boolean;
  /** The application's own ISO FID (only with isoFileIds). */
  readonly isoFid?: number;
  /** ISO DF name, 1..16 bytes (only with isoFid). */
  readonly dfName?: Uint8Array;
}

export function encodeCreateApplication(p: CreateApplicationParams): Uint8Array {
  checkInt('aid', p.aid, 1, MAX_AID);
  checkInt('keyCount', p.keyCount, 1, 14);
  const typeBits = APP_KEY_TYPE_BITS[p.keyType];
  if (typeBits === undefined) throw new ValueRangeError('keyType', 'must be des, 3k3des or aes');
  if (!p.isoFileIds && (p.isoFid !== undefined || p.dfName !== undefined)) {
    throw new ValueRangeError('isoFid', 'an ISO FID or DF name needs isoFileIds');
  }
  if (p.dfName !== undefined && p.isoFid === undefined) throw new ValueRangeError('dfName', 'a DF name needs an ISO FID');
  const out = [...le(p.aid, 3), encodeAppKeySettings(p.settings), p.keyCount | typeBits | (p.isoFileIds ? ISO_FID_FLAG : 0)];
  if (p.isoFid !== undefined) out.push(...le(checkInt('isoFid', p.isoFid, 0, 0xffff), 2));
  if (p.dfName !== undefined) out.push(...checkBytes('dfName', p.dfName, 1, 16));
  return Uint8Array.from(out);
}

export function decodeCreateApplication(data: Uint8Array): CreateApplicationParams {
  const r = new ByteReader(data, 'CreateApplication');
  const aid = r.u24le();
  if (aid === PICC_AID) throw new FrameError('CreateApplication AID 000000 is the PICC');
  const settings = decodeAppKeySettings(r.u8());
  const ks2 = r.u8();
  if ((ks2 & 0x10) !== 0) throw new FrameError('CreateApplication key settings 2 has reserved bit 0x10 set');
  const keyCount = ks2 & 0x0f;
  if (keyCount < 1 || keyCount > 14) throw new FrameError('CreateApplication key count out of range');
  const keyType = decodeAppKeyTypeBits(ks2 & 0xc0);
  const isoFileIds = (ks2 & ISO_FID_FLAG) !== 0;
  let isoFid: number | undefined;
  let dfName: Uint8Array | undefined;
  if (!isoFileIds) {
    r.end();
  } else if (r.remaining > 0) {
    isoFid = r.u16le();
    if (r.remaining > 16) throw new FrameError('CreateApplication DF name longer than 16 bytes');
    if (r.remaining > 0) dfName = r.rest();
  }
  return {
    aid, settings, keyCount, keyType, isoFileIds,
    ...(isoFid !== undefined ? { isoFid } : {}),
    ...(dfName !== undefined ? { dfName } : {}),
  };
}

/** GetApplicationIDs response: a list of 3-byte AIDs. */
export function encodeApplicationIds(aids: readonly number[]): Uint8Array {
  const out: number[] = [];
  for (const a of aids) out.push(...le(checkInt('aid', a, 1, MAX_AID), 3));
  return Uint8Array.from(out);
}

export function decodeApplicationIds(data: Uint8Array): number[] {
  if (data.length % 3 !== 0) throw new FrameError('GetApplicationIDs response is not a multiple of 3 bytes');
  const out: number[] = [];
  for (let i = 0; i < data.length; i += 3) {
    const a = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16);
    if (a === PICC_AID) throw new FrameError('GetApplicationIDs lists AID 000000');
    out.push(a);
  }
  return out;
}

/** One GetDFNames entry (the card sends one per frame): AID, ISO FID (LSB first), DF name (0..16). */
export interface DfNameEntry {
  readonly aid: number;
  readonly isoFid: number;
  readonly dfName: Uint8Array;
}

export function encodeDfNameEntry(e: DfNameEntry): Uint8Array {
  return Uint8Array.from([...le(checkInt('aid', e.aid, 1, MAX_AID), 3), ...le(checkInt('isoFid', e.isoFid, 0, 0xffff), 2),
    ...checkBytes('dfName', e.dfName, 0, 16)]);
}

export function decodeDfNameEntry(data: Uint8Array): DfNameEntry {
  const r = new ByteReader(data, 'GetDFNames entry');
  const aid = r.u24le();
  if (aid === PICC_AID) throw new FrameError('GetDFNames lists AID 000000');
  const isoFid = r.u16le();
  if (r.remaining > 16) throw new FrameError('DF name longer than 16 bytes');
  return { aid, isoFid, dfName: r.rest() };
}

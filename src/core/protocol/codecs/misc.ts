// Small codecs: card UID, free memory, key version, originality signature, file IDs, the headers
// of the data commands, value amounts, SetConfiguration.

import { FrameError } from '../../errors.js';
import { ValueRangeError, checkBytes, checkInt } from '../errors.js';
import { MAX_FILE_NO } from './fileSettings.js';
import { ByteReader, copyBytes, le } from './reader.js';

/** GetCardUID: 7-byte UID (4- and 10-byte UIDs accepted for other parts). */
export function decodeCardUid(data: Uint8Array): Uint8Array {
  if (data.length !== 7 && data.length !== 4 && data.length !== 10) throw new FrameError(`card UID must be 4, 7 or 10 bytes (${data.length})`);
  return copyBytes(data);
}

export function encodeCardUid(uid: Uint8Array): Uint8Array {
  if (uid.length !== 7 && uid.length !== 4 && uid.length !== 10) throw new ValueRangeError('uid', 'must be 4, 7 or 10 bytes');
  return copyBytes(uid);
}

/** GetFreeMemory: 3 bytes little-endian. */
export function decodeFreeMemory(data: Uint8Array): number {
  const r = new ByteReader(data, 'FreeMem response');
  const v = r.u24le();
  r.end();
  return v;
}

export function encodeFreeMemory(bytes: number): Uint8Array {
  return Uint8Array.from(le(checkInt('freeMemory', bytes, 0, 0xffffff), 3));
}

/** GetKeyVersion: one byte. */
export function decodeKeyVersion(data: Uint8Array): number {
  const r = new ByteReader(data, 'GetKeyVersion response');
  const v = r.u8();
  r.end();
  return v;
}

export function encodeKeyVersion(v: number): Uint8Array {
  return Uint8Array.of(checkInt('keyVersion', v, 0, 0xff));
}

/** Read_Sig: the NXP originality signature, 56 bytes (ECDSA secp224r1 r || s). */
export const SIGNATURE_LENGTH = 56;
/** Read_Sig's only address. */
export const READ_SIG_ADDRESS = 0x00;

export function decodeSignature(data: Uint8Array): Uint8Array {
  if (data.length !== SIGNATURE_LENGTH) throw new FrameError(`originality signature must be 56 bytes (${data.length})`);
  return copyBytes(data);
}

export function encodeSignature(sig: Uint8Array): Uint8Array {
  return copyBytes(checkBytes('signature', sig, SIGNATURE_LENGTH));
}

/** GetFileIDs: one byte per file, 0..31, no repeats. */
export function decodeFileIds(data: Uint8Array): number[] {
  const seen = new Set<number>();
  for (const f of data) {
    if (f > MAX_FILE_NO) throw new FrameError('file ID out of range');
    if (seen.has(f)) throw new FrameError('file ID listed twice');
    seen.add(f);
  }
  return [...data];
}

export function encodeFileIds(ids: readonly number[]): Uint8Array {
  if (new Set(ids).size !== ids.length) throw new ValueRangeError('fileIds', 'repeated file number');
  return Uint8Array.from(ids.map((f) => checkInt('fileNo', f, 0, MAX_FILE_NO)));
}

/** GetISOFileIDs: two bytes per file (LSB first), no repeats. */
export function decodeIsoFileIds(data: Uint8Array): number[] {
  if (data.length % 2 !== 0) throw new FrameError('GetISOFileIDs response is not a multiple of 2 bytes');
  const out: number[] = [];
  for (let i = 0; i < data.length; i += 2) out.push(data[i]! | (data[i + 1]! << 8));
  if (new Set(out).size !== out.length) throw new FrameError('ISO file ID listed twice');
  return out;
}

export function encodeIsoFileIds(ids: readonly number[]): Uint8Array {
  if (new Set(ids).size !== ids.length) throw new ValueRangeError('isoFileIds', 'repeated ISO file ID');
  return Uint8Array.from(ids.flatMap((f) => le(checkInt('isoFid', f, 0, 0xffff), 2)));
}

/** ReadData/WriteData header: fileNo offset(3) length(3); ReadRecords/WriteRecord use the same shape. */
export interface DataHeader {
  readonly fileNo: number;
  readonly offset: number;
  /** Byte count (ReadData/WriteData/WriteRecord) or record count (ReadRecords); 0 = all (reads). */
  readonly length: number;
}

export function encodeDataHeader(h: DataHeader): Uint8Array {
  return Uint8Array.from([checkInt('fileNo', h.fileNo, 0, MAX_FILE_NO), ...le(checkInt('offset', h.offset, 0, 0xffffff), 3),
    ...le(checkInt('length', h.length, 0, 0xffffff), 3)]);
}

/** Decode the 7-byte header at the start of `data` (card side); the rest is the command data. */
export function decodeDataHeader(data: Uint8Array): { header: DataHeader; rest: Uint8Array } {
  const r = new ByteReader(data, 'data command header');
  const fileNo = r.u8();
  if (fileNo > MAX_FILE_NO) throw new FrameError('file number out of range');
  const header = { fileNo, offset: r.u24le(), length: r.u24le() };
  return { header, rest: r.rest() };
}

/** Credit/Debit/LimitedCredit amount and GetValue result: signed 32-bit little-endian. */
export function encodeValue(v: number): Uint8Array {
  return Uint8Array.from(le(checkInt('value', v, -0x80000000, 0x7fffffff) >>> 0, 4));
}

export function decodeValue(data: Uint8Array): number {
  const r = new ByteReader(data, 'value');
  const v = r.i32le();
  r.end();
  return v;
}

/** Credit/Debit/LimitedCredit take a non-negative amount. */
export function encodeAmount(v: number): Uint8Array {
  return encodeValue(checkInt('amount', v, 0, 0x7fffffff));
}

/** SetConfiguration (0x5C): option byte (plain header) and the data (sent enciphered). */
export type Configuration =
  | { readonly option: 'picc'; readonly disableFormat: boolean; readonly randomUid: boolean }
  | { readonly option: 'default-key'; readonly key: Uint8Array; readonly keyVersion: number }
  | { readonly option: 'ats'; readonly ats: Uint8Array };

export const CONFIG_OPTION_BYTES = { picc: 0x00, 'default-key': 0x01, ats: 0x02 } as const;

export function encodeConfiguration(c: Configuration): { option: number; data: Uint8Array } {
  switch (c.option) {
    case 'picc':
      return { option: 0x00, data: Uint8Array.of((c.disableFormat ? 1 : 0) | (c.randomUid ? 2 : 0)) };
    case 'default-key':
      return { option: 0x01, data: Uint8Array.from([...checkBytes('key', c.key, 24), checkInt('keyVersion', c.keyVersion, 0, 0xff)]) };
    case 'ats': {
      const ats = checkBytes('ats', c.ats, 1, 20);
      if (ats[0] !== ats.length) throw new ValueRangeError('ats', 'first byte (TL) must be the ATS length');
      return { option: 0x02, data: copyBytes(ats) };
    }
    default:
      throw new ValueRangeError('option', 'unknown configuration option');
  }
}

export function decodeConfiguration(option: number, data: Uint8Array): Configuration {
  switch (option) {
    case 0x00: {
      if (data.length !== 1) throw new FrameError('PICC configuration must be 1 byte');
      const b = data[0]!;
      if ((b & ~0x03) !== 0) throw new FrameError('PICC configuration has reserved bits set');
      return { option: 'picc', disableFormat: (b & 1) !== 0, randomUid: (b & 2) !== 0 };
    }
    case 0x01:
      if (data.length !== 25) throw new FrameError('default key configuration must be 25 bytes');
      return { option: 'default-key', key: copyBytes(data, 0, 24), keyVersion: data[24]! };
    case 0x02:
      if (data.length < 1 || data.length > 20 || data[0] !== data.length) throw new FrameError('ATS configuration malformed');
      return { option: 'ats', ats: copyBytes(data) };
    default:
      throw new FrameError('unknown SetConfiguration option');
  }
}

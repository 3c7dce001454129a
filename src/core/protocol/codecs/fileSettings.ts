// File settings of every file type: as returned by GetFileSettings, as sent by the Create*File
// commands, and the data part of ChangeFileSettings.
//
//   GetFileSettings:  type option access(2) then
//     standard/backup (0/1):  fileSize(3)
//     value (2):              lower(4) upper(4) limitedCreditValue(4) flags(1: bit0 limited credit, bit1 free GetValue)
//     linear/cyclic (3/4):    recordSize(3) maxRecords(3) currentRecords(3)
//     transaction MAC (5):    TMKeyOption(1: 02 AES) TMKeyVersion(1)   (EV2+; created by CE, see tmac.ts)
//   CreateStd/BackupDataFile:    fileNo [isoFid(2)] option access(2) fileSize(3)
//   CreateValueFile:             fileNo option access(2) lower(4) upper(4) value(4) flags(1)
//   CreateLinear/CyclicRecord:   fileNo [isoFid(2)] option access(2) recordSize(3) maxRecords(3)
//   ChangeFileSettings data:     option access(2)        (fileNo is the plain header)
// All integers little-endian; value-file integers are signed 32-bit.

import { FrameError } from '../../errors.js';
import type { CommMode } from '../../sm/types.js';
import { Cmd } from '../commands.js';
import { ValueRangeError, checkInt } from '../errors.js';
import { decodeCommMode, encodeAccessRights, encodeCommMode, readAccessRights, type AccessRights } from './access.js';
import { ByteReader, le } from './reader.js';

export const MAX_FILE_NO = 0x1f;

export type FileType = 'standard' | 'backup' | 'value' | 'linear-record' | 'cyclic-record' | 'transaction-mac';

export const FILE_TYPE_BYTES: Readonly<Record<FileType, number>> = {
  standard: 0x00, backup: 0x01, value: 0x02, 'linear-record': 0x03, 'cyclic-record': 0x04, 'transaction-mac': 0x05,
};

const FILE_TYPES: readonly FileType[] = ['standard', 'backup', 'value', 'linear-record', 'cyclic-record', 'transaction-mac'];

export function decodeFileType(b: number): FileType {
  const t = FILE_TYPES[b];
  if (t === undefined) throw new FrameError('unknown file type');
  return t;
}

interface Common {
  readonly comm: CommMode;
  readonly access: AccessRights;
}

export interface DataFileSettings extends Common {
  readonly type: 'standard' | 'backup';
  readonly fileSize: number;
}

export interface ValueFileSettings extends Common {
  readonly type: 'value';
  readonly lowerLimit: number;
  readonly upperLimit: number;
  readonly limitedCreditValue: number;
  readonly limitedCreditEnabled: boolean;
  readonly freeGetValue: boolean;
}

export interface RecordFileSettings extends Common {
  readonly type: 'linear-record' | 'cyclic-record';
  readonly recordSize: number;
  readonly maxRecords: number;
  readonly currentRecords: number;
}

export interface TransactionMacFileSettings extends Common {
  readonly type: 'transaction-mac';
  readonly keyVersion: number;
}

export type FileSettings = DataFileSettings | ValueFileSettings | RecordFileSettings | TransactionMacFileSettings;

/** The TMKeyOption byte of an AES Transaction MAC key. */
const TMAC_KEY_AES = 0x02;

const I32_MIN = -0x80000000;
const I32_MAX = 0x7fffffff;

function valueFlags(limitedCreditEnabled: boolean, freeGetValue: boolean): number {
  return (limitedCreditEnabled ? 1 : 0) | (freeGetValue ? 2 : 0);
}

function readValueFlags(r: ByteReader): { limitedCreditEnabled: boolean; freeGetValue: boolean } {
  const f = r.u8();
  if ((f & ~0x03) !== 0) throw new FrameError('value file flags have reserved bits set');
  return { limitedCreditEnabled: (f & 1) !== 0, freeGetValue: (f & 2) !== 0 };
}

function i32(field: string, v: number): number[] {
  return le(checkInt(field, v, I32_MIN, I32_MAX) >>> 0, 4);
}

function u24(field: string, v: number, min = 0): number[] {
  return le(checkInt(field, v, min, 0xffffff), 3);
}

function common(s: Common): number[] {
  return [encodeCommMode(s.comm), ...encodeAccessRights(s.access)];
}

/** Encode a GetFileSettings response (the card side). */
export function encodeFileSettings(s: FileSettings): Uint8Array {
  const t = FILE_TYPE_BYTES[s.type];
  if (t === undefined) throw new ValueRangeError('type', 'unknown file type');
  const out = [t, ...common(s)];
  switch (s.type) {
    case 'standard':
    case 'backup':
      out.push(...u24('fileSize', s.fileSize));
      break;
    case 'value':
      out.push(...i32('lowerLimit', s.lowerLimit), ...i32('upperLimit', s.upperLimit), ...i32('limitedCreditValue', s.limitedCreditValue),
        valueFlags(s.limitedCreditEnabled, s.freeGetValue));
      break;
    case 'linear-record':
    case 'cyclic-record':
      out.push(...u24('recordSize', s.recordSize), ...u24('maxRecords', s.maxRecords), ...u24('currentRecords', s.currentRecords));
      break;
    case 'transaction-mac':
      out.push(TMAC_KEY_AES, checkInt('keyVersion', s.keyVersion, 0, 0xff));
      break;
  }
  return Uint8Array.from(out);
}

/** Decode a GetFileSettings response (the host side). */
export function decodeFileSettings(data: Uint8Array): FileSettings {
  const r = new ByteReader(data, 'GetFileSettings response');
  const type = decodeFileType(r.u8());
  const comm = decodeCommMode(r.u8());
  const access = readAccessRights(r);
  let s: FileSettings;
  switch (type) {
    case 'standard':
    case 'backup':
      s = { type, comm, access, fileSize: r.u24le() };
      break;
    case 'value': {
      const lowerLimit = r.i32le();
      const upperLimit = r.i32le();
      const limitedCreditValue = r.i32le();
      s = { type, comm, access, lowerLimit, upperLimit, limitedCreditValue, ...readValueFlags(r) };
      break;
    }
    case 'transaction-mac': {
      if (r.u8() !== TMAC_KEY_AES) throw new FrameError('unknown TMKeyOption');
      s = { type, comm, access, keyVersion: r.u8() };
      break;
    }
    default:
      s = { type, comm, access, recordSize: r.u24le(), maxRecords: r.u24le(), currentRecords: r.u24le() };
  }
  r.end();
  return s;
}

// ---- Create*File ----

interface CreateCommon extends Common {
  readonly fileNo: number;
}

export interface CreateDataFileParams extends CreateCommon {
  readonly type: 'standard' | 'backup';
  /** ISO file identifier (only in applications created with ISO file identifiers). */
  readonly isoFid?: number;
  readonly fileSize: number;
}

export interface CreateValueFileParams extends CreateCommon {
  readonly type: 'value';
  readonly lowerLimit: number;
  readonly upperLimit: number;
  /** Initial value. */
  readonly value: number;
  readonly limitedCreditEnabled: boolean;
  readonly freeGetValue: boolean;
}

export interface CreateRecordFileParams extends CreateCommon {
  readonly type: 'linear-record' | 'cyclic-record';
  readonly isoFid?: number;
  readonly recordSize: number;
  readonly maxRecords: number;
}

export type CreateFileParams = CreateDataFileParams | CreateValueFileParams | CreateRecordFileParams;

export const CREATE_FILE_COMMANDS: Readonly<Record<Exclude<FileType, 'transaction-mac'>, number>> = {
  standard: Cmd.CREATE_STD_DATA_FILE,
  backup: Cmd.CREATE_BACKUP_DATA_FILE,
  value: Cmd.CREATE_VALUE_FILE,
  'linear-record': Cmd.CREATE_LINEAR_RECORD_FILE,
  'cyclic-record': Cmd.CREATE_CYCLIC_RECORD_FILE,
};

/** The data of a Create*File command (after INS). The command byte is CREATE_FILE_COMMANDS[p.type]. */
export function encodeCreateFile(p: CreateFileParams): Uint8Array {
  const out = [checkInt('fileNo', p.fileNo, 0, MAX_FILE_NO)];
  switch (p.type) {
    case 'standard':
    case 'backup':
      if (p.isoFid !== undefined) out.push(...le(checkInt('isoFid', p.isoFid, 0, 0xffff), 2));
      out.push(...common(p), ...u24('fileSize', p.fileSize));
      break;
    case 'value':
      out.push(...common(p), ...i32('lowerLimit', p.lowerLimit), ...i32('upperLimit', p.upperLimit), ...i32('value', p.value),
        valueFlags(p.limitedCreditEnabled, p.freeGetValue));
      break;
    case 'linear-record':
    case 'cyclic-record':
      if (p.isoFid !== undefined) out.push(...le(checkInt('isoFid', p.isoFid, 0, 0xffff), 2));
      out.push(...common(p), ...u24('recordSize', p.recordSize, 1), ...u24('maxRecords', p.maxRecords, 1));
      break;
    default:
      throw new ValueRangeError('type', 'unknown file type');
  }
  return Uint8Array.from(out);
}

/**
 * Decode a Create*File command's data (the card side), given its command byte. Whether an ISO FID
 * is present follows from the length (data files 7 or 9 bytes, record files 10 or 12).
 */
export function decodeCreateFile(ins: number, data: Uint8Array): CreateFileParams {
  const r = new ByteReader(data, 'Create file command');
  const fileNo = r.u8();
  if (fileNo > MAX_FILE_NO) throw new FrameError('file number out of range');
  let p: CreateFileParams;
  switch (ins) {
    case Cmd.CREATE_STD_DATA_FILE:
    case Cmd.CREATE_BACKUP_DATA_FILE: {
      const type = ins === Cmd.CREATE_STD_DATA_FILE ? 'standard' : 'backup';
      if (data.length !== 7 && data.length !== 9) throw new FrameError('create data file: length must be 7 or 9 bytes');
      const isoFid = data.length === 9 ? r.u16le() : undefined;
      const comm = decodeCommMode(r.u8());
      const access = readAccessRights(r);
      p = { type, fileNo, ...(isoFid !== undefined ? { isoFid } : {}), comm, access, fileSize: r.u24le() };
      break;
    }
    case Cmd.CREATE_VALUE_FILE: {
      const comm = decodeCommMode(r.u8());
      const access = readAccessRights(r);
      const lowerLimit = r.i32le();
      const upperLimit = r.i32le();
      const value = r.i32le();
      p = { type: 'value', fileNo, comm, access, lowerLimit, upperLimit, value, ...readValueFlags(r) };
      break;
    }
    case Cmd.CREATE_LINEAR_RECORD_FILE:
    case Cmd.CREATE_CYCLIC_RECORD_FILE: {
      const type = ins === Cmd.CREATE_LINEAR_RECORD_FILE ? 'linear-record' : 'cyclic-record';
      if (data.length !== 10 && data.length !== 12) throw new FrameError('create record file: length must be 10 or 12 bytes');
      const isoFid = data.length === 12 ? r.u16le() : undefined;
      const comm = decodeCommMode(r.u8());
      const access = readAccessRights(r);
      const recordSize = r.u24le();
      const maxRecords = r.u24le();
      if (recordSize === 0 || maxRecords === 0) throw new FrameError('record size and max records must be at least 1');
      p = { type, fileNo, ...(isoFid !== undefined ? { isoFid } : {}), comm, access, recordSize, maxRecords };
      break;
    }
    default:
      throw new FrameError('not a create-file command');
  }
  r.end();
  return p;
}

/** ChangeFileSettings data (after the file number): option byte and access rights. */
export interface ChangeFileSettingsParams {
  readonly comm: CommMode;
  readonly access: AccessRights;
}

export function encodeChangeFileSettings(p: ChangeFileSettingsParams): Uint8Array {
  return Uint8Array.from(common(p));
}

export function decodeChangeFileSettings(data: Uint8Array): ChangeFileSettingsParams {
  const r = new ByteReader(data, 'ChangeFileSettings data');
  const comm = decodeCommMode(r.u8());
  const access = readAccessRights(r);
  r.end();
  return { comm, access };
}

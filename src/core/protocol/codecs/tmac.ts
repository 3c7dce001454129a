// Transaction MAC codecs (EV2+):
//   CreateTransactionMACFile (CE): header  fileNo option access(2) TMKeyOption   (5 bytes, plain)
//                                  data    TMKey(16) TMKeyVersion(1)              (full mode)
//     TMKeyOption 0x02 = AES-128 (the only type EV2 applications use for the TMAC key).
//     Access rights have a special meaning: R = who reads TMC/TMV, RW = CommitReaderID
//     (0..D that key, E free, F CommitReaderID disabled), W must be F, Change = ChangeFileSettings.
//   CommitReaderID (C8):           data TMRI(16); response EncTMRI(16) when authenticated
//   TMAC file contents / CommitTransaction(option 01) response: TMC (LE32) || TMV (8)
//   CommitTransaction option byte: bit 0 = return TMC and TMV.

import { FrameError } from '../../errors.js';
import type { CommMode } from '../../sm/types.js';
import { ValueRangeError, checkInt } from '../errors.js';
import { ACCESS_NEVER, decodeCommMode, encodeAccessRights, encodeCommMode, readAccessRights, type AccessRights } from './access.js';
import { MAX_FILE_NO } from './fileSettings.js';
import { ByteReader, copyBytes, le } from './reader.js';

export const TMAC_KEY_OPTION_AES = 0x02;
export const TMAC_FILE_SIZE = 12;
export const TMRI_LENGTH = 16;
export const COMMIT_RETURN_TMAC = 0x01;

export interface CreateTransactionMacFileParams {
  readonly fileNo: number;
  readonly comm: CommMode;
  readonly access: AccessRights;
  /** AppTransactionMACKey: 16 bytes (AES). */
  readonly key: Uint8Array;
  readonly keyVersion: number;
}

function checkTmacAccess(a: AccessRights): void {
  if (a.write !== ACCESS_NEVER) throw new ValueRangeError('access.write', 'must be F (never) for a Transaction MAC file');
}

/** The 5-byte plain header of CreateTransactionMACFile: fileNo option access(2) TMKeyOption. */
export function encodeCreateTransactionMacHeader(p: Pick<CreateTransactionMacFileParams, 'fileNo' | 'comm' | 'access'>): Uint8Array {
  checkInt('fileNo', p.fileNo, 0, MAX_FILE_NO);
  checkTmacAccess(p.access);
  return Uint8Array.of(p.fileNo, encodeCommMode(p.comm), ...encodeAccessRights(p.access), TMAC_KEY_OPTION_AES);
}

/** The plain header (5 bytes) and the data to encipher (17 bytes) of CreateTransactionMACFile. */
export function encodeCreateTransactionMacFile(p: CreateTransactionMacFileParams): { header: Uint8Array; data: Uint8Array } {
  const header = encodeCreateTransactionMacHeader(p);
  if (!(p.key instanceof Uint8Array) || p.key.length !== 16) throw new ValueRangeError('key', 'a Transaction MAC key is 16 bytes (AES)');
  checkInt('keyVersion', p.keyVersion, 0, 0xff);
  const data = new Uint8Array(17);
  data.set(p.key);
  data[16] = p.keyVersion;
  return { header, data };
}

/** Decode the 5-byte CreateTransactionMACFile header. FrameError when malformed. */
export function decodeCreateTransactionMacHeader(header: Uint8Array): Pick<CreateTransactionMacFileParams, 'fileNo' | 'comm' | 'access'> {
  const r = new ByteReader(header, 'CreateTransactionMACFile header');
  const fileNo = r.u8();
  if (fileNo > MAX_FILE_NO) throw new FrameError('file number out of range');
  const comm = decodeCommMode(r.u8());
  const access = readAccessRights(r);
  const keyOption = r.u8();
  r.end();
  if (keyOption !== TMAC_KEY_OPTION_AES) throw new FrameError('TMKeyOption must be 02 (AES)');
  if (access.write !== ACCESS_NEVER) throw new FrameError('a Transaction MAC file has no write right');
  return { fileNo, comm, access };
}

/** Decode (card side) the header and deciphered data of CreateTransactionMACFile. FrameError when malformed. */
export function decodeCreateTransactionMacFile(header: Uint8Array, data: Uint8Array): CreateTransactionMacFileParams {
  const h = decodeCreateTransactionMacHeader(header);
  if (data.length !== 17) throw new FrameError('CreateTransactionMACFile data is key (16) and version (1)');
  return { ...h, key: copyBytes(data, 0, 16), keyVersion: data[16]! };
}

export interface TransactionMacState {
  /** Transaction MAC counter: committed transactions with a non-empty TMI. */
  readonly tmc: number;
  /** Transaction MAC value of the last such transaction (8 bytes; zero before the first). */
  readonly tmv: Uint8Array;
}

export function encodeTransactionMac(s: TransactionMacState): Uint8Array {
  checkInt('tmc', s.tmc, 0, 0xffffffff);
  if (s.tmv.length !== 8) throw new ValueRangeError('tmv', 'is 8 bytes');
  return Uint8Array.of(...le(s.tmc, 4), ...s.tmv);
}

/** TMC || TMV as read from the TMAC file or returned by CommitTransaction(01). */
export function decodeTransactionMac(data: Uint8Array): TransactionMacState {
  const r = new ByteReader(data, 'Transaction MAC');
  const tmc = (r.u8() | (r.u8() << 8) | (r.u8() << 16) | (r.u8() << 24)) >>> 0;
  const tmv = r.bytes(8);
  r.end();
  return { tmc, tmv };
}

export function decodeEncTmri(data: Uint8Array): Uint8Array | undefined {
  if (data.length === 0) return undefined;
  if (data.length !== TMRI_LENGTH) throw new FrameError(`EncTMRI must be 16 bytes (${data.length})`);
  return copyBytes(data);
}

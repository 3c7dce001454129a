// GetVersion response: three frames joined (7 + 7 + 14 bytes; some EV3 parts add one FabKey byte).
//   hardware / software: vendorId type subType majorVersion minorVersion storageSize protocol
//   production: UID(7) batchNo(5) productionWeek productionYear (both BCD) [fabKey]
// The generation follows from the hardware major version.

import { FrameError } from '../../errors.js';
import { checkBytes, checkInt } from '../errors.js';
import { ByteReader } from './reader.js';

export interface VersionPart {
  readonly vendorId: number;
  readonly type: number;
  readonly subType: number;
  readonly majorVersion: number;
  readonly minorVersion: number;
  /** Storage size byte: 2^(b>>1) bytes, "more than" that when bit 0 is set. */
  readonly storageSize: number;
  readonly protocol: number;
}

export interface VersionInfo {
  readonly hardware: VersionPart;
  readonly software: VersionPart;
  readonly uid: Uint8Array;
  readonly batchNo: Uint8Array;
  readonly productionWeek: number;
  readonly productionYear: number;
  /** Present only on parts that send a 29th byte. */
  readonly fabKey?: number;
}

export type Generation = 'd40' | 'ev1' | 'ev2' | 'ev3' | 'unknown';

/** The DESFire generation from the hardware major version (00 D40, 01 EV1, 12/22 EV2, 30/33 EV3). */
export function generationOf(v: VersionInfo): Generation {
  switch (v.hardware.majorVersion) {
    case 0x00: return 'd40';
    case 0x01: return 'ev1';
    case 0x12:
    case 0x22: return 'ev2';
    case 0x30:
    case 0x33: return 'ev3';
    default: return 'unknown';
  }
}

/** Nominal storage in bytes from the storage size byte (0x18 → 4096). */
export function storageBytes(storageSize: number): number {
  return 2 ** (storageSize >> 1);
}

function readPart(r: ByteReader): VersionPart {
  return {
    vendorId: r.u8(), type: r.u8(), subType: r.u8(), majorVersion: r.u8(), minorVersion: r.u8(),
    storageSize: r.u8(), protocol: r.u8(),
  };
}

function partBytes(field: string, p: VersionPart): number[] {
  return [p.vendorId, p.type, p.subType, p.majorVersion, p.minorVersion, p.storageSize, p.protocol]
    .map((b, i) => checkInt(`${field}[${i}]`, b, 0, 0xff));
}

export function decodeVersion(data: Uint8Array): VersionInfo {
  if (data.length !== 28 && data.length !== 29) throw new FrameError(`GetVersion response must be 28 or 29 bytes (${data.length})`);
  const r = new ByteReader(data, 'GetVersion response');
  const hardware = readPart(r);
  const software = readPart(r);
  const uid = r.bytes(7);
  const batchNo = r.bytes(5);
  const productionWeek = r.u8();
  const productionYear = r.u8();
  const fabKey = r.remaining === 1 ? r.u8() : undefined;
  r.end();
  return { hardware, software, uid, batchNo, productionWeek, productionYear, ...(fabKey !== undefined ? { fabKey } : {}) };
}

export function encodeVersion(v: VersionInfo): Uint8Array {
  const out = [...partBytes('hardware', v.hardware), ...partBytes('software', v.software),
    ...checkBytes('uid', v.uid, 7), ...checkBytes('batchNo', v.batchNo, 5),
    checkInt('productionWeek', v.productionWeek, 0, 0xff), checkInt('productionYear', v.productionYear, 0, 0xff)];
  if (v.fabKey !== undefined) out.push(checkInt('fabKey', v.fabKey, 0, 0xff));
  return Uint8Array.from(out);
}

/** The three frames a card sends for GetVersion (7, 7, then the rest). */
export function versionFrames(v: VersionInfo): [Uint8Array, Uint8Array, Uint8Array] {
  const b = encodeVersion(v);
  return [b.slice(0, 7), b.slice(7, 14), b.slice(14)];
}

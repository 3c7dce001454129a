// File access rights (two bytes on the wire: byte 0 = RW<<4 | Change, byte 1 = R<<4 | W) and the
// comm mode byte (0 plain, 1 MAC, 3 full). A nibble 0..D names a key, E = free, F = never.
// AN12343's example 0x3012 (bytes 30 12) is R=1, W=2, RW=3, Change=0.

import { FrameError } from '../../errors.js';
import type { CommMode } from '../../sm/types.js';
import { checkInt } from '../errors.js';
import { ByteReader } from './reader.js';

export const ACCESS_FREE = 0xe;
export const ACCESS_NEVER = 0xf;

export interface AccessRights {
  readonly read: number;
  readonly write: number;
  readonly readWrite: number;
  readonly change: number;
}

export function encodeAccessRights(a: AccessRights): Uint8Array {
  checkInt('access.read', a.read, 0, 15);
  checkInt('access.write', a.write, 0, 15);
  checkInt('access.readWrite', a.readWrite, 0, 15);
  checkInt('access.change', a.change, 0, 15);
  return Uint8Array.of((a.readWrite << 4) | a.change, (a.read << 4) | a.write);
}

export function decodeAccessRights(data: Uint8Array): AccessRights {
  const r = new ByteReader(data, 'access rights');
  const v = readAccessRights(r);
  r.end();
  return v;
}

export function readAccessRights(r: ByteReader): AccessRights {
  const b0 = r.u8();
  const b1 = r.u8();
  return { readWrite: b0 >> 4, change: b0 & 0x0f, read: b1 >> 4, write: b1 & 0x0f };
}

export const COMM_MODE_BYTES: Readonly<Record<CommMode, number>> = { plain: 0x00, mac: 0x01, full: 0x03 };

export function encodeCommMode(m: CommMode): number {
  const b = COMM_MODE_BYTES[m];
  if (b === undefined) throw new FrameError('comm mode must be plain, mac or full');
  return b;
}

/** Strict: only 0x00, 0x01 and 0x03 (other option bits, e.g. EV2 SDM/additional rights, are refused). */
export function decodeCommMode(b: number): CommMode {
  switch (b) {
    case 0x00: return 'plain';
    case 0x01: return 'mac';
    case 0x03: return 'full';
    default: throw new FrameError('comm mode byte must be 00, 01 or 03');
  }
}

/** Which access nibble a key number satisfies, for callers deciding a file's comm use. */
export function accessAllows(nibble: number, keyNo: number | undefined): boolean {
  if (nibble === ACCESS_FREE) return true;
  if (nibble === ACCESS_NEVER || keyNo === undefined) return false;
  return nibble === keyNo;
}

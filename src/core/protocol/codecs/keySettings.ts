// Key settings (the byte of GetKeySettings / ChangeKeySettings / CreateApplication's first byte).
//   bit 0 master key changeable, bit 1 directory listing without master key,
//   bit 2 create/delete without master key, bit 3 configuration changeable,
//   high nibble (applications only): who may change keys — 0 the master key, 1..D that key,
//   E the key itself (same key), F all keys frozen.
// For the PICC the high nibble is 0 (bit 2 = CreateApplication without the PICC master key).

import { FrameError } from '../../errors.js';
import { checkInt } from '../errors.js';
import { ByteReader } from './reader.js';

export const CHANGE_KEY_WITH_MASTER = 0x0;
export const CHANGE_KEY_SAME_KEY = 0xe;
export const CHANGE_KEY_FROZEN = 0xf;

export interface PiccKeySettings {
  readonly masterKeyChangeable: boolean;
  readonly freeDirectoryList: boolean;
  readonly freeCreateDelete: boolean;
  readonly configurationChangeable: boolean;
}

export interface AppKeySettings extends PiccKeySettings {
  /** 0 = application master key, 1..0xD = that key, 0xE = the key itself, 0xF = frozen. */
  readonly changeKeyAccess: number;
}

function lowBits(s: PiccKeySettings): number {
  return (s.masterKeyChangeable ? 1 : 0) | (s.freeDirectoryList ? 2 : 0) | (s.freeCreateDelete ? 4 : 0) | (s.configurationChangeable ? 8 : 0);
}

function fromLow(b: number): PiccKeySettings {
  return {
    masterKeyChangeable: (b & 1) !== 0,
    freeDirectoryList: (b & 2) !== 0,
    freeCreateDelete: (b & 4) !== 0,
    configurationChangeable: (b & 8) !== 0,
  };
}

export function encodeAppKeySettings(s: AppKeySettings): number {
  checkInt('changeKeyAccess', s.changeKeyAccess, 0, 15);
  return (s.changeKeyAccess << 4) | lowBits(s);
}

export function decodeAppKeySettings(b: number): AppKeySettings {
  if (!Number.isInteger(b) || b < 0 || b > 0xff) throw new FrameError('key settings must be a byte');
  return { changeKeyAccess: b >> 4, ...fromLow(b) };
}

export function encodePiccKeySettings(s: PiccKeySettings): number {
  return lowBits(s);
}

/** PICC key settings: the high nibble must be 0. */
export function decodePiccKeySettings(b: number): PiccKeySettings {
  if (!Number.isInteger(b) || b < 0 || b > 0xff) throw new FrameError('key settings must be a byte');
  if (b >> 4 !== 0) throw new FrameError('PICC key settings have a non-zero high nibble');
  return fromLow(b);
}

/** Key type as carried in the high bits of the key-count byte: 0x00 DES/2K3DES, 0x40 3K3DES, 0x80 AES. */
export type AppKeyType = 'des' | '3k3des' | 'aes';

export const APP_KEY_TYPE_BITS: Readonly<Record<AppKeyType, number>> = { des: 0x00, '3k3des': 0x40, aes: 0x80 };

export function decodeAppKeyTypeBits(bits: number): AppKeyType {
  switch (bits) {
    case 0x00: return 'des';
    case 0x40: return '3k3des';
    case 0x80: return 'aes';
    default: throw new FrameError('key type bits must be 0x00, 0x40 or 0x80');
  }
}

/** The GetKeySettings response: settings byte, then key count | key type bits. */
export interface KeySettingsInfo {
  /** The raw settings byte; decode with decodeAppKeySettings or decodePiccKeySettings. */
  readonly settings: number;
  /** Number of keys (1..14). */
  readonly keyCount: number;
  readonly keyType: AppKeyType;
}

export function encodeKeySettingsResponse(r: KeySettingsInfo): Uint8Array {
  checkInt('settings', r.settings, 0, 0xff);
  checkInt('keyCount', r.keyCount, 1, 14);
  return Uint8Array.of(r.settings, r.keyCount | APP_KEY_TYPE_BITS[r.keyType]);
}

export function decodeKeySettingsResponse(data: Uint8Array): KeySettingsInfo {
  const r = new ByteReader(data, 'GetKeySettings response');
  const settings = r.u8();
  const k = r.u8();
  r.end();
  const keyCount = k & 0x0f;
  if ((k & 0x30) !== 0) throw new FrameError('GetKeySettings key count byte has reserved bits set');
  if (keyCount < 1 || keyCount > 14) throw new FrameError('GetKeySettings key count out of range');
  return { settings, keyCount, keyType: decodeAppKeyTypeBits(k & 0xc0) };
}

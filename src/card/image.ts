// Card images: the whole persistent state of a card as versioned, JSON-serialisable data.
//
// SECRET-BEARING: an image holds every key of the card in hex (PICC master key, application keys),
// exactly as a real card's EEPROM does. Treat image files like key files (mode 0600, never commit
// one that matters). Volatile state (authentication, uncommitted transaction, chaining) is never
// part of an image: a power cycle loses it on a real card too.
import { fromHex, toHex } from '../core/crypto/bytes.js';
import type { CommMode } from '../core/sm/types.js';
import {
  type AccessRights,
  type AppState,
  type CardState,
  type FileState,
  type KeySlot,
  MAX_APPS,
  MAX_FILES,
  MAX_KEYS,
  type Profile,
  type StoredKeyType,
  keyTypeLength,
} from './model.js';

export const IMAGE_FORMAT = 'desfire-cms/card-image';
export const IMAGE_VERSION = 1;

export interface KeyImage {
  key: string;
  version: number;
}

export interface FileImage {
  fileNo: number;
  type: FileState['type'];
  isoFid?: number;
  comm: CommMode;
  /** Access rights as 4 hex digits RW Change R W (e.g. "3012"). */
  access: string;
  size?: number;
  data?: string;
  lower?: number;
  upper?: number;
  value?: number;
  limitedCreditEnabled?: boolean;
  freeGetValue?: boolean;
  limitedCreditValue?: number;
  recordSize?: number;
  maxRecords?: number;
  records?: string[];
  /** Transaction MAC file: AppTransactionMACKey (secret, like every key in an image), version, TMC, TMV, TMRIPrev. */
  tmKey?: string;
  tmKeyVersion?: number;
  tmc?: number;
  tmv?: string;
  tmriPrev?: string;
}

export interface AppImage {
  aid: string;
  keySettings: number;
  keyType: StoredKeyType;
  keys: KeyImage[];
  isoFid?: number;
  dfName?: string;
  isoFileIds: boolean;
  files: FileImage[];
}

export interface CardImage {
  format: typeof IMAGE_FORMAT;
  version: typeof IMAGE_VERSION;
  uid: string;
  profile: Profile;
  batch: string;
  week: number;
  year: number;
  picc: {
    keyType: StoredKeyType;
    key: KeyImage;
    keySettings: number;
    formatDisabled: boolean;
    randomUid: boolean;
    defaultKey: string;
    defaultKeyVersion: number;
    ats?: string;
  };
  apps: AppImage[];
}

/** Thrown for an image that is not a valid card image. */
export class CardImageError extends Error {
  readonly code = 'ERR_CARD_IMAGE';
  constructor(message: string) {
    super(message);
    this.name = 'CardImageError';
  }
}

export function aidHex(aid: number): string {
  return aid.toString(16).toUpperCase().padStart(6, '0');
}

function accessHex(a: AccessRights): string {
  return [a.readWrite, a.change, a.read, a.write].map((n) => n.toString(16).toUpperCase()).join('');
}

function keyImage(k: KeySlot): KeyImage {
  return { key: toHex(k.key), version: k.version };
}

function fileImage(f: FileState): FileImage {
  const base = { fileNo: f.fileNo, type: f.type, ...(f.isoFid !== undefined ? { isoFid: f.isoFid } : {}), comm: f.comm, access: accessHex(f.access) };
  switch (f.type) {
    case 'std':
    case 'backup':
      return { ...base, size: f.size, data: toHex(f.data) };
    case 'value':
      return {
        ...base,
        lower: f.lower,
        upper: f.upper,
        value: f.value,
        limitedCreditEnabled: f.limitedCreditEnabled,
        freeGetValue: f.freeGetValue,
        limitedCreditValue: f.limitedCreditValue,
      };
    case 'linear':
    case 'cyclic':
      return { ...base, recordSize: f.recordSize, maxRecords: f.maxRecords, records: f.records.map((r) => toHex(r)) };
    case 'tmac':
      return { ...base, tmKey: toHex(f.key), tmKeyVersion: f.keyVersion, tmc: f.tmc, tmv: toHex(f.tmv), tmriPrev: toHex(f.tmriPrev) };
  }
}

export function encodeImage(s: CardState): CardImage {
  return {
    format: IMAGE_FORMAT,
    version: IMAGE_VERSION,
    uid: toHex(s.uid),
    profile: s.profile,
    batch: toHex(s.batch),
    week: s.week,
    year: s.year,
    picc: {
      keyType: s.picc.keyType,
      key: keyImage(s.picc.key),
      keySettings: s.picc.keySettings,
      formatDisabled: s.picc.formatDisabled,
      randomUid: s.picc.randomUid,
      defaultKey: toHex(s.picc.defaultKey),
      defaultKeyVersion: s.picc.defaultKeyVersion,
      ...(s.picc.ats ? { ats: toHex(s.picc.ats) } : {}),
    },
    apps: [...s.apps.values()].map((a) => ({
      aid: aidHex(a.aid),
      keySettings: a.keySettings,
      keyType: a.keyType,
      keys: a.keys.map(keyImage),
      ...(a.isoFid !== undefined ? { isoFid: a.isoFid } : {}),
      ...(a.dfName ? { dfName: toHex(a.dfName) } : {}),
      isoFileIds: a.isoFileIds,
      files: [...a.files.values()].map(fileImage),
    })),
  };
}

// ---- decoding, strict -------------------------------------------------------------------------

function fail(where: string, what: string): never {
  throw new CardImageError(`${where}: ${what}`);
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, 'expected an object');
  return v as Record<string, unknown>;
}

function int(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(where, `expected an integer in ${min}..${max}`);
  return v;
}

function bool(v: unknown, where: string): boolean {
  if (typeof v !== 'boolean') fail(where, 'expected a boolean');
  return v;
}

function hex(v: unknown, where: string, len?: number, maxLen?: number): Uint8Array {
  if (typeof v !== 'string') fail(where, 'expected a hex string');
  let b: Uint8Array;
  try {
    b = fromHex(v);
  } catch {
    fail(where, 'not valid hex');
  }
  if (len !== undefined && b.length !== len) fail(where, `expected ${len} bytes`);
  if (maxLen !== undefined && b.length > maxLen) fail(where, `at most ${maxLen} bytes`);
  return b;
}

function keyType(v: unknown, where: string): StoredKeyType {
  if (v !== 'des' && v !== '3k3des' && v !== 'aes') fail(where, 'expected des (the DES/2K3DES family), 3k3des or aes');
  return v;
}

function comm(v: unknown, where: string): CommMode {
  if (v !== 'plain' && v !== 'mac' && v !== 'full') fail(where, 'expected plain, mac or full');
  return v;
}

function slot(v: unknown, where: string, type: StoredKeyType): KeySlot {
  const o = obj(v, where);
  return { key: hex(o.key, `${where}.key`, keyTypeLength(type)), version: int(o.version, `${where}.version`, 0, 255) };
}

function access(v: unknown, where: string): AccessRights {
  if (typeof v !== 'string' || !/^[0-9A-Fa-f]{4}$/.test(v)) fail(where, 'expected 4 hex digits');
  const n = [...v].map((c) => parseInt(c, 16));
  return { readWrite: n[0]!, change: n[1]!, read: n[2]!, write: n[3]! };
}

const I32 = [-0x80000000, 0x7fffffff] as const;

function file(v: unknown, where: string): FileState {
  const o = obj(v, where);
  const base = {
    fileNo: int(o.fileNo, `${where}.fileNo`, 0, MAX_FILES - 1),
    ...(o.isoFid !== undefined ? { isoFid: int(o.isoFid, `${where}.isoFid`, 0, 0xffff) } : {}),
    comm: comm(o.comm, `${where}.comm`),
    access: access(o.access, `${where}.access`),
  };
  switch (o.type) {
    case 'std':
    case 'backup': {
      const size = int(o.size, `${where}.size`, 1, 0xffffff);
      const data = hex(o.data, `${where}.data`, size);
      return { ...base, type: o.type, size, data };
    }
    case 'value': {
      const lower = int(o.lower, `${where}.lower`, ...I32);
      const upper = int(o.upper, `${where}.upper`, ...I32);
      const value = int(o.value, `${where}.value`, ...I32);
      if (lower > upper || value < lower || value > upper) fail(where, 'value outside its limits');
      return {
        ...base,
        type: 'value',
        lower,
        upper,
        value,
        limitedCreditEnabled: bool(o.limitedCreditEnabled, `${where}.limitedCreditEnabled`),
        freeGetValue: bool(o.freeGetValue, `${where}.freeGetValue`),
        limitedCreditValue: int(o.limitedCreditValue, `${where}.limitedCreditValue`, 0, 0x7fffffff),
      };
    }
    case 'linear':
    case 'cyclic': {
      const recordSize = int(o.recordSize, `${where}.recordSize`, 1, 0xffffff);
      const maxRecords = int(o.maxRecords, `${where}.maxRecords`, o.type === 'cyclic' ? 2 : 1, 0xffffff);
      if (!Array.isArray(o.records)) fail(`${where}.records`, 'expected an array');
      const cap = o.type === 'cyclic' ? maxRecords - 1 : maxRecords;
      if (o.records.length > cap) fail(`${where}.records`, `more than ${cap} records`);
      const records = o.records.map((r, i) => hex(r, `${where}.records[${i}]`, recordSize));
      return { ...base, type: o.type, recordSize, maxRecords, records };
    }
    case 'tmac': {
      if (base.isoFid !== undefined) fail(`${where}.isoFid`, 'a Transaction MAC file has no ISO FID');
      if (base.access.write !== 0xf) fail(`${where}.access`, 'a Transaction MAC file has W = F');
      return {
        ...base,
        type: 'tmac',
        key: hex(o.tmKey, `${where}.tmKey`, 16),
        keyVersion: int(o.tmKeyVersion, `${where}.tmKeyVersion`, 0, 255),
        tmc: int(o.tmc, `${where}.tmc`, 0, 0xffffffff),
        tmv: hex(o.tmv, `${where}.tmv`, 8),
        tmriPrev: hex(o.tmriPrev, `${where}.tmriPrev`, 16),
      };
    }
    default:
      fail(`${where}.type`, 'expected std, backup, value, linear, cyclic or tmac');
  }
}

function app(v: unknown, where: string): AppState {
  const o = obj(v, where);
  const aidBytes = hex(o.aid, `${where}.aid`, 3);
  const aid = (aidBytes[0]! << 16) | (aidBytes[1]! << 8) | aidBytes[2]!;
  if (aid === 0) fail(`${where}.aid`, '000000 is the PICC');
  const kt = keyType(o.keyType, `${where}.keyType`);
  if (!Array.isArray(o.keys) || o.keys.length < 1 || o.keys.length > MAX_KEYS) fail(`${where}.keys`, `expected 1..${MAX_KEYS} keys`);
  if (!Array.isArray(o.files) || o.files.length > MAX_FILES) fail(`${where}.files`, `expected at most ${MAX_FILES} files`);
  const files = new Map<number, FileState>();
  o.files.forEach((f, i) => {
    const fs = file(f, `${where}.files[${i}]`);
    if (files.has(fs.fileNo)) fail(`${where}.files[${i}]`, 'duplicate file number');
    if (fs.type === 'tmac' && [...files.values()].some((g) => g.type === 'tmac')) fail(`${where}.files[${i}]`, 'a second Transaction MAC file');
    files.set(fs.fileNo, fs);
  });
  return {
    aid,
    keySettings: int(o.keySettings, `${where}.keySettings`, 0, 255),
    keyType: kt,
    keys: o.keys.map((k, i) => slot(k, `${where}.keys[${i}]`, kt)),
    ...(o.isoFid !== undefined ? { isoFid: int(o.isoFid, `${where}.isoFid`, 0, 0xffff) } : {}),
    ...(o.dfName !== undefined ? { dfName: hex(o.dfName, `${where}.dfName`, undefined, 16) } : {}),
    isoFileIds: bool(o.isoFileIds, `${where}.isoFileIds`),
    files,
  };
}

export function decodeImage(v: unknown): CardState {
  const o = obj(v, 'image');
  if (o.format !== IMAGE_FORMAT) fail('image.format', `expected "${IMAGE_FORMAT}"`);
  if (o.version !== IMAGE_VERSION) fail('image.version', `unsupported version ${String(o.version)} (this build reads ${IMAGE_VERSION})`);
  const uid = hex(o.uid, 'image.uid');
  if (uid.length !== 7) fail('image.uid', 'expected 7 bytes');
  if (o.profile !== 'ev1' && o.profile !== 'ev2' && o.profile !== 'ev3') fail('image.profile', 'expected ev1, ev2 or ev3');
  const p = obj(o.picc, 'image.picc');
  const pkt = keyType(p.keyType, 'image.picc.keyType');
  if (!Array.isArray(o.apps) || o.apps.length > MAX_APPS) fail('image.apps', `expected at most ${MAX_APPS} applications`);
  const apps = new Map<number, AppState>();
  o.apps.forEach((a, i) => {
    const s = app(a, `image.apps[${i}]`);
    if (apps.has(s.aid)) fail(`image.apps[${i}]`, 'duplicate AID');
    apps.set(s.aid, s);
  });
  return {
    uid,
    profile: o.profile,
    batch: hex(o.batch, 'image.batch', 5),
    week: int(o.week, 'image.week', 0, 255),
    year: int(o.year, 'image.year', 0, 255),
    picc: {
      keyType: pkt,
      key: slot(p.key, 'image.picc.key', pkt),
      keySettings: int(p.keySettings, 'image.picc.keySettings', 0, 255),
      formatDisabled: bool(p.formatDisabled, 'image.picc.formatDisabled'),
      randomUid: bool(p.randomUid, 'image.picc.randomUid'),
      defaultKey: hex(p.defaultKey, 'image.picc.defaultKey', 24),
      defaultKeyVersion: int(p.defaultKeyVersion, 'image.picc.defaultKeyVersion', 0, 255),
      ...(p.ats !== undefined ? { ats: hex(p.ats, 'image.picc.ats', undefined, 20) } : {}),
    },
    apps,
  };
}

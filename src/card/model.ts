// The card's persistent state (what a real card keeps in EEPROM) and small helpers over it.
// Key bytes live here; the image codec (image.ts) serialises them (images are secret-bearing).
import type { KeyType } from '../core/crypto/cipher.js';
import { effectiveKeyType } from '../core/crypto/keyversion.js';
import type { CommMode } from '../core/sm/types.js';

export type Profile = 'ev1' | 'ev2' | 'ev3';

export interface KeySlot {
  key: Uint8Array;
  version: number;
}

/** Access rights nibbles: 0..13 a key number, 14 free, 15 never. */
export interface AccessRights {
  read: number;
  write: number;
  readWrite: number;
  change: number;
}

export const FREE = 0xe;
export const NEVER = 0xf;

interface FileBase {
  fileNo: number;
  isoFid?: number;
  comm: CommMode;
  access: AccessRights;
}

export interface DataFile extends FileBase {
  type: 'std' | 'backup';
  size: number;
  /** Committed contents (for a standard file: the contents). */
  data: Uint8Array;
}

export interface ValueFile extends FileBase {
  type: 'value';
  lower: number;
  upper: number;
  value: number;
  limitedCreditEnabled: boolean;
  freeGetValue: boolean;
  /** Amount a LimitedCredit may add now (sum of the debits of the last debit-only transaction). */
  limitedCreditValue: number;
}

export interface RecordFile extends FileBase {
  type: 'linear' | 'cyclic';
  recordSize: number;
  maxRecords: number;
  /** Committed records, oldest first. */
  records: Uint8Array[];
}

/**
 * Transaction MAC file (EV2+, file type 05, at most one per application): the AppTransactionMACKey
 * (AES) and its version, the counter TMC and value TMV of the last committed transaction with a
 * non-empty Transaction MAC Input, and the reader ID that transaction committed (TMRIPrev).
 * Access rights: R reads TMC||TMV, RW is the CommitReaderID key (F: disabled), W is always F.
 */
export interface TmacFile extends FileBase {
  type: 'tmac';
  key: Uint8Array;
  keyVersion: number;
  tmc: number;
  tmv: Uint8Array;
  tmriPrev: Uint8Array;
}

export type FileState = DataFile | ValueFile | RecordFile | TmacFile;
export type FileType = FileState['type'];

export const FILE_TYPE_CODE: Record<FileType, number> = { std: 0, backup: 1, value: 2, linear: 3, cyclic: 4, tmac: 5 };

/** The application's Transaction MAC file, if it has one. */
export function tmacFileOf(app: AppState): TmacFile | undefined {
  for (const f of app.files.values()) if (f.type === 'tmac') return f;
  return undefined;
}

export interface AppState {
  aid: number;
  keySettings: number;
  keyType: StoredKeyType;
  keys: KeySlot[];
  isoFid?: number;
  dfName?: Uint8Array;
  /** Created with the ISO file identifier flag: files carry a 2-byte ISO FID. */
  isoFileIds: boolean;
  files: Map<number, FileState>;
}

export interface PiccState {
  keyType: StoredKeyType;
  key: KeySlot;
  keySettings: number;
  formatDisabled: boolean;
  randomUid: boolean;
  /** Default key for new applications' keys (SetConfiguration option 01), 24 bytes + version. */
  defaultKey: Uint8Array;
  defaultKeyVersion: number;
  ats?: Uint8Array;
}

export interface CardState {
  uid: Uint8Array;
  profile: Profile;
  picc: PiccState;
  apps: Map<number, AppState>;
  /** Production batch and date as shown by GetVersion (5 + 2 bytes). */
  batch: Uint8Array;
  week: number;
  year: number;
}

export const MAX_APPS = 28;
export const MAX_KEYS = 14;
export const MAX_FILES = 32;

/**
 * Key types as the card stores them: 'des' is the DES/2K3DES family (16 bytes stored; a key whose
 * halves are equal, parity bits ignored, is single DES, as on a real card), '3k3des' 24 bytes,
 * 'aes' 16 bytes. '2k3des' is never stored: it is the 'des' family.
 */
export type StoredKeyType = 'des' | '3k3des' | 'aes';

export function keyTypeLength(t: StoredKeyType): number {
  return t === '3k3des' ? 24 : 16;
}

/** The cipher type and key bytes to authenticate with (DES when the two halves are equal). */
export function effectiveKey(t: StoredKeyType, key: Uint8Array): { type: KeyType; key: Uint8Array } {
  if (t !== 'des') return { type: t, key };
  if (effectiveKeyType('2k3des', key) === '2k3des') return { type: '2k3des', key };
  return { type: 'des', key: key.subarray(0, 8) };
}

/** Store a key given as the host names it (8-byte DES becomes 16 bytes K||K). */
export function storedKey(t: KeyType, key: Uint8Array): { type: StoredKeyType; key: Uint8Array } {
  if (t === 'des') {
    const k = new Uint8Array(16);
    k.set(key.subarray(0, 8), 0);
    k.set(key.subarray(0, 8), 8);
    return { type: 'des', key: k };
  }
  return { type: t === '2k3des' ? 'des' : t, key: Uint8Array.from(key) };
}

export function factoryState(uid: Uint8Array, profile: Profile): CardState {
  return {
    uid: Uint8Array.from(uid),
    profile,
    picc: {
      keyType: 'des',
      key: { key: new Uint8Array(16), version: 0 },
      keySettings: 0x0f,
      formatDisabled: false,
      randomUid: false,
      defaultKey: new Uint8Array(24),
      defaultKeyVersion: 0,
    },
    apps: new Map(),
    batch: Uint8Array.of(0xba, 0x5e, 0x1d, 0x00, 0x00),
    week: 0x47,
    year: 0x26,
  };
}

/** A new key slot of `type` from the PICC's default key (all zero unless SetConfiguration changed it). */
export function defaultSlot(picc: PiccState, type: StoredKeyType): KeySlot {
  return { key: picc.defaultKey.slice(0, keyTypeLength(type)), version: picc.defaultKeyVersion };
}

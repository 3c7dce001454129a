// The normalised, validated layout: every default applied, every reference resolved. Produced only
// by parseLayout (parse.ts); the linter and the DESFire mapping work on this, never on raw YAML.
import type { CommMode, KeyRole } from './schema.js';

export type { CommMode, KeyRole } from './schema.js';

/** Where something is in the source file: a JSON pointer and, when known, 1-based line/column. */
export interface SourcePos {
  pointer: string;
  line?: number;
  col?: number;
}

export interface KeySettingsFlags {
  masterKeyChangeable: boolean;
  freeDirectoryListing: boolean;
  freeCreateDelete: boolean;
  configurationChangeable: boolean;
}

/** Who may change the application's keys (the high nibble of key settings byte 1). */
export type ChangeKeyAccess =
  | { kind: 'amk' }
  | { kind: 'self' }
  | { kind: 'frozen' }
  | { kind: 'role'; role: KeyRole };

export interface AppKeySettings extends KeySettingsFlags {
  changeKey: ChangeKeyAccess;
  allowSelfChange: boolean;
}

export type DiversificationInput = 'uid' | 'aid' | 'system' | 'keyNo';

export type Derivation =
  | { method: 'diversified'; master: string; masterDeclared: boolean; input: DiversificationInput[] }
  | { method: 'random' }
  | { method: 'static'; keyRef: string };

export interface LayoutKey {
  no: number;
  role: KeyRole;
  derivation: Derivation;
  pos: SourcePos;
}

/** One access right: a role's key, free access (nibble E) or never (nibble F). */
export type Right = { kind: 'free' } | { kind: 'never' } | { kind: 'role'; role: KeyRole };

export type RightName = 'read' | 'write' | 'readWrite' | 'change';
export const RIGHT_NAMES: readonly RightName[] = ['read', 'write', 'readWrite', 'change'];

export type FileAccess = Record<RightName, Right>;

interface FileBase {
  no: number;
  name: string;
  comm: CommMode;
  access: FileAccess;
  public: boolean;
  pos: SourcePos;
}

export interface DataFile extends FileBase {
  type: 'std' | 'backup';
  size: number;
}

export interface ValueFile extends FileBase {
  type: 'value';
  lower: number;
  upper: number;
  value: number;
  limitedCredit: boolean;
}

export interface RecordFile extends FileBase {
  type: 'linear' | 'cyclic';
  recordSize: number;
  maxRecords: number;
}

/** EV2 Transaction MAC file: its key comes from the application key with role 'tmac'. */
export interface TmacFile extends FileBase {
  type: 'tmac';
}

export type LayoutFile = DataFile | ValueFile | RecordFile | TmacFile;
export type FileType = LayoutFile['type'];

export interface LayoutApplication {
  tenantId: string;
  /** Upper-case hex, 6 digits, as written in the file. */
  aid: string;
  name: string;
  keyType: 'aes' | '3k3des';
  keyCount: number;
  /** Hex, possibly empty. */
  systemIdentifier: string;
  keySettings: AppKeySettings;
  keys: LayoutKey[];
  files: LayoutFile[];
  pos: SourcePos;
}

export interface LayoutTenant {
  id: string;
  name: string;
  applications: LayoutApplication[];
  pos: SourcePos;
}

export interface PiccLayout {
  keySettings: KeySettingsFlags;
  randomUid: boolean;
  pos: SourcePos;
}

export interface Layout {
  name: string;
  picc: PiccLayout;
  tenants: LayoutTenant[];
  /** Resolves any JSON pointer of the source file to a position (nearest existing node). */
  locate(pointer: string): SourcePos;
}

/** Every application of a layout, in file order. */
export function applicationsOf(layout: Layout): LayoutApplication[] {
  return layout.tenants.flatMap((t) => t.applications);
}

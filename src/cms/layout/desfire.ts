// Layout -> DESFire parameters. Pure: the exact CreateApplication, Create*File and PICC settings a
// station job sends, with the encodings of src/core/protocol/codecs (the card side decodes the same).
//   key settings byte 1 = changeKey nibble << 4 | configChangeable<<3 | freeCreateDelete<<2 |
//                         freeDirList<<1 | masterKeyChangeable
//   key settings byte 2 = keyCount | 0x80 (AES) or 0x40 (3K3DES)
//   access rights       = [RW<<4 | Change, R<<4 | W]; nibble E free, F never, else the role's key
//   tmac file           = command CE; data = the CE header (fileNo option access(2) TMKeyOption 02)
//                         followed by the number of the application key (role 'tmac') the station
//                         derives the AES TMAC key from (deriveTmacKey, src/core/sm/tmac.ts): the
//                         key itself travels sealed with the job's other keys, never in the plan
import {
  ACCESS_FREE,
  ACCESS_NEVER,
  APP_KEY_TYPE_BITS,
  CHANGE_KEY_FROZEN,
  CHANGE_KEY_SAME_KEY,
  CHANGE_KEY_WITH_MASTER,
  CREATE_FILE_COMMANDS,
  encodeAccessRights,
  encodeAppKeySettings,
  encodeCreateApplication,
  encodeCreateFile,
  encodeCreateTransactionMacHeader,
  encodePiccKeySettings,
  type AccessRights,
  type AppKeySettings as WireAppKeySettings,
  type CreateApplicationParams,
  type CreateFileParams,
  type FileType as WireFileType,
  type PiccKeySettings as WirePiccKeySettings,
} from '../../core/protocol/codecs/index.js';
import { Cmd } from '../../core/protocol/commands.js';
import type { KeyRole } from './schema.js';
import type { Derivation, Layout, LayoutApplication, LayoutFile, Right } from './types.js';

export interface KeyPlan {
  no: number;
  role: KeyRole;
  derivation: Derivation;
}

/** A Transaction MAC file: CreateTransactionMACFile with the AES key derived from key `keyNo`. */
export interface TmacFileParams {
  type: 'transaction-mac';
  fileNo: number;
  comm: CreateFileParams['comm'];
  access: AccessRights;
  /** The application key (role 'tmac') the TMAC key is derived from. */
  keyNo: number;
}

export interface FilePlan {
  fileNo: number;
  name: string;
  /** The Create*File command byte (CE for the Transaction MAC file). */
  command: number;
  params: CreateFileParams | TmacFileParams;
  /** The Create*File command data (after the command byte); for CE the header and the source key number. */
  data: Uint8Array;
  /** The two access-rights bytes as on the wire. */
  accessRights: Uint8Array;
}

export interface ApplicationPlan {
  tenantId: string;
  name: string;
  /** AID as written (6 hex digits, MSB first) and as a number (the codec sends it LSB first). */
  aid: string;
  aidNumber: number;
  keySettings1: number;
  keySettings2: number;
  createApplication: CreateApplicationParams;
  /** CreateApplication command data: AID (3, LSB first), key settings 1, key settings 2. */
  createApplicationData: Uint8Array;
  /** role -> key number. */
  roleKeys: Partial<Record<KeyRole, number>>;
  keys: KeyPlan[];
  files: FilePlan[];
}

export interface PiccPlan {
  /** ChangeKeySettings byte at PICC level. */
  keySettings: number;
  randomUid: boolean;
  /** SetConfiguration option 0x00 data byte (bit 1 = random UID; bit 0 = FormatPICC disabled: never set). */
  configurationByte: number;
}

export interface LayoutPlan {
  picc: PiccPlan;
  applications: ApplicationPlan[];
}

const WIRE_FILE_TYPE: Record<LayoutFile['type'], WireFileType> = {
  std: 'standard',
  backup: 'backup',
  value: 'value',
  linear: 'linear-record',
  cyclic: 'cyclic-record',
  tmac: 'transaction-mac',
};

export function roleKeys(app: LayoutApplication): Partial<Record<KeyRole, number>> {
  const out: Partial<Record<KeyRole, number>> = {};
  for (const k of app.keys) out[k.role] = k.no;
  return out;
}

function nibble(right: Right, keys: Partial<Record<KeyRole, number>>): number {
  if (right.kind === 'free') return ACCESS_FREE;
  if (right.kind === 'never') return ACCESS_NEVER;
  const no = keys[right.role];
  // parseLayout guarantees every referenced role exists; a gap here is a programming error.
  if (no === undefined) throw new Error(`role ${right.role} has no key`);
  return no;
}

export function accessRightsOf(f: LayoutFile, keys: Partial<Record<KeyRole, number>>): AccessRights {
  return {
    read: nibble(f.access.read, keys),
    write: nibble(f.access.write, keys),
    readWrite: nibble(f.access.readWrite, keys),
    change: nibble(f.access.change, keys),
  };
}

export function appKeySettingsOf(app: LayoutApplication): WireAppKeySettings {
  const ks = app.keySettings;
  const ck = ks.changeKey;
  let changeKeyAccess: number;
  switch (ck.kind) {
    case 'amk':
      changeKeyAccess = CHANGE_KEY_WITH_MASTER;
      break;
    case 'self':
      changeKeyAccess = CHANGE_KEY_SAME_KEY;
      break;
    case 'frozen':
      changeKeyAccess = CHANGE_KEY_FROZEN;
      break;
    case 'role':
      changeKeyAccess = nibble(ck, roleKeys(app));
      break;
  }
  return {
    changeKeyAccess,
    masterKeyChangeable: ks.masterKeyChangeable,
    freeDirectoryList: ks.freeDirectoryListing,
    freeCreateDelete: ks.freeCreateDelete,
    configurationChangeable: ks.configurationChangeable,
  };
}

export function fileParamsOf(f: LayoutFile, keys: Partial<Record<KeyRole, number>>): CreateFileParams | TmacFileParams {
  const common = { fileNo: f.no, comm: f.comm, access: accessRightsOf(f, keys) };
  switch (f.type) {
    case 'tmac': {
      const keyNo = keys.tmac;
      // parseLayout guarantees a tmac file has its 'tmac' key; a gap here is a programming error.
      if (keyNo === undefined) throw new Error('tmac file without a tmac key');
      return { ...common, type: 'transaction-mac', keyNo };
    }
    case 'std':
    case 'backup':
      return { ...common, type: WIRE_FILE_TYPE[f.type] as 'standard' | 'backup', fileSize: f.size };
    case 'value':
      return {
        ...common,
        type: 'value',
        lowerLimit: f.lower,
        upperLimit: f.upper,
        value: f.value,
        limitedCreditEnabled: f.limitedCredit,
        freeGetValue: false,
      };
    case 'linear':
    case 'cyclic':
      return {
        ...common,
        type: WIRE_FILE_TYPE[f.type] as 'linear-record' | 'cyclic-record',
        recordSize: f.recordSize,
        maxRecords: f.maxRecords,
      };
  }
}

export function applicationPlan(app: LayoutApplication): ApplicationPlan {
  const keys = roleKeys(app);
  const settings = appKeySettingsOf(app);
  const aidNumber = parseInt(app.aid, 16);
  const createApplication: CreateApplicationParams = {
    aid: aidNumber,
    settings,
    keyCount: app.keyCount,
    keyType: app.keyType,
    isoFileIds: false,
  };
  const files: FilePlan[] = app.files.map((f) => {
    const params = fileParamsOf(f, keys);
    const tmac = params.type === 'transaction-mac';
    return {
      fileNo: f.no,
      name: f.name,
      command: tmac ? Cmd.CREATE_TRANSACTION_MAC_FILE : CREATE_FILE_COMMANDS[params.type],
      params,
      data: tmac ? Uint8Array.of(...encodeCreateTransactionMacHeader(params), params.keyNo) : encodeCreateFile(params),
      accessRights: encodeAccessRights(params.access),
    };
  });
  return {
    tenantId: app.tenantId,
    name: app.name,
    aid: app.aid,
    aidNumber,
    keySettings1: encodeAppKeySettings(settings),
    keySettings2: app.keyCount | APP_KEY_TYPE_BITS[app.keyType],
    createApplication,
    createApplicationData: encodeCreateApplication(createApplication),
    roleKeys: keys,
    keys: app.keys.map((k) => ({ no: k.no, role: k.role, derivation: k.derivation })),
    files,
  };
}

export function piccPlan(layout: Layout): PiccPlan {
  const f = layout.picc.keySettings;
  const s: WirePiccKeySettings = {
    masterKeyChangeable: f.masterKeyChangeable,
    freeDirectoryList: f.freeDirectoryListing,
    freeCreateDelete: f.freeCreateDelete,
    configurationChangeable: f.configurationChangeable,
  };
  return { keySettings: encodePiccKeySettings(s), randomUid: layout.picc.randomUid, configurationByte: layout.picc.randomUid ? 0x02 : 0x00 };
}

/** The whole layout as DESFire parameters, applications in file order. */
export function layoutPlan(layout: Layout): LayoutPlan {
  return { picc: piccPlan(layout), applications: layout.tenants.flatMap((t) => t.applications.map(applicationPlan)) };
}

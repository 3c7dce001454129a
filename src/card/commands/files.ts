// Files: Create{Std,Backup}DataFile, CreateValueFile, Create{Linear,Cyclic}RecordFile, DeleteFile,
// GetFileIDs, GetISOFileIDs, GetFileSettings, ChangeFileSettings.
import {
  type CreateFileParams,
  decodeChangeFileSettings,
  decodeCreateFile,
  encodeFileSettings,
  type FileSettings,
} from '../../core/protocol/codecs/fileSettings.js';
import { encodeFileIds } from '../../core/protocol/codecs/misc.js';
import { decodeCreateTransactionMacFile } from '../../core/protocol/codecs/tmac.js';
import { Cmd } from '../../core/protocol/commands.js';
import type { CardContext, Reply, Req } from '../context.js';
import { fileCost, freeMemory } from '../memory.js';
import { type AppState, type FileState, FREE, MAX_FILES, NEVER, tmacFileOf } from '../model.js';
import { ST, fault } from '../status.js';

/** Create/delete: free when key settings bit 2 is set, else the application master key. */
function requireCreateDelete(ctx: CardContext, app: AppState): void {
  if ((app.keySettings & 0x04) === 0) ctx.requireMaster();
}

function requireListing(ctx: CardContext, app: AppState): void {
  if ((app.keySettings & 0x02) === 0) ctx.requireMaster();
}

const CREATE_LENGTHS: Record<number, number[]> = {
  [Cmd.CREATE_STD_DATA_FILE]: [7, 9],
  [Cmd.CREATE_BACKUP_DATA_FILE]: [7, 9],
  [Cmd.CREATE_VALUE_FILE]: [17],
  [Cmd.CREATE_LINEAR_RECORD_FILE]: [10, 12],
  [Cmd.CREATE_CYCLIC_RECORD_FILE]: [10, 12],
};

function toState(p: CreateFileParams): FileState {
  const base = { fileNo: p.fileNo, comm: p.comm, access: { ...p.access } };
  switch (p.type) {
    case 'standard':
    case 'backup':
      if (p.fileSize < 1) throw fault(ST.PARAMETER_ERROR, 'file size 0');
      return { ...base, ...(p.isoFid !== undefined ? { isoFid: p.isoFid } : {}), type: p.type === 'standard' ? 'std' : 'backup', size: p.fileSize, data: new Uint8Array(p.fileSize) };
    case 'value':
      if (p.lowerLimit > p.upperLimit || p.value < p.lowerLimit || p.value > p.upperLimit) throw fault(ST.PARAMETER_ERROR, 'value outside its limits');
      return {
        ...base,
        type: 'value',
        lower: p.lowerLimit,
        upper: p.upperLimit,
        value: p.value,
        limitedCreditEnabled: p.limitedCreditEnabled,
        freeGetValue: p.freeGetValue,
        limitedCreditValue: 0,
      };
    case 'linear-record':
    case 'cyclic-record':
      if (p.type === 'cyclic-record' && p.maxRecords < 2) throw fault(ST.PARAMETER_ERROR, 'a cyclic record file needs at least 2 records');
      return {
        ...base,
        ...(p.isoFid !== undefined ? { isoFid: p.isoFid } : {}),
        type: p.type === 'linear-record' ? 'linear' : 'cyclic',
        recordSize: p.recordSize,
        maxRecords: p.maxRecords,
        records: [],
      };
  }
}

export function createFile(ctx: CardContext, req: Req): Reply {
  const app = ctx.app();
  requireCreateDelete(ctx, app);
  const n = ctx.paramLength(req);
  const lengths = CREATE_LENGTHS[req.ins]!;
  if (!lengths.includes(n)) throw fault(ST.LENGTH_ERROR, 'create file length');
  const body = ctx.fixed(req, n);
  // ISO FIDs exactly when the application was created with them.
  if (lengths.length === 2 && (n === lengths[1]) !== app.isoFileIds) throw fault(ST.LENGTH_ERROR, 'ISO FID presence does not match the application');
  let p: CreateFileParams;
  try {
    p = decodeCreateFile(req.ins, body);
  } catch {
    throw fault(ST.PARAMETER_ERROR, 'bad file parameters');
  }
  return addFile(ctx, app, toState(p));
}

function addFile(ctx: CardContext, app: AppState, f: FileState): Reply {
  if (app.files.has(f.fileNo)) throw fault(ST.DUPLICATE_ERROR, 'file exists');
  if (f.isoFid !== undefined) for (const g of app.files.values()) if (g.isoFid === f.isoFid) throw fault(ST.DUPLICATE_ERROR, 'ISO FID in use');
  if (app.files.size >= MAX_FILES) throw fault(ST.COUNT_ERROR, 'too many files');
  if (freeMemory(ctx.state) < fileCost(f)) throw fault(ST.OUT_OF_EEPROM, 'out of EEPROM');
  app.files.set(f.fileNo, f);
  ctx.dirty = true;
  return {};
}

/**
 * CreateTransactionMACFile (CE, EV2+): header fileNo option access(2) TMKeyOption in plain, the
 * AES TMAC key and its version enciphered in a session (plain without one, when create/delete is
 * free). One per application: a second one is DE whatever its file number.
 */
export function createTransactionMacFile(ctx: CardContext, req: Req): Reply {
  const app = ctx.app();
  requireCreateDelete(ctx, app);
  if (req.body.length < 5) throw fault(ST.LENGTH_ERROR, 'CreateTransactionMACFile header is 5 bytes');
  const { header, data } = ctx.open(req, 5, ctx.session ? 'full' : 'plain', 17);
  try {
    if (data.length !== 17) throw fault(ST.LENGTH_ERROR, 'TMAC key and version are 17 bytes');
    let p;
    try {
      p = decodeCreateTransactionMacFile(header, data);
    } catch {
      throw fault(ST.PARAMETER_ERROR, 'bad Transaction MAC file parameters');
    }
    if (tmacFileOf(app)) throw fault(ST.DUPLICATE_ERROR, 'the application has a Transaction MAC file');
    return addFile(ctx, app, {
      type: 'tmac', fileNo: p.fileNo, comm: p.comm, access: { ...p.access },
      key: p.key, keyVersion: p.keyVersion, tmc: 0, tmv: new Uint8Array(8), tmriPrev: new Uint8Array(16),
    });
  } finally {
    data.fill(0);
  }
}

export function deleteFile(ctx: CardContext, req: Req): Reply {
  const app = ctx.app();
  requireCreateDelete(ctx, app);
  if (ctx.paramLength(req) !== 1) throw fault(ST.LENGTH_ERROR, 'DeleteFile takes a file number');
  const fileNo = ctx.fixed(req, 1)[0]!;
  if (fileNo > 0x1f) throw fault(ST.PARAMETER_ERROR, 'file number out of range');
  if (!app.files.has(fileNo)) throw fault(ST.FILE_NOT_FOUND, 'no such file');
  app.files.delete(fileNo);
  ctx.tx.backup.delete(fileNo);
  ctx.tx.values.delete(fileNo);
  ctx.tx.records.delete(fileNo);
  ctx.dirty = true;
  return {};
}

export function getFileIds(ctx: CardContext, req: Req): Reply {
  const app = ctx.app();
  requireListing(ctx, app);
  ctx.fixed(req, 0);
  return { data: encodeFileIds([...app.files.keys()]) };
}

export function getIsoFileIds(ctx: CardContext, req: Req): Reply {
  const app = ctx.app();
  requireListing(ctx, app);
  ctx.fixed(req, 0);
  const out: number[] = [];
  for (const f of app.files.values()) if (f.isoFid !== undefined) out.push(f.isoFid & 0xff, f.isoFid >> 8);
  return { data: Uint8Array.from(out) };
}

export function fileSettings(f: FileState): FileSettings {
  const c = { comm: f.comm, access: f.access };
  switch (f.type) {
    case 'std':
    case 'backup':
      return { ...c, type: f.type === 'std' ? 'standard' : 'backup', fileSize: f.size };
    case 'value':
      return {
        ...c,
        type: 'value',
        lowerLimit: f.lower,
        upperLimit: f.upper,
        limitedCreditValue: f.limitedCreditValue,
        limitedCreditEnabled: f.limitedCreditEnabled,
        freeGetValue: f.freeGetValue,
      };
    case 'linear':
    case 'cyclic':
      return { ...c, type: f.type === 'linear' ? 'linear-record' : 'cyclic-record', recordSize: f.recordSize, maxRecords: f.maxRecords, currentRecords: f.records.length };
    case 'tmac':
      return { ...c, type: 'transaction-mac', keyVersion: f.keyVersion };
  }
}

export function getFileSettings(ctx: CardContext, req: Req): Reply {
  const app = ctx.app();
  requireListing(ctx, app);
  if (ctx.paramLength(req) !== 1) throw fault(ST.LENGTH_ERROR, 'GetFileSettings takes a file number');
  const fileNo = ctx.fixed(req, 1)[0]!;
  return { data: encodeFileSettings(fileSettings(ctx.file(fileNo))) };
}

/** ChangeFileSettings: needs the file's Change key (full mode), free (plain) when Change is E. */
export function changeFileSettings(ctx: CardContext, req: Req): Reply {
  const app = ctx.app();
  if (req.body.length < 1) throw fault(ST.LENGTH_ERROR, 'ChangeFileSettings takes a file number');
  const f = ctx.file(req.body[0]!);
  const ch = f.access.change;
  let comm: 'plain' | 'full';
  if (ctx.session && ctx.session.keyNo === ch) comm = 'full';
  else if (ch === FREE) comm = 'plain';
  else if (ch === 0xf) throw fault(ST.PERMISSION_DENIED, 'settings never changeable');
  else if (!ctx.session) throw fault(ST.AUTHENTICATION_ERROR, 'needs the Change key');
  else throw fault(ST.PERMISSION_DENIED, 'not the Change key');
  const { data } = ctx.open(req, 1, comm, 3);
  let p;
  try {
    p = decodeChangeFileSettings(data);
  } catch {
    throw fault(ST.PARAMETER_ERROR, 'bad file settings');
  }
  if (f.type === 'tmac' && p.access.write !== NEVER) throw fault(ST.PARAMETER_ERROR, 'a Transaction MAC file has W = F');
  f.comm = p.comm;
  f.access = { ...p.access };
  app.files.set(f.fileNo, f);
  ctx.dirty = true;
  return {};
}

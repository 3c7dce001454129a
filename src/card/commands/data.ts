// Data files: ReadData (BD, EV2 AD) and WriteData (3D, EV2 8D) on standard and backup files.
// A backup file's writes go to the transaction's working copy and become visible (to ReadData
// too) only after CommitTransaction; a standard file is written at once.
import { MAX_FILE_NO } from '../../core/protocol/codecs/fileSettings.js';
import type { CommMode } from '../../core/sm/types.js';
import type { CardContext, Reply, Req } from '../context.js';
import { encodeTransactionMac } from '../../core/protocol/codecs/tmac.js';
import type { DataFile, FileState, TmacFile } from '../model.js';
import { ST, fault } from '../status.js';

export interface Header {
  fileNo: number;
  offset: number;
  length: number;
}

/** The plain 7-byte header (file number, offset, length) that starts data commands. */
export function header(req: Req): Header {
  const b = req.body;
  if (b.length < 7) throw fault(ST.LENGTH_ERROR, 'command header is 7 bytes');
  // Same layout as decodeDataHeader (src/core/protocol), read in place: this is the hot path.
  const fileNo = b[0]!;
  if (fileNo > MAX_FILE_NO) throw fault(ST.PARAMETER_ERROR, 'file number out of range');
  return { fileNo, offset: b[1]! | (b[2]! << 8) | (b[3]! << 16), length: b[4]! | (b[5]! << 8) | (b[6]! << 16) };
}

function dataFile(f: FileState): DataFile {
  if (f.type === 'tmac') throw fault(ST.PERMISSION_DENIED, 'the Transaction MAC file is written by the card only');
  if (f.type !== 'std' && f.type !== 'backup') throw fault(ST.PARAMETER_ERROR, 'not a data file');
  return f;
}

/** Block size and MAC length of the session's secure messaging (for chained command lengths). */
function smShape(ctx: CardContext): { bs: number; macLen: number } {
  const s = ctx.session as { kind: string; engine?: { bs?: number } } | undefined;
  const bs = s?.engine?.bs ?? 16;
  return { bs, macLen: s?.kind === 'd40' ? 4 : 8 };
}

/** Total bytes after INS of a write command carrying `len` data bytes after a 7-byte header. */
export function writeLength(ctx: CardContext, comm: CommMode, len: number): number {
  const kind = ctx.session?.kind;
  if (!kind || comm === 'plain') return 7 + len;
  const { bs, macLen } = smShape(ctx);
  if (comm === 'mac') return 7 + len + macLen;
  if (kind === 'ev2') return 7 + (Math.floor(len / 16) + 1) * 16 + 8;
  const crc = kind === 'd40' ? 2 : 4;
  return 7 + Math.ceil((len + crc) / bs) * bs;
}

/** The 7-byte header with the length actually read (what the Transaction MAC Input records). */
export function headerBytes(fileNo: number, offset: number, length: number): Uint8Array {
  return Uint8Array.of(fileNo, offset & 0xff, (offset >>> 8) & 0xff, offset >>> 16, length & 0xff, (length >>> 8) & 0xff, length >>> 16);
}

/** ReadData on the Transaction MAC file: TMC || TMV (12 bytes), Read right only, not in the TMI. */
function readTmac(ctx: CardContext, req: Req, h: Header, f: TmacFile): Reply {
  const comm = ctx.access(f, ['read']);
  ctx.fixed(req, 7, comm);
  const content = encodeTransactionMac({ tmc: f.tmc, tmv: f.tmv });
  if (h.offset >= content.length) throw fault(ST.BOUNDARY_ERROR, 'offset beyond the file');
  const len = h.length === 0 ? content.length - h.offset : h.length;
  if (h.offset + len > content.length) throw fault(ST.BOUNDARY_ERROR, 'read beyond the file');
  return { data: content.slice(h.offset, h.offset + len), comm };
}

export function readData(ctx: CardContext, req: Req): Reply {
  const h = header(req);
  const file = ctx.file(h.fileNo);
  if (file.type === 'tmac') return readTmac(ctx, req, h, file);
  const f = dataFile(file);
  const comm = ctx.access(f, ['read', 'readWrite']);
  ctx.fixed(req, 7, comm);
  if (h.offset >= f.size) throw fault(ST.BOUNDARY_ERROR, 'offset beyond the file');
  const len = h.length === 0 ? f.size - h.offset : h.length;
  if (h.offset + len > f.size) throw fault(ST.BOUNDARY_ERROR, 'read beyond the file');
  const data = f.data.slice(h.offset, h.offset + len);
  ctx.tmacInput(req.ins, headerBytes(h.fileNo, h.offset, len), data);
  return { data, comm };
}

export function writeDataExpected(ctx: CardContext, req: Req): number | undefined {
  const h = header(req);
  const f = ctx.selected?.files.get(h.fileNo);
  if (!f || (f.type !== 'std' && f.type !== 'backup') || h.length === 0) return undefined;
  let comm: CommMode;
  try {
    comm = ctx.access(f, ['write', 'readWrite']);
  } catch {
    return undefined;
  }
  return writeLength(ctx, comm, h.length);
}

export function writeData(ctx: CardContext, req: Req): Reply {
  const h = header(req);
  const f = dataFile(ctx.file(h.fileNo));
  const comm = ctx.access(f, ['write', 'readWrite']);
  const { data } = ctx.open(req, 7, comm, h.length);
  if (h.length === 0 || data.length !== h.length) throw fault(ST.LENGTH_ERROR, 'data length does not match the header');
  if (h.offset + h.length > f.size) throw fault(ST.BOUNDARY_ERROR, 'write beyond the file');
  if (f.type === 'std') {
    f.data.set(data, h.offset);
    ctx.dirty = true;
  } else {
    let w = ctx.tx.backup.get(f.fileNo);
    if (!w) {
      w = f.data.slice();
      ctx.tx.backup.set(f.fileNo, w);
    }
    w.set(data, h.offset);
  }
  ctx.tmacInput(req.ins, req.body.subarray(0, 7), data);
  return { comm: comm === 'full' ? 'mac' : comm };
}

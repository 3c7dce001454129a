// Record files: WriteRecord (3B, EV2 8B), ReadRecords (BB, EV2 AB), ClearRecordFile (EB).
// Real-card behaviour: all WriteRecord commands to one file within one transaction write into the
// same new record; after ClearRecordFile and before its commit WriteRecord is refused (0x9D);
// a full linear file refuses a new record (0xBE); a cyclic file keeps maxRecords - 1 records and
// drops the oldest at commit. ReadRecords: offset counts back from the newest record (0 = newest),
// count 0 = all from there to the oldest; records come oldest first; only committed records.
import type { CommMode } from '../../core/sm/types.js';
import type { CardContext, Reply, Req } from '../context.js';
import type { FileState, RecordFile } from '../model.js';
import { ST, fault } from '../status.js';
import { header, headerBytes, writeLength } from './data.js';

function recordFile(f: FileState): RecordFile {
  if (f.type !== 'linear' && f.type !== 'cyclic') throw fault(ST.PARAMETER_ERROR, 'not a record file');
  return f;
}

export function writeRecordExpected(ctx: CardContext, req: Req): number | undefined {
  const h = header(req);
  const f = ctx.selected?.files.get(h.fileNo);
  if (!f || (f.type !== 'linear' && f.type !== 'cyclic') || h.length === 0) return undefined;
  let comm: CommMode;
  try {
    comm = ctx.access(f, ['write', 'readWrite']);
  } catch {
    return undefined;
  }
  return writeLength(ctx, comm, h.length);
}

export function writeRecord(ctx: CardContext, req: Req): Reply {
  const h = header(req);
  const f = recordFile(ctx.file(h.fileNo));
  const comm = ctx.access(f, ['write', 'readWrite']);
  const { data } = ctx.open(req, 7, comm, h.length);
  if (h.length === 0 || data.length !== h.length) throw fault(ST.LENGTH_ERROR, 'data length does not match the header');
  if (h.offset + h.length > f.recordSize) throw fault(ST.BOUNDARY_ERROR, 'write beyond the record');
  const p = ctx.tx.records.get(f.fileNo) ?? { cleared: false };
  if (p.cleared) throw fault(ST.PERMISSION_DENIED, 'record file cleared in this transaction');
  if (!p.newRecord && f.type === 'linear' && f.records.length >= f.maxRecords) throw fault(ST.BOUNDARY_ERROR, 'linear record file full');
  const rec = p.newRecord ? p.newRecord.slice() : new Uint8Array(f.recordSize);
  rec.set(data, h.offset);
  ctx.tx.records.set(f.fileNo, { cleared: false, newRecord: rec });
  ctx.tmacInput(req.ins, req.body.subarray(0, 7), data);
  return { comm: comm === 'full' ? 'mac' : comm };
}

export function readRecords(ctx: CardContext, req: Req): Reply {
  const h = header(req);
  const f = recordFile(ctx.file(h.fileNo));
  const comm = ctx.access(f, ['read', 'readWrite']);
  ctx.fixed(req, 7, comm);
  const total = f.records.length;
  if (h.offset >= total) throw fault(ST.BOUNDARY_ERROR, 'no such record');
  const count = h.length === 0 ? total - h.offset : h.length;
  if (count > total - h.offset) throw fault(ST.BOUNDARY_ERROR, 'fewer records than asked for');
  const recs = f.records.slice(total - h.offset - count, total - h.offset);
  const data = new Uint8Array(count * f.recordSize);
  recs.forEach((r, i) => data.set(r, i * f.recordSize));
  ctx.tmacInput(req.ins, headerBytes(h.fileNo, h.offset, count), data);
  return { data, comm };
}

export function clearRecordFile(ctx: CardContext, req: Req): Reply {
  if (ctx.paramLength(req) !== 1) throw fault(ST.LENGTH_ERROR, 'ClearRecordFile takes a file number');
  const fileNo = req.body[0]!;
  if (fileNo > 0x1f) throw fault(ST.PARAMETER_ERROR, 'file number out of range');
  const f = recordFile(ctx.file(fileNo));
  ctx.access(f, ['readWrite']);
  // A management-style command: MAC'd under an EV2 session whatever the file's comm mode
  // (src/core/protocol/commModes.ts, shared with the host).
  ctx.fixed(req, 1);
  ctx.tx.records.set(f.fileNo, { cleared: true });
  ctx.tmacInput(req.ins, Uint8Array.of(fileNo));
  return {};
}

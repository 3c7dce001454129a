// Value files: GetValue, Credit, Debit, LimitedCredit. Changes go to the transaction and take
// effect at CommitTransaction; GetValue shows the committed value.
import { decodeValue, encodeValue } from '../../core/protocol/codecs/misc.js';
import type { CommMode } from '../../core/sm/types.js';
import type { CardContext, PendingValue, Reply, Req, Right } from '../context.js';
import type { ValueFile } from '../model.js';
import { ST, fault } from '../status.js';

function valueFile(ctx: CardContext, req: Req): ValueFile {
  if (req.body.length < 1) throw fault(ST.LENGTH_ERROR, 'file number missing');
  const fileNo = req.body[0]!;
  if (fileNo > 0x1f) throw fault(ST.PARAMETER_ERROR, 'file number out of range');
  const f = ctx.file(fileNo);
  if (f.type !== 'value') throw fault(ST.PARAMETER_ERROR, 'not a value file');
  return f;
}

export function getValue(ctx: CardContext, req: Req): Reply {
  const f = valueFile(ctx, req);
  const rights: Right[] = ['read', 'write', 'readWrite'];
  let comm: CommMode;
  const s = ctx.session;
  if (f.freeGetValue && !(s && rights.some((r) => f.access[r] === s.keyNo))) comm = 'plain';
  else comm = ctx.access(f, rights);
  ctx.fixed(req, 1, comm);
  const data = encodeValue(f.value);
  ctx.tmacInput(req.ins, Uint8Array.of(f.fileNo, ...data));
  return { data, comm };
}

function pending(ctx: CardContext, f: ValueFile): PendingValue {
  return ctx.tx.values.get(f.fileNo) ?? { value: f.value, debited: 0, credited: false };
}

function amount(ctx: CardContext, req: Req, comm: CommMode): number {
  const { data } = ctx.open(req, 1, comm, 4);
  if (data.length !== 4) throw fault(ST.LENGTH_ERROR, 'amount is 4 bytes');
  const a = decodeValue(data);
  if (a < 0) throw fault(ST.PARAMETER_ERROR, 'negative amount');
  return a;
}

/** The answer of Credit/Debit/LimitedCredit, once the change is recorded; the TMI gets Cmd FileNo Value. */
function reply(ctx: CardContext, req: Req, f: ValueFile, a: number, comm: CommMode): Reply {
  ctx.tmacInput(req.ins, Uint8Array.of(f.fileNo, ...encodeValue(a)));
  return { comm: comm === 'full' ? 'mac' : comm };
}

export function credit(ctx: CardContext, req: Req): Reply {
  const f = valueFile(ctx, req);
  const comm = ctx.access(f, ['readWrite']);
  const a = amount(ctx, req, comm);
  const p = pending(ctx, f);
  if (p.value + a > f.upper) throw fault(ST.BOUNDARY_ERROR, 'above the upper limit');
  ctx.tx.values.set(f.fileNo, { ...p, value: p.value + a, credited: true });
  return reply(ctx, req, f, a, comm);
}

export function debit(ctx: CardContext, req: Req): Reply {
  const f = valueFile(ctx, req);
  const comm = ctx.access(f, ['read', 'write', 'readWrite']);
  const a = amount(ctx, req, comm);
  const p = pending(ctx, f);
  if (p.value - a < f.lower) throw fault(ST.BOUNDARY_ERROR, 'below the lower limit');
  ctx.tx.values.set(f.fileNo, { ...p, value: p.value - a, debited: p.debited + a });
  return reply(ctx, req, f, a, comm);
}

/**
 * LimitedCredit: adds back at most what the last committed debit-only transaction took, once.
 * Needs the limited-credit flag and W or RW rights.
 */
export function limitedCredit(ctx: CardContext, req: Req): Reply {
  const f = valueFile(ctx, req);
  const comm = ctx.access(f, ['write', 'readWrite']);
  const a = amount(ctx, req, comm);
  if (!f.limitedCreditEnabled) throw fault(ST.PERMISSION_DENIED, 'limited credit not enabled');
  const p = pending(ctx, f);
  if (p.credited || p.debited > 0) throw fault(ST.PERMISSION_DENIED, 'limited credit cannot mix with credit or debit');
  if (a > f.limitedCreditValue) throw fault(ST.BOUNDARY_ERROR, 'above the limited credit value');
  if (p.value + a > f.upper) throw fault(ST.BOUNDARY_ERROR, 'above the upper limit');
  ctx.tx.values.set(f.fileNo, { ...p, value: p.value + a, credited: true });
  return reply(ctx, req, f, a, comm);
}

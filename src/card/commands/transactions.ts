// CommitTransaction (C7) and AbortTransaction (A7): apply or drop every uncommitted change of the
// selected application (backup files, value files, record files) at once.
import type { CardContext, Reply, Req } from '../context.js';
import { ST, fault } from '../status.js';

export function commitTransaction(ctx: CardContext, req: Req): Reply {
  const app = ctx.app();
  const n = ctx.paramLength(req);
  if (n > 1) throw fault(ST.LENGTH_ERROR, 'CommitTransaction takes at most an option byte');
  const opt = ctx.fixed(req, n);
  if (opt.length === 1 && (ctx.state.profile === 'ev1' || opt[0] !== 0x00)) throw fault(ST.PARAMETER_ERROR, 'no transaction MAC file');
  const tx = ctx.tx;
  if (tx.empty) return {};
  for (const [fileNo, w] of tx.backup) {
    const f = app.files.get(fileNo);
    if (f && f.type === 'backup') f.data = w;
  }
  for (const [fileNo, p] of tx.values) {
    const f = app.files.get(fileNo);
    if (!f || f.type !== 'value') continue;
    f.value = p.value;
    if (f.limitedCreditEnabled) {
      if (p.credited) f.limitedCreditValue = 0;
      else if (p.debited > 0) f.limitedCreditValue = p.debited;
    }
  }
  for (const [fileNo, p] of tx.records) {
    const f = app.files.get(fileNo);
    if (!f || (f.type !== 'linear' && f.type !== 'cyclic')) continue;
    if (p.cleared) f.records = [];
    if (p.newRecord) {
      f.records.push(p.newRecord);
      const cap = f.type === 'cyclic' ? f.maxRecords - 1 : f.maxRecords;
      while (f.records.length > cap) f.records.shift();
    }
  }
  tx.clear();
  ctx.dirty = true;
  return {};
}

export function abortTransaction(ctx: CardContext, req: Req): Reply {
  ctx.app();
  ctx.fixed(req, 0);
  ctx.tx.clear();
  return {};
}

// CommitTransaction (C7), AbortTransaction (A7) and CommitReaderID (C8): apply or drop every
// uncommitted change of the selected application (backup files, value files, record files) at
// once; in an application with a Transaction MAC file, CommitTransaction also closes the
// Transaction MAC: TMC + 1, TMV over the transaction's TMI, TMRICur becomes TMRIPrev — in the same
// atomic step as the file changes.
import { concat } from '../../core/crypto/bytes.js';
import { COMMIT_RETURN_TMAC, encodeTransactionMac, TMRI_LENGTH } from '../../core/protocol/codecs/tmac.js';
import { encryptTmri, transactionMacValue } from '../../core/sm/tmac.js';
import type { CardContext, Reply, Req } from '../context.js';
import { NEVER, tmacFileOf } from '../model.js';
import { ST, fault } from '../status.js';

const TMC_MAX = 0xffffffff;

export function commitTransaction(ctx: CardContext, req: Req): Reply {
  const app = ctx.app();
  const n = ctx.paramLength(req);
  if (n > 1) throw fault(ST.LENGTH_ERROR, 'CommitTransaction takes at most an option byte');
  const opt = ctx.fixed(req, n);
  const tm = tmacFileOf(app);
  const option = opt.length === 1 ? opt[0]! : 0;
  if (opt.length === 1 && ctx.state.profile === 'ev1') throw fault(ST.PARAMETER_ERROR, 'no option byte on EV1');
  if ((option & ~COMMIT_RETURN_TMAC) !== 0) throw fault(ST.PARAMETER_ERROR, 'reserved option bits');
  if (option === COMMIT_RETURN_TMAC && !tm) throw fault(ST.PARAMETER_ERROR, 'no transaction MAC file');
  const tx = ctx.tx;
  // Transaction MAC: computed (and every check made) before anything is written.
  let mac: { tmc: number; tmv: Uint8Array } | undefined;
  if (tm && !tx.tmi.empty) {
    if (tm.access.readWrite !== NEVER && !tx.tmriCur) throw fault(ST.PERMISSION_DENIED, 'CommitReaderID is required before the commit');
    if (tm.tmc >= TMC_MAX) throw fault(ST.COUNT_ERROR, 'transaction MAC counter exhausted');
    mac = { tmc: tm.tmc + 1, tmv: transactionMacValue(tm.key, ctx.state.uid, tm.tmc, tx.tmi.bytes()) };
  }
  const answer = (): Reply => (option === COMMIT_RETURN_TMAC && tm ? { data: encodeTransactionMac({ tmc: tm.tmc, tmv: tm.tmv }) } : {});
  if (tx.empty && !mac) {
    tx.clear();
    return answer();
  }
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
  if (tm && mac) {
    tm.tmc = mac.tmc;
    tm.tmv = mac.tmv;
    if (tx.tmriCur) tm.tmriPrev = tx.tmriCur;
  }
  tx.clear();
  ctx.dirty = true;
  return answer();
}

export function abortTransaction(ctx: CardContext, req: Req): Reply {
  ctx.app();
  ctx.fixed(req, 0);
  ctx.tx.clear();
  return {};
}

/**
 * CommitReaderID (C8, EV2+): 16-byte TMRI into the ongoing transaction's TMAC. Allowed per the
 * TMAC file's RW right (a key: authenticated with it; E: free; F: disabled, 9D); once per
 * transaction (9D). Authenticated, it answers EncTMRI = E(SesTMENCKey, TMRIPrev) and the TMI gets
 * Cmd || TMRI || EncTMRI; not authenticated, no answer data and Cmd || TMRI.
 */
export function commitReaderId(ctx: CardContext, req: Req): Reply {
  const app = ctx.app();
  const tm = tmacFileOf(app);
  if (!tm) throw fault(ST.PERMISSION_DENIED, 'no transaction MAC file');
  ctx.access(tm, ['readWrite']);
  if (ctx.paramLength(req) !== TMRI_LENGTH) throw fault(ST.LENGTH_ERROR, 'CommitReaderID takes a 16-byte reader ID');
  const tmri = ctx.fixed(req, TMRI_LENGTH).slice();
  if (ctx.tx.tmriCur) throw fault(ST.PERMISSION_DENIED, 'a reader ID is already committed in this transaction');
  if (tm.tmc >= TMC_MAX) throw fault(ST.COUNT_ERROR, 'transaction MAC counter exhausted');
  const enc = ctx.session ? encryptTmri(tm.key, ctx.state.uid, tm.tmc, tm.tmriPrev) : undefined;
  ctx.tx.tmi.add(req.ins, enc ? concat(tmri, enc) : tmri);
  ctx.tx.tmriCur = tmri;
  return enc ? { data: enc } : {};
}

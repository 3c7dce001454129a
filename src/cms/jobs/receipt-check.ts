// Station jobs: a successful receipt's steps matched against the job's plan (./service.ts receipt()).
import type { Receipt } from '../pki/index.js';
import { JobError } from './errors.js';
import { PICC_AID } from './keys.js';
import type { InstallPlan, IssuePlan, Job, PersonalisePlan } from './plan.js';

/** A successful receipt must show every step the plan requires (else ERR_JOB_RECEIPT_MISMATCH). */
export function checkSteps(job: Job, r: Receipt): void {
  const has = (op: string, f: (x: Receipt['results'][number]) => boolean = () => true) => r.results.some((x) => x.op === op && x.status === 0 && f(x));
  const missing: string[] = [];
  if (job.kind === 'issue') {
    const p = job.plan as IssuePlan;
    if (!has('ChangeKey', (x) => x.aid === PICC_AID && x.keyNo === 0 && x.keyVersion === p.cmkVersion)) missing.push('ChangeKey CMK');
    if (!has('ChangeKeySettings')) missing.push('ChangeKeySettings');
    if (p.randomUid && !has('SetConfiguration')) missing.push('SetConfiguration');
  } else if (job.kind === 'install') {
    const p = job.plan as InstallPlan;
    if (!has('CreateApplication', (x) => x.aid === job.aid)) missing.push('CreateApplication');
    for (const k of p.keys) if (!has('ChangeKey', (x) => x.aid === job.aid && x.keyNo === k.keyNo && x.keyVersion === k.version)) missing.push(`ChangeKey ${k.keyNo}`);
    for (const f of p.files) if (!has('CreateFile', (x) => x.fileNo === f)) missing.push(`CreateFile ${f}`);
    if (!has('CommitTransaction')) missing.push('CommitTransaction');
  } else if (job.kind === 'personalise') {
    // every step named with its AID: the issue at PICC level, then each installation
    const p = job.plan as PersonalisePlan;
    if (!has('ChangeKey', (x) => x.aid === PICC_AID && x.keyNo === 0 && x.keyVersion === p.cmkVersion)) missing.push('ChangeKey CMK');
    if (!has('ChangeKeySettings', (x) => x.aid === PICC_AID)) missing.push('ChangeKeySettings');
    for (const inst of p.installs) {
      if (!has('CreateApplication', (x) => x.aid === inst.aid)) missing.push(`CreateApplication ${inst.aid}`);
      for (const k of inst.keys) if (!has('ChangeKey', (x) => x.aid === inst.aid && x.keyNo === k.keyNo && x.keyVersion === k.version)) missing.push(`ChangeKey ${inst.aid}/${k.keyNo}`);
      for (const f of inst.files) if (!has('CreateFile', (x) => x.aid === inst.aid && x.fileNo === f)) missing.push(`CreateFile ${inst.aid}/${f}`);
      if (!has('CommitTransaction', (x) => x.aid === inst.aid)) missing.push(`CommitTransaction ${inst.aid}`);
    }
    // random UID enabled last: after it the station could no longer name the card by its UID
    if (p.randomUid) {
      const last = r.results[r.results.length - 1];
      if (!last || last.op !== 'SetConfiguration' || last.status !== 0) missing.push('SetConfiguration (last)');
    }
  } else if (!has('DeleteApplication', (x) => x.aid === job.aid)) missing.push('DeleteApplication');
  if (missing.length) throw new JobError('ERR_JOB_RECEIPT_MISMATCH', `receipt lacks: ${missing.join(', ')}`, { missing });
}

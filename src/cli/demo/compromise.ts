// The demo's compromised reader: J's compromise service revokes the reader (certificate and state
// in one transaction), blocks its unclaimed station jobs, computes the blast radius — exactly the
// key versions and cards the audit log says were sealed to it — and proposes one approval-gated
// rotation campaign per affected key. The CMS has no compromise routes yet: the operator side runs
// in-process against the live database.
import { ApprovalService } from '../../cms/approvals/service.js';
import type { AuditInput } from '../../cms/audit/entry.js';
import { CompromiseService, type ReaderCompromiseReport } from '../../cms/compromise/service.js';
import { CampaignService } from '../../cms/rotation/campaigns.js';
import type { CallerContext } from '../../custody/types.js';
import { masterKeyName } from '../../cms/jobs/keys.js';
import type { DemoCms } from './cms.js';

const CTX: CallerContext = { actor: 'operator:demo', purpose: 'demo compromise response', correlationId: 'demo-compromise' };

export async function declareReaderCompromised(cms: DemoCms, readerId: string): Promise<{ report: ReaderCompromiseReport; states: string[] }> {
  const deps = cms.app.deps;
  const db = deps.domain!.db;
  const custody = deps.custody!;
  const audit = { record: (e: AuditInput) => deps.audit!.record(e) };
  const approvals = new ApprovalService({ db, audit });
  // a proposed campaign's new version: the next version of the key's diversification master
  const campaigns = new CampaignService({
    db,
    audit,
    approvals,
    newVersion: async (k) => {
      const app = await deps.domain!.tenants.application(k.aid);
      const d = app?.definition.keys.find((x) => x.no === k.keyNo)?.derivation;
      if (!d || d.method !== 'diversified') throw new Error(`key ${k.keyNo} of ${k.aid} is not diversified`);
      return (await custody.rotateKey(CTX, masterKeyName(d.master))).latestVersion;
    },
  });
  const svc = new CompromiseService({ db, audit, campaigns });
  const report = await svc.readerCompromised(readerId, 'operator:alice');
  const states: string[] = [];
  for (const c of report.campaigns) if (c.campaignId) states.push((await campaigns.require(c.campaignId)).state);
  return { report, states };
}

// The demo's compromised reader, declared by the operator over the API
// (POST /v1/compromise/readers/:id, engineer J): the reader is revoked (certificate and state in
// one transaction), its unclaimed station jobs blocked, the blast radius computed — exactly the
// key versions and cards the audit log says were sealed to it — and one approval-gated rotation
// campaign proposed per affected key.
import type { DemoCms } from './cms.js';

export interface ReceivedKey {
  tenant: string;
  aid: string;
  keyNo: number;
  version: number;
  deliveries: number;
  allCards: boolean;
  uids: string[];
}

export interface CompromiseReport {
  caseId: string;
  readerId: string;
  revoked: boolean;
  jobsBlocked: number;
  keys: ReceivedKey[];
  campaigns: { tenant: string; aid: string; keyNo: number; campaignId?: string; approvalId?: string | null; cards?: number; skipped?: string }[];
}

export async function declareReaderCompromised(cms: DemoCms, readerId: string): Promise<{ report: CompromiseReport; states: string[] }> {
  const r = await cms.op('POST', `/v1/compromise/readers/${readerId}`, {});
  if (r.status !== 200 && r.status !== 201) throw new Error(`POST /v1/compromise/readers/${readerId}: HTTP ${r.status} ${JSON.stringify(r.body?.error ?? r.body)}`);
  const report = r.body as CompromiseReport;
  const states: string[] = [];
  for (const c of report.campaigns) {
    if (!c.campaignId) continue;
    const p = await cms.op('GET', `/v1/rotation/campaigns/${c.campaignId}`);
    states.push(p.status === 200 ? String(p.body.campaign.state) : `HTTP ${p.status}`);
  }
  return { report, states };
}

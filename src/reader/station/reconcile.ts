// Station side of operator-requested reconciliation: with a card in front of it, the station asks
// the CMS which reconciliations it was asked to run on that card (POST /v1/station/reconcile {uid}: no UID in a logged URL) and
// runs each through the remote-mode relay (op 'reconcile'): the CMS probes the card itself
// (GetApplicationIDs, GetKeyVersion, authentication with the planned keys) and records the verdict;
// the station holds no key and decides nothing.
import type { Transport } from '../../core/transport.js';
import { type CmsClient, relayRemote } from './client.js';

export interface ReconcileRun {
  jobId: string;
  kind: string;
  aid: string;
  verdict: string;
  findings: string[];
}

/** Run every reconciliation requested of this station for card `uid` (the real UID). */
export async function runRequestedReconciles(cms: CmsClient, t: Transport, uid: string): Promise<ReconcileRun[]> {
  const { jobs } = (await cms.ok('POST', '/v1/station/reconcile', { uid })) as { jobs: { jobId: string; kind: string; aid: string }[] };
  const out: ReconcileRun[] = [];
  for (const j of jobs) {
    const { result } = await relayRemote(cms, t, { op: 'reconcile', jobId: j.jobId });
    const r = result as { verdict: string; findings: string[] };
    out.push({ ...j, verdict: r.verdict, findings: r.findings });
  }
  return out;
}

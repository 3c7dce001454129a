// The demo's key rotation: one campaign over every issued card for one tenant key, with J's
// campaign service (versions, batches, M-of-N approval, completion retiring the old version) and
// runner, whose card step (src/reader/station/rotate.ts) runs on the in-field virtual cards with
// keys exported from custody by the same derivation the station jobs used (src/cms/jobs/keys.ts).
// The CMS has no campaign routes yet: the operator side runs in-process, as J's runner is built to.
import { DesfireClient } from '../../core/client/client.js';
import type { Transport } from '../../core/transport.js';
import type { CallerContext } from '../../custody/types.js';
import { ApprovalService } from '../../cms/approvals/service.js';
import type { AuditInput } from '../../cms/audit/entry.js';
import { CardKeys, masterKeyName } from '../../cms/jobs/keys.js';
import { CampaignService, type Campaign } from '../../cms/rotation/campaigns.js';
import { CampaignRunner } from '../../cms/rotation/runner.js';
import { rotateOneCard } from '../../reader/station/rotate.js';
import type { DemoCms } from './cms.js';

export interface RotationOutcome {
  campaign: Campaign;
  done: number;
  failed: number;
  approvers: number;
  cardVersions: number[];
}

const CTX: CallerContext = { actor: 'operator:demo', purpose: 'demo key rotation campaign', correlationId: 'demo-rotation' };

export async function rotateTenantKey(
  cms: DemoCms,
  k: { tenantId: string; aid: string; keyNo: number },
  cards: { uid: string; t: Transport }[],
  onProgress: (processed: number) => void,
): Promise<RotationOutcome> {
  const deps = cms.app.deps;
  const db = deps.domain!.db;
  const custody = deps.custody!;
  const audit = { record: (e: AuditInput) => deps.audit!.record(e) };
  const app = await deps.domain!.tenants.application(k.aid);
  if (!app) throw new Error(`application ${k.aid} is not registered`);
  const keyDef = app.definition.keys.find((x) => x.no === k.keyNo);
  if (!keyDef || keyDef.derivation.method !== 'diversified') throw new Error(`key ${k.keyNo} of ${k.aid} is not diversified: the demo rotates a diversified key`);
  const master = masterKeyName(keyDef.derivation.master);
  const approvals = new ApprovalService({ db, audit });
  const campaigns = new CampaignService({ db, audit, approvals, newVersion: async () => (await custody.rotateKey(CTX, master)).latestVersion });
  const keys = new CardKeys(custody);
  const byUid = new Map(cards.map((c) => [c.uid, c.t]));

  // the cards are on the version the station installed (the master's version at issue)
  const from = await db.selectFrom('card_keys').select('key_version').where('aid', '=', k.aid).where('key_no', '=', k.keyNo).executeTakeFirst();
  if (!from) throw new Error(`no card holds key ${k.keyNo} of ${k.aid}`);
  let c = await campaigns.create(
    { ...k, fromVersion: Number(from.key_version), target: { kind: 'all' }, batchSize: 25, graceMs: 7 * 24 * 3600 * 1000, requireApproval: true, reason: 'demo: scheduled yearly rotation' },
    'operator:alice',
  );
  // M distinct approvers holding the policy's role approve (the requester cannot)
  let approvers = 0;
  if (c.state === 'awaiting_approval') {
    const p = approvals.policy.kinds.rotation_campaign;
    for (let i = 0; i < p.required; i++) {
      await approvals.vote(c.approvalId!, { id: `operator:approver-${i + 1}`, roles: [p.role] }, 'approve');
      approvers++;
    }
  }
  c = await campaigns.start(c.id, 'operator:alice');
  const runner = new CampaignRunner(
    campaigns,
    {
      rotate: (req) =>
        rotateOneCard(
          {
            present: async (uid) => byUid.get(uid),
            key: async (job, version) => custody.exportForCard(CTX, await keys.appSource(db, app, job.uid, job.keyNo, version)),
            keyType: app.keyType === '3k3des' ? '3k3des' : 'aes',
            client: (t) => new DesfireClient(t),
          },
          req,
        ),
    },
    audit,
  );
  const result = await runner.run(c.id, { concurrency: 4, onProgress: (p) => onProgress(p.processed) });
  if (result !== 'finished') throw new Error(`campaign runner stopped: ${result}`);
  const progress = await campaigns.progress(c.id);
  const { done, failed } = progress.totals;
  if (failed === 0) c = await campaigns.complete(c.id, 'operator:alice');
  else c = await campaigns.require(c.id);
  // what the cards themselves report now (no authentication needed for GetKeyVersion)
  const cardVersions: number[] = [];
  for (const card of cards) {
    const dc = new DesfireClient(card.t);
    await dc.selectApplication(parseInt(k.aid, 16));
    cardVersions.push(await dc.getKeyVersion(k.keyNo));
  }
  return { campaign: c, done, failed, approvers, cardVersions };
}

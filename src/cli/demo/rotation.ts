// The demo's key rotation: one campaign over every issued card for one tenant key. The operator
// plans, starts and completes it over the API (/v1/rotation/campaigns: a new master version in
// custody, cards planned in batches, [current, previous] accepted during the grace period, the old
// version retired at completion). The card step runs where the cards are: J's campaign runner
// with the card step of src/reader/station/rotate.ts on the in-field virtual cards, keys exported
// from custody by the derivation the station jobs used (src/cms/jobs/keys.ts).
import { DesfireClient } from '../../core/client/client.js';
import type { Transport } from '../../core/transport.js';
import type { CallerContext } from '../../custody/types.js';
import { ApprovalService } from '../../cms/approvals/service.js';
import type { AuditInput } from '../../cms/audit/entry.js';
import { CardKeys } from '../../cms/jobs/keys.js';
import { CampaignService, type Campaign } from '../../cms/rotation/campaigns.js';
import { CampaignRunner } from '../../cms/rotation/runner.js';
import { rotateOneCard } from '../../reader/station/rotate.js';
import type { DemoCms, Res } from './cms.js';

export interface RotationOutcome {
  campaign: Campaign;
  done: number;
  failed: number;
  cardVersions: number[];
}

const CTX: CallerContext = { actor: 'reader-fleet:demo', purpose: 'card step of a rotation campaign', correlationId: 'demo-rotation' };

function ok(what: string, r: Res): Res {
  if (r.status < 200 || r.status >= 300) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.body?.error ?? r.body)}`);
  return r;
}

export async function rotateTenantKey(
  cms: DemoCms,
  k: { tenantId: string; aid: string; keyNo: number },
  cards: { uid: string; t: Transport }[],
  onProgress: (processed: number) => void,
): Promise<RotationOutcome> {
  const deps = cms.app.deps;
  const db = deps.domain!.db;
  const custody = deps.custody!;
  const app = await deps.domain!.tenants.application(k.aid);
  if (!app) throw new Error(`application ${k.aid} is not registered`);

  // the operator: the version the cards carry (the card view), then plan and start over the API
  const view = ok('card view', await cms.op('GET', `/v1/cards/${cards[0]!.uid}`)).body as { applications: { aid: string; keys: { keyNo: number; version: number }[] }[] };
  const fromVersion = view.applications.find((a) => a.aid === k.aid)?.keys.find((x) => x.keyNo === k.keyNo)?.version;
  if (fromVersion === undefined) throw new Error(`card ${cards[0]!.uid} shows no key ${k.keyNo} of ${k.aid}`);
  const created = ok('plan campaign', await cms.op('POST', '/v1/rotation/campaigns', { ...k, fromVersion, target: { kind: 'all' }, batchSize: 25, reason: 'demo: scheduled rotation' }));
  const id = created.body.id as string;
  if (created.body.state !== 'ready') throw new Error(`campaign is ${created.body.state} after planning (approval threshold?), expected ready`);
  ok('start campaign', await cms.op('POST', `/v1/rotation/campaigns/${id}/start`, {}));

  // the fleet: the runner drives the card step on every planned card
  const audit = { record: (e: AuditInput) => deps.audit!.record(e) };
  const campaigns = new CampaignService({ db, audit, approvals: new ApprovalService({ db, audit }) });
  const keys = new CardKeys(custody);
  const byUid = new Map(cards.map((c) => [c.uid, c.t]));
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
  const result = await runner.run(id, { concurrency: 4, onProgress: (p) => onProgress(p.processed) });
  if (result !== 'finished') throw new Error(`campaign runner stopped: ${result}`);

  // the operator: progress and completion over the API
  const progress = ok('campaign progress', await cms.op('GET', `/v1/rotation/campaigns/${id}`)).body as { totals: { done: number; failed: number } };
  const { done, failed } = progress.totals;
  const campaign = (failed === 0 ? ok('complete campaign', await cms.op('POST', `/v1/rotation/campaigns/${id}/complete`, {})).body : (await cms.op('GET', `/v1/rotation/campaigns/${id}`)).body.campaign) as Campaign;
  // what the cards themselves report now (GetKeyVersion needs no authentication)
  const cardVersions: number[] = [];
  for (const card of cards) {
    const dc = new DesfireClient(card.t);
    await dc.selectApplication(parseInt(k.aid, 16));
    cardVersions.push(await dc.getKeyVersion(k.keyNo));
  }
  return { campaign, done, failed, cardVersions };
}

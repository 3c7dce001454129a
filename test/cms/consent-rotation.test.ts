// Consent on rotation campaigns: with the consent check wired (CampaignServiceOptions.authorise =
// ConsentService.requireAuthorisationForCards), a campaign whose target holds a card without the
// tenant's rotate authorisation is refused and cancelled (nothing can start); with it, the campaign
// is created and its audit entry names the authorisations.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditInput } from '../../src/cms/audit/entry.js';
import { ApprovalService } from '../../src/cms/approvals/service.js';
import { ConsentService } from '../../src/cms/consent/index.js';
import { CardRepository, TenantRepository } from '../../src/cms/domain/index.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import { CampaignService } from '../../src/cms/rotation/campaigns.js';
import { type DatabaseHandle, openDatabase } from '../../src/cms/storage/index.js';

const CAMPUS = parseLayout(readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8'), 'campus.yaml');
const UIDS = ['04010101010101', '04020202020202'];
let h: DatabaseHandle;
let consent: ConsentService;
let campaigns: CampaignService;
const audit: AuditInput[] = [];

beforeAll(async () => {
  h = await openDatabase({ kind: 'sqlite', file: ':memory:' });
  await new TenantRepository(h.db).registerLayout(CAMPUS);
  const cards = new CardRepository(h.db);
  for (const u of UIDS) {
    await cards.createBlank(u);
    await cards.transition(u, 'issued');
    await cards.recordInstallation(u, 'A1C001', [0, 1, 2].map((keyNo) => ({ keyNo, version: 1 })));
  }
  const rec = { record: async (e: AuditInput) => void audit.push(e) };
  consent = new ConsentService({ db: h.db, audit: rec });
  const approvals = new ApprovalService({ db: h.db, audit: rec as never });
  campaigns = new CampaignService({ db: h.db, audit: rec as never, approvals, authorise: (q, w) => consent.requireAuthorisationForCards(q, w) });
}, 60_000);
afterAll(async () => h?.close());

describe('rotation campaigns under tenant authorisation', () => {
  const spec = { tenantId: 'access', aid: 'A1C001', keyNo: 1, fromVersion: 1, toVersion: 2, target: { kind: 'list' as const, uids: UIDS } };

  it('refused and cancelled when a target card has no rotate authorisation', async () => {
    await consent.grant({ actor: 'operator:tok_access' }, { tenant: 'access', aid: 'A1C001', operation: 'rotate', cards: [UIDS[0]!], ttlSeconds: 3600 });
    await expect(campaigns.create(spec, 'operator:tok_issuer')).rejects.toMatchObject({ code: 'ERR_CONSENT_DENIED', details: { uncovered: [UIDS[1]] } });
    const all = await campaigns.list();
    expect(all.map((c) => c.state)).toEqual(['cancelled']);
    expect(audit.some((e) => e.operation === 'consent.check' && e.result === 'denied')).toBe(true);
  });

  it('created when every card is covered; the audit entry names the authorisations', async () => {
    const a = await consent.grant({ actor: 'operator:tok_access' }, { tenant: 'access', aid: 'A1C001', operation: 'rotate', cards: UIDS, ttlSeconds: 3600 });
    const b = await consent.authorisations({ tenant: 'access', operation: 'rotate' });
    const c = await campaigns.create({ ...spec, toVersion: 3 }, 'operator:tok_issuer');
    expect(c.state).toBe('ready');
    const created = audit.filter((e) => e.operation === 'rotation.create').at(-1)!;
    const named = (created.details as { authorisations: string[] }).authorisations;
    // the card authorisation of UIDS[0] (most specific) and the batch for UIDS[1]
    expect(named).toEqual([b[0]!.id, a.id].sort());
  });
});

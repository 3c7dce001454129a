// Wiring of the operations layer into the composition root (src/cms/app.ts), kept here so that
// app.ts carries one line per concern: the audit observer, the custody timer, the scrape sources
// and the /v1/metrics route.
import { sql, type Kysely } from 'kysely';
import type { ApiDeps } from '../api/ports.js';
import type { AuditLog } from '../audit/log.js';
import type { OpenAuditOptions } from '../audit/index.js';
import type { Database } from '../storage/index.js';
import { metricsModule } from './http-metrics.js';
import type { CmsMetrics } from './metrics.js';
import type { CampaignProgressRow, PromMetrics } from './prometheus.js';

/** The audit log's observability hooks, feeding `metrics`. */
export function auditObserver(metrics: CmsMetrics): NonNullable<OpenAuditOptions['observe']> {
  return {
    committed: (es) => metrics.auditCommitted(es),
    batch: (n, ms) => metrics.auditBatch(n, ms),
    alert: (a) => metrics.alertRaised(a.rule, a.severity),
  };
}

const OPEN_CAMPAIGNS = ['running', 'paused', 'rolling_back', 'ready'];

/** Per open campaign and item state, the number of cards (one GROUP BY over the open campaigns). */
export async function campaignProgress(db: Kysely<Database>): Promise<CampaignProgressRow[]> {
  const rows = await db
    .selectFrom('rotation_items as i')
    .innerJoin('rotation_campaigns as c', 'c.id', 'i.campaign_id')
    .select(['c.id as campaign', 'c.tenant_id as tenant', 'c.aid as aid', 'c.state as campaignState', 'i.state as itemState', sql<number>`count(*)`.as('items')])
    .where('c.state', 'in', OPEN_CAMPAIGNS)
    .groupBy(['c.id', 'c.tenant_id', 'c.aid', 'c.state', 'i.state'])
    .execute();
  return rows.map((r) => ({ ...r, items: Number(r.items) }));
}

/** Attach the scrape sources to `metrics`, the HTTP hooks (deps.metrics) and GET /v1/metrics. */
export function attachMetrics(deps: ApiDeps, metrics: PromMetrics, s: { db: Kysely<Database>; audit: AuditLog; sealed: () => boolean }): void {
  metrics.setSources({
    auditQueue: () => {
      const h = s.audit.health();
      return { queued: h.queued, treeSize: h.treeSize, ok: h.status === 'ok' };
    },
    custodySealed: s.sealed,
    campaignProgress: () => campaignProgress(s.db),
    activeReaders: async () => (await s.db.selectFrom('readers').select('id').where('state', '=', 'active').execute()).map((r) => r.id),
  });
  deps.metrics = metrics;
  (deps.modules ??= []).push(metricsModule(metrics));
}

// The Prometheus implementation of CmsMetrics (prom-client), with its own registry (never the
// global one: several CMS apps may live in one test process). Counters and histograms are fed by
// the hooks; gauges that describe state (audit queue, campaign progress, readers online/offline,
// custody sealed) are computed when /metrics is scraped, from the sources passed in `sources`.
//
// Label values are bounded: routes are patterns, tenants/AIDs are the configured applications,
// results are a handful of words. No label ever carries a key, a token or a card UID.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { releasedKeys } from '../audit/custody-event.js';
import type { AuditEntry } from '../audit/entry.js';
import { type CmsMetrics, type CustodyObservation, type HttpObservation, keyReleaseOf } from './metrics.js';

export interface CampaignProgressRow {
  campaign: string;
  tenant: string;
  aid: string;
  campaignState: string;
  itemState: string;
  items: number;
}

/** Where the scrape-time gauges come from (each optional; a failing source is skipped). */
export interface MetricSources {
  auditQueue?: () => { queued: number; treeSize: number; ok: boolean };
  campaignProgress?: () => Promise<CampaignProgressRow[]>;
  /** Readers in state 'active' (online = seen within the window, offline = the rest). */
  activeReaders?: () => Promise<string[]>;
  custodySealed?: () => boolean;
}

export interface PromMetricsOptions {
  prefix?: string;
  /** A reader counts as online when it made an authenticated request this recently (default 5 min). */
  onlineWindowMs?: number;
  /** Node process metrics (CPU, memory, event loop lag); default true. */
  processMetrics?: boolean;
  now?: () => number;
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const MAX_SEEN = 100_000;

export class PromMetrics implements CmsMetrics {
  readonly registry = new Registry();
  private readonly seen = new Map<string, number>();
  private sources: MetricSources = {};
  private readonly now: () => number;
  private readonly windowMs: number;
  private readonly http: Histogram<'method' | 'route' | 'status'>;
  private readonly custody: Histogram<'backend' | 'op' | 'result'>;
  private readonly releases: Counter<'tenant' | 'aid' | 'result'>;
  private readonly auditEntries: Counter<'result'>;
  private readonly auditCommit: Histogram;
  private readonly alerts: Counter<'rule' | 'severity'>;

  constructor(o: PromMetricsOptions = {}) {
    const p = o.prefix ?? 'desfire_cms_';
    this.now = o.now ?? Date.now;
    this.windowMs = o.onlineWindowMs ?? 5 * 60_000;
    const registers = [this.registry];
    if (o.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: p });
    this.http = new Histogram({ name: `${p}http_request_duration_seconds`, help: 'API requests by route pattern, method and status (count = request rate)', labelNames: ['method', 'route', 'status'], buckets: LATENCY_BUCKETS, registers });
    this.custody = new Histogram({ name: `${p}custody_operation_duration_seconds`, help: 'custody calls by backend, operation and result', labelNames: ['backend', 'op', 'result'], buckets: LATENCY_BUCKETS, registers });
    this.releases = new Counter({ name: `${p}key_releases_total`, help: 'key releases (sealed deliveries, exports to stations) by tenant, AID and result (ok | error | refused)', labelNames: ['tenant', 'aid', 'result'], registers });
    this.auditEntries = new Counter({ name: `${p}audit_entries_total`, help: 'audit entries committed, by result', labelNames: ['result'], registers });
    this.auditCommit = new Histogram({ name: `${p}audit_commit_duration_seconds`, help: 'audit group-commit duration (one transaction per batch)', buckets: LATENCY_BUCKETS, registers });
    this.alerts = new Counter({ name: `${p}alerts_raised_total`, help: 'alerts raised by the audit alert rules', labelNames: ['rule', 'severity'], registers });

    const ref = { sources: (): MetricSources => this.sources, seen: this.seen, now: this.now, windowMs: this.windowMs };
    new Gauge({
      name: `${p}audit_queue_depth`,
      help: 'audit entries waiting for their group commit',
      registers,
      collect() {
        const q = ref.sources().auditQueue?.();
        if (q) this.set(q.queued);
      },
    });
    new Gauge({
      name: `${p}audit_tree_size`,
      help: 'entries in the audit log (Merkle tree size known to this process)',
      registers,
      collect() {
        const q = ref.sources().auditQueue?.();
        if (q) this.set(q.treeSize);
      },
    });
    new Gauge({
      name: `${p}audit_writable`,
      help: '1 when the audit log accepts entries, 0 when degraded (operations fail closed)',
      registers,
      collect() {
        const q = ref.sources().auditQueue?.();
        if (q) this.set(q.ok ? 1 : 0);
      },
    });
    new Gauge({
      name: `${p}custody_sealed`,
      help: '1 when the custody backend is sealed (no key operation possible)',
      registers,
      collect() {
        const s = ref.sources().custodySealed;
        if (s) this.set(s() ? 1 : 0);
      },
    });
    new Gauge({
      name: `${p}rotation_campaign_cards`,
      help: 'cards of open rotation campaigns by item state (pending | done | failed | reverted)',
      labelNames: ['campaign', 'tenant', 'aid', 'campaign_state', 'item_state'],
      registers,
      async collect() {
        this.reset();
        const f = ref.sources().campaignProgress;
        if (!f) return;
        try {
          for (const r of await f()) this.set({ campaign: r.campaign, tenant: r.tenant, aid: r.aid, campaign_state: r.campaignState, item_state: r.itemState }, r.items);
        } catch {
          /* the database is down: /readyz says so; the scrape still answers */
        }
      },
    });
    new Gauge({
      name: `${p}readers`,
      help: `active readers by presence: online = an authenticated request within the window (per CMS process)`,
      labelNames: ['presence'],
      registers,
      async collect() {
        const f = ref.sources().activeReaders;
        if (!f) return;
        try {
          const active = await f();
          const cut = ref.now() - ref.windowMs;
          let online = 0;
          for (const id of active) if ((ref.seen.get(id) ?? -Infinity) >= cut) online++;
          this.set({ presence: 'online' }, online);
          this.set({ presence: 'offline' }, active.length - online);
        } catch {
          /* database down */
        }
      },
    });
  }

  /** Attach the scrape-time sources (the composition root does, once the services exist). */
  setSources(s: MetricSources): void {
    this.sources = { ...this.sources, ...s };
  }

  httpRequest(o: HttpObservation): void {
    this.http.observe({ method: o.method, route: o.route, status: String(o.status) }, o.seconds);
  }

  custodyOp(o: CustodyObservation): void {
    this.custody.observe({ backend: o.backend, op: o.op, result: o.result }, o.seconds);
  }

  auditCommitted(entries: readonly AuditEntry[]): void {
    for (const e of entries) {
      this.auditEntries.inc({ result: e.result.slice(0, 32) });
      const r = keyReleaseOf(e);
      if (r) for (const k of r === 'ok' ? releasedKeys(e) : [e]) this.releases.inc({ tenant: k.tenant ?? 'none', aid: k.aid ?? 'none', result: r });
    }
  }

  auditBatch(_entries: number, ms: number): void {
    this.auditCommit.observe(ms / 1000);
  }

  alertRaised(rule: string, severity: string): void {
    this.alerts.inc({ rule, severity });
  }

  readerSeen(readerId: string, now = this.now()): void {
    if (this.seen.size >= MAX_SEEN && !this.seen.has(readerId)) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(readerId, now);
  }

  contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

// The alert engine: runs the rules over every committed batch (AuditLog's onCommitted hook),
// stores alerts, lists them, and hands them to the webhook. Everything is asynchronous and
// best-effort: alerting never blocks or fails an append.
import { randomUUID } from 'node:crypto';
import type { AuditEntry, Json } from '../entry.js';
import type { AuditStore } from '../store.js';
import { AlertRules } from './rules.js';
import { type Alert, type AlertConfig, type AlertRule, alertConfig } from './types.js';
import type { WebhookNotifier } from './webhook.js';

export interface AlertEngineOptions {
  store: Pick<AuditStore, 'saveAlert' | 'alerts' | 'markAlert'>;
  config?: AlertConfig;
  webhook?: WebhookNotifier;
  /** Called for every alert raised (e.g. a log line); must not throw. */
  onAlert?: (a: Alert) => void;
}

export class AlertEngine {
  private readonly rules: AlertRules;
  private pending: Promise<unknown> = Promise.resolve();
  /** Alerts that could not be stored (store failing): kept in memory, bounded. */
  readonly unsaved: Alert[] = [];

  constructor(private readonly o: AlertEngineOptions) {
    this.rules = new AlertRules(o.config ?? alertConfig());
  }

  /** Feed committed entries (in index order). Never throws. */
  observe(entries: AuditEntry[]): void {
    const raised: Alert[] = [];
    for (const e of entries) {
      try {
        for (const r of this.rules.observe(e)) raised.push({ id: randomUUID(), ...r });
      } catch {
        /* a rule bug must not stop the others */
      }
    }
    if (!raised.length) return;
    this.pending = this.pending.then(() => this.persist(raised)).catch(() => undefined);
  }

  private async persist(alerts: Alert[]): Promise<void> {
    for (const a of alerts) {
      try {
        this.o.onAlert?.(a);
      } catch {
        /* ignore */
      }
      try {
        await this.o.store.saveAlert({
          id: a.id,
          time: a.time,
          rule: a.rule,
          severity: a.severity,
          subject: a.subject,
          message: a.message,
          details: JSON.stringify(a.details),
          entry_idx: a.entryIdx,
          delivery: 0,
          delivery_attempts: 0,
        });
      } catch {
        if (this.unsaved.length < 10_000) this.unsaved.push(a);
      }
      this.o.webhook?.send(a, (ok, attempts) => {
        this.o.store.markAlert(a.id, ok ? 1 : 2, attempts).catch(() => undefined);
      });
    }
  }

  /** Resolves when every alert raised so far is stored (and handed to the webhook). */
  async flush(): Promise<void> {
    await this.pending;
  }

  async list(q: { since?: number; limit?: number; rule?: AlertRule } = {}): Promise<Alert[]> {
    const rows = await this.o.store.alerts(q);
    return rows.map((r) => ({
      id: r.id,
      time: r.time,
      rule: r.rule as AlertRule,
      severity: r.severity as Alert['severity'],
      subject: r.subject,
      message: r.message,
      details: JSON.parse(r.details) as Record<string, Json>,
      entryIdx: r.entry_idx,
    }));
  }
}

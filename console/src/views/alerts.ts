// Alerts: the audit log's alert rules (revoked reader, bursts of refusals, …) with acknowledge, when
// the CMS exposes them (GET /v1/alerts, POST /v1/alerts/:id/acknowledge). Until it does, the view
// says so and lists what needs attention from the audit log itself: refused and failed operations.
import { ApiError, get, post, type AuditEntry } from '../api.js';
import { badge, errorBox, h, notice, table, time } from '../dom.js';
import { ENTRY_HEAD, entryRows } from './cards.js';
import { isGlobal, type View, type ViewContext } from './view.js';

export interface Alert {
  id: string;
  time: number;
  rule: string;
  severity: string;
  subject: string;
  message: string;
  acknowledged?: boolean;
  acknowledgedBy?: string | null;
}

/** Alerts, or undefined when this CMS's API has no alerts endpoint. */
export async function fetchAlerts(): Promise<Alert[] | undefined> {
  try {
    return (await get<{ alerts: Alert[] }>('/alerts')).alerts;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return undefined;
    throw e;
  }
}

/** Refused or failed operations among the latest entries (what the alert rules look at). */
export async function attention(ctx: ViewContext, limit = 50): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for (const tenant of isGlobal(ctx.me) ? [undefined] : ctx.me.tenants) {
    let r = await get<{ entries: AuditEntry[]; next: number | null }>('/audit/entries', { limit: 1000, tenant });
    out.push(...r.entries.filter((e) => e.result !== 'ok'));
    for (let i = 0; r.next !== null && i < 20; i++) {
      r = await get<{ entries: AuditEntry[]; next: number | null }>('/audit/entries', { limit: 1000, tenant, from: r.next });
      out.push(...r.entries.filter((e) => e.result !== 'ok'));
    }
  }
  return out.sort((a, b) => b.index - a.index).slice(0, limit);
}

export const alertsView: View = async (ctx) => {
  const alerts = await fetchAlerts();
  if (alerts === undefined) {
    let recent: HTMLElement;
    try {
      recent = table('Refused and failed operations (latest first)', ENTRY_HEAD, entryRows(await attention(ctx)), 'Nothing refused or failed recently.');
    } catch (e) {
      recent = errorBox(e);
    }
    return h('div', null, notice('This CMS does not expose its audit alerts over the API yet (no /v1/alerts), so they cannot be listed or acknowledged here. Below: what the alert rules watch, straight from the audit log.', 'warn'), recent);
  }
  const msg = h('div', { 'aria-live': 'polite' });
  const ack = async (id: string) => {
    try {
      await post(`/alerts/${encodeURIComponent(id)}/acknowledge`);
      ctx.go('#/alerts');
    } catch (e) {
      msg.replaceChildren(errorBox(e));
    }
  };
  const open = alerts.filter((a) => !a.acknowledged);
  return h(
    'div',
    null,
    msg,
    table(
      `Open alerts (${open.length})`,
      ['When', 'Severity', 'Rule', 'Subject', 'Message', ''],
      open.map((a) => [time(a.time), badge(a.severity), a.rule, a.subject, a.message, h('button', { type: 'button', onclick: () => void ack(a.id) }, 'Acknowledge')]),
      'No open alerts.',
    ),
    table(
      'Acknowledged',
      ['When', 'Severity', 'Rule', 'Subject', 'Message', 'By'],
      alerts.filter((a) => a.acknowledged).map((a) => [time(a.time), badge(a.severity), a.rule, a.subject, a.message, a.acknowledgedBy ?? '—']),
      'None acknowledged.',
    ),
  );
};

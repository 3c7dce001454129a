// Alerts: the audit log's alert rules (revoked reader, bursts of refusals, …) listed with acknowledge
// (GET /v1/alerts, POST /v1/alerts/:id/acknowledge; the acknowledgement is an audit entry). A CMS
// without that API gets a notice and what needs attention from the audit log: refused/failed operations.
import { ApiError, get, post, type AuditEntry } from '../api.js';
import { badge, errorBox, h, notice, table, time } from '../dom.js';
import { ENTRY_HEAD, entryRows } from './cards.js';
import { can, isGlobal, type View, type ViewContext } from './view.js';

export interface Alert {
  id: string;
  time: number;
  rule: string;
  severity: string;
  subject: string;
  message: string;
  entryIndex?: number | null;
  acknowledged?: boolean;
  acknowledgedBy?: string | null;
  acknowledgedAt?: number | null;
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
  let alerts: Alert[] | undefined;
  try {
    alerts = await fetchAlerts();
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) return notice('Alerts span tenants: they are shown to issuer admins and auditors whose token covers every tenant.', 'info');
    throw e;
  }
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
      open.map((a) => [
        time(a.time),
        badge(a.severity),
        a.rule,
        a.subject,
        [a.message, a.entryIndex !== null && a.entryIndex !== undefined ? [' (', h('a', { href: `#/audit/${a.entryIndex}` }, `entry ${a.entryIndex}`), ')'] : null],
        can(ctx.me, 'issuer_admin', 'auditor') ? h('button', { type: 'button', 'data-testid': 'ack', onclick: () => void ack(a.id) }, 'Acknowledge') : '',
      ]),
      'No open alerts.',
    ),
    table(
      'Acknowledged',
      ['When', 'Severity', 'Rule', 'Subject', 'Message', 'Acknowledged'],
      alerts.filter((a) => a.acknowledged).map((a) => [time(a.time), badge(a.severity), a.rule, a.subject, a.message, `${a.acknowledgedBy ?? '—'}, ${time(a.acknowledgedAt)}`]),
      'None acknowledged.',
    ),
  );
};

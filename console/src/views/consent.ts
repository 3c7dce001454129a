// Tenant consent: what the issuer asks of a tenant and what the tenant has authorised. A tenant
// admin sees the pending authorisation requests of its tenants and grants or refuses each; it lists
// its authorisations (active / all) and revokes one; it authorises directly (install / rotate /
// delete of its application on cards or on every card of a profile). The issuer and auditors read
// the same lists (within their tenants); the API enforces who decides (only the tenant's admin).
import { call, get, post, type Application } from '../api.js';
import { badge, confirmDialog, errorBox, h, notice, table, time } from '../dom.js';
import { can, type View, type ViewContext } from './view.js';

/** What an authorisation or a request is about. */
interface Subject {
  id: string;
  tenant: string;
  aid: string;
  operation: string;
  scope: string;
  cardUids: string[] | null;
  cardProfile: string | null;
  createdAt: number;
}

interface Authorisation extends Subject {
  validFrom: number;
  expiresAt: number;
  grantedBy: string;
  requestId: string | null;
  revokedAt: number | null;
}

interface AuthorisationRequest extends Subject {
  ttlSeconds: number;
  reason: string;
  state: string;
  requestedBy: string;
  decidedBy: string | null;
  decisionReason: string | null;
  authorisationId: string | null;
}

const DAY = 86_400;

function target(x: { cardUids: string[] | null; cardProfile: string | null }): string {
  if (x.cardUids) return x.cardUids.length === 1 ? `card ${x.cardUids[0]}` : `${x.cardUids.length} cards (${x.cardUids.slice(0, 3).join(', ')}${x.cardUids.length > 3 ? ', …' : ''})`;
  return x.cardProfile === '*' ? 'every card' : `cards of profile ${x.cardProfile ?? '?'}`;
}

function duration(s: number): string {
  return s % DAY === 0 ? `${s / DAY} d` : s % 3600 === 0 ? `${s / 3600} h` : `${s} s`;
}

function status(a: Authorisation): string {
  if (a.revokedAt !== null) return 'revoked';
  const now = Date.now();
  if (a.expiresAt <= now) return 'expired';
  return a.validFrom > now ? 'scheduled' : 'active';
}

function authoriseForm(ctx: ViewContext, apps: Application[]): HTMLElement {
  const msg = h('div', { 'aria-live': 'polite' });
  const app = h('select', { id: 'au-app', required: true }, apps.map((a) => h('option', { value: `${a.tenantId}/${a.aid}` }, `${a.tenantId} · ${a.aid} ${a.name}`)));
  const op = h('select', { id: 'au-op' }, ['install', 'rotate', 'delete'].map((o) => h('option', { value: o }, o)));
  const cards = h('input', { id: 'au-cards', placeholder: 'UIDs, comma-separated (empty: a profile)', spellcheck: 'false', autocomplete: 'off' });
  const profile = h('input', { id: 'au-profile', value: '*', spellcheck: 'false', autocomplete: 'off' });
  const days = h('input', { id: 'au-days', type: 'number', min: '1', max: '1825', value: '30', required: true });
  const form = h(
    'form',
    { class: 'panel-form', 'aria-labelledby': 'au-title', 'data-testid': 'authorise-form' },
    h('h2', { id: 'au-title' }, 'Authorise'),
    h('label', { for: 'au-app' }, 'Application'),
    app,
    h('label', { for: 'au-op' }, 'Operation'),
    op,
    h('label', { for: 'au-cards' }, 'Cards'),
    cards,
    h('label', { for: 'au-profile' }, "Card profile ('*' = every card; used when no cards are given)"),
    profile,
    h('label', { for: 'au-days' }, 'Valid for (days)'),
    days,
    h('button', { type: 'submit', class: 'primary' }, 'Authorise'),
    msg,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const [tenant, aid] = app.value.split('/');
    const uids = cards.value
      .split(/[\s,]+/)
      .map((u) => u.trim().toUpperCase())
      .filter(Boolean);
    const body = { tenant, aid, operation: op.value, ttlSeconds: Math.round(Number(days.value) * DAY), ...(uids.length ? { cards: uids } : { profile: profile.value.trim() }) };
    post<Authorisation>('/authorisations', body)
      .then((a) => {
        msg.replaceChildren(notice(`Authorised: ${a.id} (${a.operation} ${a.aid}, ${target(a)}, until ${time(a.expiresAt)}).`, 'ok'));
        window.setTimeout(() => ctx.go('#/consent'), 600);
      })
      .catch((e: unknown) => msg.replaceChildren(errorBox(e)));
  });
  return form;
}

export const consentView: View = async (ctx) => {
  const admin = can(ctx.me, 'tenant_admin');
  const which = ctx.query.get('show') === 'all' ? 'all' : 'active';
  const [requests, auths, apps] = await Promise.all([
    get<{ requests: AuthorisationRequest[] }>('/authorisation-requests', { state: 'pending' }),
    get<{ authorisations: Authorisation[] }>('/authorisations', which === 'active' ? { active: 'true' } : {}),
    admin ? get<{ applications: Application[] }>('/applications') : Promise.resolve({ applications: [] as Application[] }),
  ]);
  const msg = h('div', { 'aria-live': 'polite', 'data-testid': 'consent-message' });
  const act = async (fn: () => Promise<string>) => {
    try {
      msg.replaceChildren(notice(await fn(), 'ok'));
      window.setTimeout(() => ctx.go(`#/consent${which === 'all' ? '?show=all' : ''}`), 600);
    } catch (e) {
      msg.replaceChildren(errorBox(e));
    }
  };
  const grant = (r: AuthorisationRequest) =>
    act(async () => {
      const g = await post<{ authorisation: Authorisation }>(`/authorisation-requests/${encodeURIComponent(r.id)}/grant`, {});
      return `Granted ${r.id}: authorisation ${g.authorisation.id} until ${time(g.authorisation.expiresAt)}.`;
    });
  const refuse = async (r: AuthorisationRequest) => {
    if (!(await confirmDialog(`Refuse request ${r.id}?`, `${r.operation} of ${r.aid} on ${target(r)} — the issuer will see it refused and must ask again.`, 'Refuse'))) return;
    await act(async () => {
      await post(`/authorisation-requests/${encodeURIComponent(r.id)}/refuse`, { reason: 'refused in the console' });
      return `Refused ${r.id}.`;
    });
  };
  const revoke = async (a: Authorisation) => {
    if (!(await confirmDialog(`Revoke ${a.id}?`, `From now on no job may ${a.operation} ${a.aid} under it (${target(a)}). Jobs already running finish.`, 'Revoke'))) return;
    await act(async () => {
      await call('POST', `/authorisations/${encodeURIComponent(a.id)}/revoke`);
      return `Revoked ${a.id}.`;
    });
  };
  const tabs = h(
    'div',
    { class: 'tabs', role: 'group', 'aria-label': 'Which authorisations' },
    (['active', 'all'] as const).map((s) => h('a', { href: s === 'all' ? '#/consent?show=all' : '#/consent', 'aria-current': s === which ? 'page' : undefined, class: 'tab' }, s)),
  );
  return h(
    'div',
    null,
    admin ? null : notice('Only a tenant admin grants, refuses or revokes its tenant’s authorisations; you can read them.', 'info'),
    msg,
    h(
      'section',
      { 'data-testid': 'pending-requests', 'aria-labelledby': 'pending-title' },
      h('h2', { id: 'pending-title' }, 'Requests waiting for a decision'),
      table(
        'Pending authorisation requests',
        ['Request', 'Application', 'Operation', 'On', 'Validity', 'Reason', 'Requested by', 'Requested', ''],
        requests.requests
          .sort((a, b) => a.createdAt - b.createdAt)
          .map((r) => [
            h('span', { class: 'mono' }, r.id),
            `${r.tenant} · ${r.aid}`,
            r.operation,
            target(r),
            duration(r.ttlSeconds),
            r.reason,
            r.requestedBy,
            time(r.createdAt),
            admin
              ? h(
                  'div',
                  { class: 'actions' },
                  h('button', { type: 'button', class: 'primary', 'data-testid': `grant-${r.id}`, onclick: () => void grant(r) }, 'Grant'),
                  h('button', { type: 'button', class: 'danger', 'data-testid': `refuse-${r.id}`, onclick: () => void refuse(r) }, 'Refuse'),
                )
              : '',
          ]),
        'Nothing waits for a decision.',
      ),
    ),
    h(
      'section',
      { 'data-testid': 'authorisations', 'aria-labelledby': 'auth-title' },
      h('h2', { id: 'auth-title' }, 'Authorisations'),
      tabs,
      table(
        which === 'active' ? 'Authorisations in force' : 'All authorisations',
        ['Authorisation', 'Application', 'Operation', 'On', 'Until', 'Granted by', 'Request', 'State', ''],
        auths.authorisations
          .sort((a, b) => b.createdAt - a.createdAt)
          .map((a) => {
            const st = status(a);
            return [
              h('span', { class: 'mono' }, a.id),
              `${a.tenant} · ${a.aid}`,
              a.operation,
              target(a),
              time(a.expiresAt),
              a.grantedBy,
              a.requestId ? h('span', { class: 'mono' }, a.requestId) : '—',
              h('span', { 'data-testid': `state-${a.id}` }, badge(st)),
              admin && st !== 'revoked' && st !== 'expired' ? h('button', { type: 'button', class: 'danger', 'data-testid': `revoke-${a.id}`, onclick: () => void revoke(a) }, 'Revoke') : '',
            ];
          }),
        which === 'active' ? 'No authorisation in force.' : 'No authorisations.',
      ),
    ),
    admin && apps.applications.length ? authoriseForm(ctx, apps.applications) : null,
  );
};

// Overview: cards by lifecycle state, applications per tenant, readers by state, open alerts,
// pending approvals and audit health (readiness, the latest signed checkpoint). Each tile loads on
// its own, so one refusal (e.g. a tenant admin cannot read approvals) does not blank the page.
import { ApiError, get, type Application, type Approval, type Card, type Checkpoint, type Reader, type Tenant } from '../api.js';
import { ago, errorBox, h, notice } from '../dom.js';
import { attention, fetchAlerts } from './alerts.js';
import { can, type View, type ViewContext } from './view.js';

const STATES = ['blank', 'issued', 'active', 'suspended', 'revoked', 'destroyed'];

function tile(title: string, href: string, load: () => Promise<HTMLElement | string>): HTMLElement {
  const body = h('div', { class: 'tile-body' }, h('span', { class: 'hint' }, 'Loading…'));
  const el = h('section', { class: 'tile', 'aria-label': title }, h('h2', null, h('a', { href }, title)), body);
  load()
    .then((c) => body.replaceChildren(c))
    .catch((e: unknown) => body.replaceChildren(e instanceof ApiError && e.status === 403 ? notice('Not visible to your token.', 'info') : errorBox(e)));
  return el;
}

function bars(rows: [string, number, string?][]): HTMLElement {
  const max = Math.max(1, ...rows.map((r) => r[1]));
  return h(
    'ul',
    { class: 'bars' },
    rows.map(([label, n, cls]) => {
      const bar = h('span', { class: `bar ${cls ?? label}` });
      bar.style.width = `${n === 0 ? 0 : Math.max(2, (100 * n) / max).toFixed(0)}%`; // CSSOM: allowed by the strict CSP
      return h('li', null, h('span', { class: 'bar-label' }, label), h('span', { class: 'bar-track' }, bar), h('span', { class: 'bar-n' }, String(n)));
    }),
  );
}

async function countCards(state: string): Promise<string> {
  let n = 0;
  let after: string | undefined;
  for (let i = 0; i < 10; i++) {
    const r = await get<{ cards: Card[]; next: string | null }>('/cards', { state, limit: 1000, after });
    n += r.cards.length;
    if (!r.next) return String(n);
    after = r.next;
  }
  return `${n}+`;
}

export const overviewView: View = async (ctx: ViewContext) => {
  return h(
    'div',
    { class: 'tiles' },
    tile('Cards by lifecycle state', '#/cards', async () => {
      const counts = await Promise.all(STATES.map(async (s) => [s, await countCards(s)] as const));
      const total = counts.reduce((a, [, n]) => a + parseInt(n, 10), 0);
      if (total === 0) return notice('No cards in your scope yet.', 'info');
      return bars(counts.map(([s, n]) => [s, parseInt(n, 10)]));
    }),
    tile('Applications per tenant', '#/tenants', async () => {
      const [t, a] = await Promise.all([get<{ tenants: Tenant[] }>('/tenants'), get<{ applications: Application[] }>('/applications')]);
      if (!t.tenants.length) return notice('No tenants yet.', 'info');
      return bars(t.tenants.map((x) => [x.id, a.applications.filter((y) => y.tenantId === x.id).length, 'app']));
    }),
    tile('Readers', '#/readers', async () => {
      const r = (await get<{ readers: Reader[] }>('/readers')).readers;
      if (!r.length) return notice('No readers in your scope.', 'info');
      const by = (s: string) => r.filter((x) => x.state === s).length;
      return bars([
        ['active', by('active')],
        ['suspended', by('suspended')],
        ['revoked', by('revoked')],
        ['pending', r.length - by('active') - by('suspended') - by('revoked'), 'pending'],
      ]);
    }),
    tile('Open alerts', '#/alerts', async () => {
      const a = await fetchAlerts();
      if (a !== undefined) {
        const open = a.filter((x) => !x.acknowledged).length;
        return h('p', { class: 'big' }, String(open), h('span', { class: 'hint' }, open === 1 ? ' open alert' : ' open alerts'));
      }
      const n = (await attention(ctx, 1000)).length;
      return h('div', null, h('p', { class: 'big' }, String(n), h('span', { class: 'hint' }, ' refused/failed operations')), h('p', { class: 'hint' }, 'The API exposes no alert list; counted from the audit log.'));
    }),
    tile('Pending approvals', '#/approvals', async () => {
      if (!can(ctx.me, 'issuer_admin', 'auditor')) return notice('Approvals are for issuer admins and auditors.', 'info');
      const a = (await get<{ approvals: Approval[] }>('/approvals', { state: 'pending' })).approvals;
      return h('p', { class: 'big', 'data-testid': 'pending-approvals' }, String(a.length), h('span', { class: 'hint' }, ' waiting'));
    }),
    tile('Audit health', '#/audit', async () => {
      const ready = await fetch('/readyz', { cache: 'no-store', credentials: 'omit' })
        .then(async (r) => (await r.json()) as { status: string; checks: { name: string; ok: boolean; reason?: string }[] })
        .catch(() => undefined);
      const cp = await get<Checkpoint>('/audit/checkpoints/latest');
      const auditCheck = ready?.checks.find((c) => /audit/i.test(c.name));
      return h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'CMS readiness'),
        h('dd', null, ready ? ready.status : 'unknown'),
        auditCheck ? [h('dt', null, 'Audit log'), h('dd', null, auditCheck.ok ? 'ok' : `down: ${auditCheck.reason ?? ''}`)] : null,
        h('dt', null, 'Latest signed checkpoint'),
        h('dd', null, `${cp.size} entries, ${ago(cp.createdAt)}`),
        h('dt', null, 'Root'),
        h('dd', { class: 'mono' }, `${cp.rootHash.slice(0, 16)}…`),
      );
    }),
  );
};

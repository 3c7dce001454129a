// Rotation campaigns: create (a campaign over the approval threshold waits for four-eyes approval),
// watch progress (per batch, and done/pending/failed over time while the page is open), start,
// pause, resume, roll back, complete, cancel.
import { ApiError, get, post, type Application, type Approval, type Campaign, type Progress } from '../api.js';
import { badge, confirmDialog, errorBox, h, notice, svg, table, time } from '../dom.js';
import { can, type View, type ViewContext } from './view.js';

const POLL_MS = 1500;

interface Sample {
  t: number;
  done: number;
  pending: number;
  failed: number;
}

function samplesOf(id: string): Sample[] {
  try {
    return JSON.parse(sessionStorage.getItem(`desfire-cms.samples.${id}`) ?? '[]') as Sample[];
  } catch {
    return [];
  }
}
function saveSamples(id: string, s: Sample[]): void {
  sessionStorage.setItem(`desfire-cms.samples.${id}`, JSON.stringify(s.slice(-300)));
}

/** Stacked bars per batch: done (green), failed (red), pending (grey). */
function batchChart(p: Progress): SVGElement {
  const W = 640;
  const H = 160;
  const n = Math.max(1, p.batches.length);
  const max = Math.max(1, ...p.batches.map((b) => b.done + b.pending + b.failed + b.reverted + b.cancelled));
  const bw = Math.max(4, Math.min(48, (W - 40) / n - 4));
  const g: SVGElement[] = [];
  p.batches.forEach((b, i) => {
    const x = 30 + i * (bw + 4);
    let y = H - 20;
    for (const [k, cls] of [
      ['done', 'done'],
      ['reverted', 'reverted'],
      ['failed', 'failed'],
      ['pending', 'pending'],
      ['cancelled', 'cancelled'],
    ] as const) {
      const v = b[k];
      if (!v) continue;
      const hgt = ((H - 40) * v) / max;
      y -= hgt;
      g.push(svg('rect', { x, y, width: bw, height: hgt, class: cls }, svg('title', {}, `batch ${b.batch}: ${v} ${k}`)));
    }
    if (n <= 20) g.push(svg('text', { x: x + bw / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis' }, String(b.batch)));
  });
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `cards per batch: ${p.totals.done} done, ${p.totals.pending} pending, ${p.totals.failed} failed`, class: 'chart' }, svg('title', {}, 'Cards per batch'), ...g);
}

/** done / pending / failed over time (samples taken while watching). */
function timeChart(samples: Sample[], total: number): SVGElement {
  const W = 640;
  const H = 160;
  if (samples.length < 2) return svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'not enough samples yet' }, svg('text', { x: 20, y: 80, class: 'axis' }, 'Collecting samples while you watch…'));
  const t0 = samples[0]!.t;
  const t1 = Math.max(t0 + 1, samples[samples.length - 1]!.t);
  const max = Math.max(1, total);
  const pt = (s: Sample, v: number) => `${(30 + ((W - 40) * (s.t - t0)) / (t1 - t0)).toFixed(1)},${(H - 20 - ((H - 40) * v) / max).toFixed(1)}`;
  const line = (k: 'done' | 'pending' | 'failed') => svg('polyline', { points: samples.map((s) => pt(s, s[k])).join(' '), class: `line ${k}` }, svg('title', {}, k));
  return svg(
    'svg',
    { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `progress over ${Math.round((t1 - t0) / 1000)} s` },
    svg('title', {}, 'Done, pending and failed over time'),
    line('pending'),
    line('failed'),
    line('done'),
    svg('text', { x: 30, y: H - 4, class: 'axis' }, new Date(t0).toISOString().slice(11, 19)),
    svg('text', { x: W - 10, y: H - 4, class: 'axis', 'text-anchor': 'end' }, new Date(t1).toISOString().slice(11, 19)),
  );
}

const ACTIONS: Record<string, string[]> = {
  ready: ['start', 'cancel'],
  awaiting_approval: ['start', 'cancel'],
  running: ['pause', 'rollback', 'complete'],
  paused: ['resume', 'rollback', 'cancel'],
  rolling_back: ['complete'],
};

async function detail(ctx: ViewContext, id: string): Promise<HTMLElement> {
  const wrap = h('div', { 'data-testid': 'campaign-detail' });
  const msg = h('div', { 'aria-live': 'polite' });
  let timer: number | undefined;
  let last = '';
  const refresh = async () => {
    let p: Progress;
    try {
      p = await get<Progress>(`/rotation/campaigns/${encodeURIComponent(id)}`);
    } catch (e) {
      wrap.replaceChildren(errorBox(e));
      return;
    }
    const s = samplesOf(id);
    s.push({ t: Date.now(), done: p.totals.done, pending: p.totals.pending, failed: p.totals.failed });
    saveSamples(id, s);
    const c = p.campaign;
    let approval: Approval | undefined;
    if (c.approvalId) approval = await get<Approval>(`/approvals/${encodeURIComponent(c.approvalId)}`).catch(() => undefined);
    // Only the over-time chart changes on every poll: it is redrawn in place, and the rest (with the
    // action buttons) is rebuilt only when the campaign itself changed, so a button is never
    // swapped out from under a click.
    const timeFig = h('figure', null, h('figcaption', null, 'Over time (while watched)'), timeChart(s, c.cardCount));
    const key = JSON.stringify([c.state, p.totals, approval?.state, approval?.votes.length]);
    if (key === last) {
      wrap.querySelector('[data-chart=time]')?.replaceChildren(...timeFig.childNodes);
      return;
    }
    last = key;
    timeFig.setAttribute('data-chart', 'time');
    const active = document.activeElement instanceof HTMLElement && wrap.contains(document.activeElement) ? document.activeElement.dataset.action : undefined;
    const actions = can(ctx.me, 'issuer_admin')
      ? (ACTIONS[c.state] ?? []).map((a) =>
          h(
            'button',
            {
              type: 'button',
              'data-action': a,
              class: a === 'rollback' || a === 'cancel' ? 'danger' : a === 'start' || a === 'resume' ? 'primary' : '',
              onclick: () => void act(a),
            },
            a === 'rollback' ? 'Roll back' : a[0]!.toUpperCase() + a.slice(1),
          ),
        )
      : [];
    wrap.replaceChildren(
      h('p', null, h('a', { href: '#/rotation' }, '← Campaigns')),
      h('h2', null, `Campaign ${c.id} `, h('span', { 'data-testid': 'campaign-state' }, badge(c.state))),
      h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'Key'),
        h('dd', null, `${c.tenantId} / ${c.aid} / key ${c.keyNo}: v${c.fromVersion} → v${c.toVersion}`),
        h('dt', null, 'Cards'),
        h('dd', null, `${c.cardCount} in batches of ${c.batchSize}`),
        h('dt', null, 'Created'),
        h('dd', null, `${time(c.createdAt)} by ${c.createdBy}`),
        h('dt', null, 'Approval'),
        h('dd', null, approval ? [h('a', { href: `#/approvals/${approval.id}` }, approval.id), ' ', badge(approval.state), ` ${approval.votes.filter((v) => v.decision === 'approve').length}/${approval.required} approvals`] : c.approvalId ?? 'not needed'),
      ),
      h(
        'p',
        { class: 'totals', 'data-testid': 'totals' },
        h('span', { class: 'k done' }, `done ${p.totals.done}`),
        h('span', { class: 'k pending' }, `pending ${p.totals.pending}`),
        h('span', { class: 'k failed' }, `failed ${p.totals.failed}`),
        h('span', { class: 'k reverted' }, `reverted ${p.totals.reverted}`),
        h('span', { class: 'k cancelled' }, `cancelled ${p.totals.cancelled}`),
      ),
      h('div', { class: 'actions' }, actions),
      msg,
      h('div', { class: 'charts' }, h('figure', null, h('figcaption', null, 'Per batch'), batchChart(p)), timeFig),
      table('Failed cards (with the version each was verified to hold)', ['UID', 'Card version', 'Error'], p.failures.map((f) => [h('a', { href: `#/cards/${f.uid}`, class: 'mono' }, f.uid), f.cardVersion === null ? 'never reached' : `v${f.cardVersion}`, f.error ?? '—']), 'No failed cards.'),
    );
    if (active) wrap.querySelector<HTMLElement>(`[data-action="${active}"]`)?.focus();
  };
  const act = async (a: string) => {
    if (a === 'rollback' || a === 'cancel') {
      const ok = await confirmDialog(a === 'rollback' ? 'Roll back this campaign?' : 'Cancel this campaign?', a === 'rollback' ? 'Cards already on the new version are put back on the old one; pending cards are cancelled.' : 'Pending cards are not rotated.', a === 'rollback' ? 'Roll back' : 'Cancel campaign');
      if (!ok) return;
    }
    try {
      await post(`/rotation/campaigns/${encodeURIComponent(id)}/${a}`);
      msg.replaceChildren(notice(`${a}: done`, 'ok'));
    } catch (e) {
      msg.replaceChildren(errorBox(e instanceof ApiError && e.code === 'ERR_APPROVAL_REQUIRED' ? new ApiError(e.status, e.code, `${e.message} — it needs approval by other operators first (Approvals inbox).`) : e));
    }
    last = '';
    await refresh();
  };
  await refresh();
  const tick = () => {
    timer = window.setTimeout(() => void refresh().finally(() => wrap.isConnected && tick()), POLL_MS);
  };
  tick();
  ctx.onCleanup(() => window.clearTimeout(timer));
  return wrap;
}

async function createForm(ctx: ViewContext): Promise<HTMLElement> {
  const apps = (await get<{ applications: Application[] }>('/applications')).applications;
  if (!apps.length) return notice('No applications registered yet: register a layout first.', 'info');
  const app = h('select', { id: 'c-app', name: 'app', required: true }, apps.map((a) => h('option', { value: `${a.tenantId}/${a.aid}` }, `${a.tenantId} / ${a.aid} (${a.name})`)));
  const keyNo = h('input', { id: 'c-key', type: 'number', min: 0, max: 13, value: 0, required: true });
  const from = h('input', { id: 'c-from', type: 'number', min: 0, max: 255, placeholder: 'current' });
  const batch = h('input', { id: 'c-batch', type: 'number', min: 1, value: 10 });
  const targetKind = h('select', { id: 'c-target' }, h('option', { value: 'all' }, 'all cards on that version'), h('option', { value: 'list' }, 'a list of UIDs'), h('option', { value: 'query' }, 'cards in a lifecycle state'));
  const targetArg = h('input', { id: 'c-target-arg', placeholder: 'UIDs (space separated) or a state', 'aria-label': 'Target detail' });
  const reason = h('input', { id: 'c-reason', maxlength: 200, placeholder: 'why (shown to approvers)' });
  const msg = h('div', { 'aria-live': 'polite' });
  const f = h(
    'form',
    { class: 'filters', 'aria-label': 'New rotation campaign' },
    h('div', { class: 'field' }, h('label', { for: 'c-app' }, 'Application'), app),
    h('div', { class: 'field' }, h('label', { for: 'c-key' }, 'Key number'), keyNo),
    h('div', { class: 'field' }, h('label', { for: 'c-from' }, 'From version'), from),
    h('div', { class: 'field' }, h('label', { for: 'c-target' }, 'Target'), targetKind, targetArg),
    h('div', { class: 'field' }, h('label', { for: 'c-batch' }, 'Batch size'), batch),
    h('div', { class: 'field' }, h('label', { for: 'c-reason' }, 'Reason'), reason),
    h('div', { class: 'field' }, h('button', { type: 'submit', class: 'primary' }, 'Create campaign')),
    msg,
  );
  f.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const [tenantId, aid] = app.value.split('/') as [string, string];
    const arg = targetArg.value.trim();
    const target = targetKind.value === 'list' ? { kind: 'list', uids: arg.split(/[\s,]+/).filter(Boolean).map((u) => u.toUpperCase()) } : targetKind.value === 'query' ? { kind: 'query', ...(arg ? { cardState: arg } : {}) } : { kind: 'all' };
    const body = { tenantId, aid, keyNo: Number(keyNo.value), target, ...(from.value ? { fromVersion: Number(from.value) } : {}), ...(batch.value ? { batchSize: Number(batch.value) } : {}), ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) };
    post<Campaign>('/rotation/campaigns', body)
      .then((c) => {
        msg.replaceChildren(notice(c.state === 'awaiting_approval' ? `Campaign ${c.id} created: ${c.cardCount} cards; it needs approval by other operators before it can start.` : `Campaign ${c.id} created: ${c.cardCount} cards.`, 'ok'));
        ctx.go(`#/rotation/${c.id}`);
      })
      .catch((e: unknown) => msg.replaceChildren(errorBox(e)));
  });
  return f;
}

export const rotationView: View = async (ctx) => {
  if (ctx.args[0]) return detail(ctx, ctx.args[0]);
  if (!can(ctx.me, 'issuer_admin', 'auditor')) return notice('Rotation campaigns are run by issuer admins (auditors may read them); your token has neither role.', 'info');
  const list = (await get<{ campaigns: Campaign[] }>('/rotation/campaigns')).campaigns.sort((a, b) => b.createdAt - a.createdAt);
  return h(
    'div',
    null,
    can(ctx.me, 'issuer_admin') ? h('details', { class: 'panel', open: list.length === 0 }, h('summary', null, 'New campaign'), await createForm(ctx).catch((e: unknown) => errorBox(e))) : null,
    table(
      'Campaigns',
      ['Campaign', 'Key', 'Versions', 'Cards', 'State', 'Created'],
      list.map((c) => [h('a', { href: `#/rotation/${c.id}`, class: 'mono' }, c.id), `${c.tenantId} / ${c.aid} / key ${c.keyNo}`, `v${c.fromVersion} → v${c.toVersion}`, String(c.cardCount), badge(c.state), time(c.createdAt)]),
      'No rotation campaigns yet.',
    ),
  );
};

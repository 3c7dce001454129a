// Approvals inbox: what is requested, by whom, the full request; approve or reject. The console
// does not offer a vote on one's own request (the API refuses it anyway: ERR_APPROVAL_SELF).
import { get, post, type Approval } from '../api.js';
import { badge, confirmDialog, errorBox, h, notice, safeJson, table, time } from '../dom.js';
import { actorId, can, type View, type ViewContext } from './view.js';

async function detail(ctx: ViewContext, id: string): Promise<HTMLElement> {
  const a = await get<Approval>(`/approvals/${encodeURIComponent(id)}`);
  const mine = a.requestedBy === actorId(ctx.me);
  const voted = a.votes.some((v) => v.approver === actorId(ctx.me));
  const msg = h('div', { 'aria-live': 'polite' });
  const vote = async (decision: 'approve' | 'reject') => {
    if (decision === 'reject' && !(await confirmDialog('Reject this request?', 'A rejected request cannot be approved later; the requester must ask again.', 'Reject'))) return;
    try {
      const r = await post<Approval>(`/approvals/${encodeURIComponent(id)}/${decision}`);
      msg.replaceChildren(notice(`${decision === 'approve' ? 'Approved' : 'Rejected'}: the request is now ${r.state} (${r.votes.filter((v) => v.decision === 'approve').length}/${r.required}).`, 'ok'));
      window.setTimeout(() => ctx.go(`#/approvals/${id}`), 600);
    } catch (e) {
      msg.replaceChildren(errorBox(e));
    }
  };
  const campaignId = typeof a.payload.campaignId === 'string' ? a.payload.campaignId : undefined;
  let controls: HTMLElement | null = null;
  if (a.state === 'pending') {
    if (mine) controls = notice('You requested this: another operator must approve it (no self-approval).', 'info');
    else if (voted) controls = notice('You have already voted on this request.', 'info');
    else if (!can(ctx.me, 'issuer_admin')) controls = notice(`Voting needs the ${a.role} role.`, 'info');
    else
      controls = h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'primary', 'data-testid': 'approve', onclick: () => void vote('approve') }, 'Approve'),
        h('button', { type: 'button', class: 'danger', 'data-testid': 'reject', onclick: () => void vote('reject') }, 'Reject'),
      );
  }
  return h(
    'div',
    { 'data-testid': 'approval-detail' },
    h('p', null, h('a', { href: '#/approvals' }, '← Inbox')),
    h('h2', null, `${a.kind.replace(/_/g, ' ')} `, h('span', { 'data-testid': 'approval-state' }, badge(a.state))),
    h('p', { class: 'lead' }, a.summary),
    h(
      'dl',
      { class: 'facts' },
      h('dt', null, 'Requested by'),
      h('dd', null, mine ? `${a.requestedBy} (you)` : a.requestedBy),
      h('dt', null, 'Requested'),
      h('dd', null, time(a.createdAt)),
      h('dt', null, 'Expires'),
      h('dd', null, time(a.expiresAt)),
      h('dt', null, 'Needs'),
      h('dd', null, `${a.required} approvals by ${a.role}`),
      campaignId ? [h('dt', null, 'Campaign'), h('dd', null, h('a', { href: `#/rotation/${campaignId}` }, campaignId))] : null,
    ),
    h('h3', null, 'The full request'),
    h('pre', { 'data-testid': 'approval-payload' }, safeJson(a.payload)),
    table('Votes', ['Operator', 'Decision', 'When'], a.votes.map((v) => [v.approver, badge(v.decision), time(v.at)]), 'No votes yet.'),
    controls,
    msg,
  );
}

export const approvalsView: View = async (ctx) => {
  if (ctx.args[0]) return detail(ctx, ctx.args[0]);
  if (!can(ctx.me, 'issuer_admin', 'auditor')) return notice('Approvals are voted by issuer admins (auditors may read them); your token has neither role.', 'info');
  const state = ctx.query.get('state') ?? 'pending';
  const list = (await get<{ approvals: Approval[] }>('/approvals', state === 'all' ? {} : { state })).approvals.sort((a, b) => b.createdAt - a.createdAt);
  const me = actorId(ctx.me);
  const tabs = h(
    'div',
    { class: 'tabs', role: 'group', 'aria-label': 'Which requests' },
    ['pending', 'approved', 'rejected', 'consumed', 'expired', 'all'].map((s) => h('a', { href: `#/approvals?state=${s}`, 'aria-current': s === state ? 'page' : undefined, class: 'tab' }, s)),
  );
  return h(
    'div',
    null,
    tabs,
    table(
      state === 'pending' ? 'Waiting for a decision' : `Requests: ${state}`,
      ['Request', 'What', 'Requested by', 'Votes', 'State', 'Requested'],
      list.map((a) => [
        h('a', { href: `#/approvals/${a.id}`, class: 'mono' }, a.id),
        `${a.kind.replace(/_/g, ' ')}: ${a.summary}`,
        a.requestedBy === me ? `${a.requestedBy} (you)` : a.requestedBy,
        `${a.votes.filter((v) => v.decision === 'approve').length}/${a.required}`,
        badge(a.state),
        time(a.createdAt),
      ]),
      state === 'pending' ? 'Nothing waits for approval.' : 'No requests.',
    ),
  );
};

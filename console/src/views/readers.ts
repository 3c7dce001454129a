// Readers: state, roles (tenant / AID / key / operations), last contact (the reader's latest audit
// entry), certificate expiry (the longest it can work offline with its credential), and suspend,
// resume, revoke (revoke asks for confirmation: it is final and revokes the certificate too).
import { get, post, type AuditEntry, type Reader, type ReaderRole } from '../api.js';
import { ago, badge, confirmDialog, errorBox, h, notice, table, time } from '../dom.js';
import { ENTRY_HEAD, entryRows } from './cards.js';
import { can, isGlobal, type View, type ViewContext } from './view.js';

async function lastEntries(ctx: ViewContext, readerId: string, limit: number): Promise<AuditEntry[]> {
  // The entries filter returns oldest first from `from`; the newest need the log's end, so page to it.
  const q = (tenant?: string) => get<{ entries: AuditEntry[]; next: number | null }>('/audit/entries', { readerId, limit: 1000, tenant });
  const all: AuditEntry[] = [];
  for (const t of isGlobal(ctx.me) ? [undefined] : ctx.me.tenants) {
    let r = await q(t);
    all.push(...r.entries);
    for (let i = 0; r.next !== null && i < 20; i++) {
      r = await get<{ entries: AuditEntry[]; next: number | null }>('/audit/entries', { readerId, limit: 1000, tenant: t, from: r.next });
      all.push(...r.entries);
    }
  }
  return all.sort((a, b) => b.index - a.index).slice(0, limit);
}

async function detail(ctx: ViewContext, id: string): Promise<HTMLElement> {
  const r = await get<{ reader: Reader; roles: ReaderRole[] }>(`/readers/${encodeURIComponent(id)}`);
  const msg = h('div', { 'aria-live': 'polite' });
  let entries: AuditEntry[] = [];
  let auditErr: HTMLElement | null = null;
  try {
    entries = await lastEntries(ctx, id, 50);
  } catch (e) {
    auditErr = errorBox(e);
  }
  const act = async (action: 'suspend' | 'resume' | 'revoke') => {
    if (action === 'revoke' && !(await confirmDialog(`Revoke reader ${id}?`, 'Revocation is final: its certificate is revoked, it is refused at its next contact and wipes its offline cache. A new reader must be enrolled to replace it.', 'Revoke reader'))) return;
    try {
      await post<Reader>(`/readers/${encodeURIComponent(id)}/${action}`);
      ctx.go(`#/readers/${encodeURIComponent(id)}`);
    } catch (e) {
      msg.replaceChildren(errorBox(e));
    }
  };
  const x = r.reader;
  const buttons = can(ctx.me, 'issuer_admin')
    ? [
        x.state === 'active' ? h('button', { type: 'button', onclick: () => void act('suspend') }, 'Suspend') : null,
        x.state === 'suspended' ? h('button', { type: 'button', class: 'primary', onclick: () => void act('resume') }, 'Resume') : null,
        x.state !== 'revoked' ? h('button', { type: 'button', class: 'danger', 'data-testid': 'revoke', onclick: () => void act('revoke') }, 'Revoke…') : null,
      ]
    : [];
  return h(
    'div',
    { 'data-testid': 'reader-detail' },
    h('p', null, h('a', { href: '#/readers' }, '← Readers')),
    h('h2', null, `${x.name} `, h('span', { class: 'mono' }, `(${x.id})`), ' ', h('span', { 'data-testid': 'reader-state' }, badge(x.state))),
    h(
      'dl',
      { class: 'facts' },
      h('dt', null, 'Last contact'),
      h('dd', null, entries[0] ? `${ago(entries[0].time)} (${time(entries[0].time)}, ${entries[0].operation})` : 'none recorded'),
      h('dt', null, 'Certificate'),
      h('dd', null, x.certSerial ? `serial ${x.certSerial}` : 'not enrolled'),
      h('dt', null, 'Offline until'),
      h('dd', null, x.certNotAfter ? `${time(x.certNotAfter)} (certificate expiry)` : '—'),
      h('dt', null, 'Registered'),
      h('dd', null, time(x.createdAt)),
    ),
    h('div', { class: 'actions' }, buttons),
    msg,
    table('Roles', ['Tenant', 'AID', 'Key', 'Operations'], r.roles.map((ro) => [ro.tenantId, h('span', { class: 'mono' }, ro.aid), String(ro.keyNo), ro.operations.join(', ')]), 'No roles: this reader may not use any key.'),
    h('h3', null, 'Latest audit entries'),
    auditErr ?? table(`Latest audit entries of ${x.id}`, ENTRY_HEAD, entryRows(entries), 'No audit entries for this reader.'),
  );
}

export const readersView: View = async (ctx) => {
  if (ctx.args[0]) return detail(ctx, ctx.args[0]);
  const list = (await get<{ readers: Reader[] }>('/readers')).readers;
  const counts = new Map<string, number>();
  for (const r of list) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  return h(
    'div',
    null,
    list.length ? h('p', { class: 'totals' }, [...counts].map(([s, n]) => h('span', { class: `k ${s}` }, `${s} ${n}`))) : null,
    table(
      'Readers in your scope',
      ['Reader', 'Name', 'State', 'Certificate', 'Offline until', 'Last change'],
      list.map((r) => [h('a', { href: `#/readers/${encodeURIComponent(r.id)}`, class: 'mono' }, r.id), r.name, badge(r.state), r.certSerial ?? 'not enrolled', r.certNotAfter ? time(r.certNotAfter) : '—', time(r.updatedAt)]),
      'No readers in your scope.',
    ),
    list.some((r) => r.state === 'revoked') ? null : notice('Open a reader to see its roles and last contact, or to suspend or revoke it.', 'info'),
  );
};

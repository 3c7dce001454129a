// Cards: search by UID, the list in scope, and one card: its applications with the key version of
// every key number, its lifecycle history and its audit entries.
import { ApiError, get, type AuditEntry, type Card, type CardApp } from '../api.js';
import { badge, errorBox, h, notice, safeJson, table, time } from '../dom.js';
import { isGlobal, type View, type ViewContext } from './view.js';

const UID = /^([0-9A-F]{2}){4,10}$/;
const STATES = ['blank', 'issued', 'active', 'suspended', 'revoked', 'destroyed'];

/** Audit entries about a card the caller may read (tenant-scoped tokens: per tenant). */
export async function cardEntries(ctx: ViewContext, uid: string, limit = 200): Promise<AuditEntry[]> {
  if (isGlobal(ctx.me)) return (await get<{ entries: AuditEntry[] }>('/audit/entries', { cardUid: uid, limit })).entries;
  const out: AuditEntry[] = [];
  for (const t of ctx.me.tenants) out.push(...(await get<{ entries: AuditEntry[] }>('/audit/entries', { cardUid: uid, tenant: t, limit })).entries);
  return out.sort((a, b) => a.index - b.index);
}

export function entryRows(entries: AuditEntry[], link = true) {
  return entries.map((e) => [
    link ? h('a', { href: `#/audit/${e.index}` }, String(e.index)) : String(e.index),
    time(e.time),
    e.operation,
    badge(e.result),
    e.actor ?? e.readerId ?? '—',
    [e.tenant, e.aid, e.keyNo !== null ? `key ${e.keyNo}` : null, e.keyVersion !== null ? `v${e.keyVersion}` : null].filter(Boolean).join(' · ') || '—',
  ]);
}
export const ENTRY_HEAD = ['#', 'Time', 'Operation', 'Result', 'Actor', 'Tenant · AID · key'];

function searchForm(ctx: ViewContext, value = ''): HTMLElement {
  const input = h('input', { type: 'search', id: 'uid-search', name: 'uid', value, placeholder: '04A1B2C3D4E5F6', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'uid-help' });
  const msg = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'inline', role: 'search' },
    h('label', { for: 'uid-search' }, 'Card UID'),
    input,
    h('button', { type: 'submit', class: 'primary' }, 'Find card'),
    h('span', { id: 'uid-help', class: 'hint' }, '4 to 10 bytes in hex (press / to search)'),
    msg,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const uid = input.value.replace(/[\s:]/g, '').toUpperCase();
    if (!UID.test(uid)) {
      msg.replaceChildren(notice('A UID is 4 to 10 bytes in hex, e.g. 04A1B2C3D4E5F6.', 'warn'));
      input.focus();
      return;
    }
    ctx.go(`#/cards/${uid}`);
  });
  return form;
}

async function cardDetail(ctx: ViewContext, uid: string): Promise<HTMLElement> {
  let r: { card: Card; applications: CardApp[] };
  try {
    r = await get<{ card: Card; applications: CardApp[] }>(`/cards/${encodeURIComponent(uid)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return h('div', null, searchForm(ctx, uid), notice(`No card ${uid} in your scope.`, 'warn'));
    throw e;
  }
  const { card, applications } = r;
  let entries: AuditEntry[] = [];
  let auditError: HTMLElement | null = null;
  try {
    entries = await cardEntries(ctx, card.uid);
  } catch (e) {
    auditError = errorBox(e);
  }
  const lifecycle = entries.filter((e) => /^(card\.|api\.card|lifecycle|station\.|job_|compromise\.card|rotation\.card)/.test(e.operation) || (e.details && typeof e.details === 'object' && 'state' in (e.details as object)));
  const maxKeys = Math.max(0, ...applications.map((a) => a.keys.length));
  return h(
    'div',
    { 'data-testid': 'card-detail' },
    searchForm(ctx, uid),
    h('h2', null, 'Card ', h('span', { class: 'mono', 'data-testid': 'card-uid' }, card.uid), ' ', badge(card.state)),
    h(
      'dl',
      { class: 'facts' },
      h('dt', null, 'Lifecycle state'),
      h('dd', null, card.state),
      h('dt', null, 'Random UID'),
      h('dd', null, card.randomUid ? 'yes' : 'no'),
      h('dt', null, 'PICC master key version'),
      h('dd', null, String(card.piccKeyVersion)),
      h('dt', null, 'Registered'),
      h('dd', null, time(card.createdAt)),
      h('dt', null, 'Last change'),
      h('dd', null, time(card.updatedAt)),
    ),
    table(
      'Applications and key versions (key number → version)',
      ['AID', 'Tenant', 'Installed', ...Array.from({ length: maxKeys }, (_, i) => `Key ${i}`)],
      applications.map((a) => [
        h('a', { href: `#/tenants/${a.tenantId}`, class: 'mono' }, a.aid),
        a.tenantId,
        time(a.installedAt),
        ...Array.from({ length: maxKeys }, (_, i) => {
          const k = a.keys.find((x) => x.keyNo === i);
          return k ? h('span', { class: 'mono' }, `v${k.version}`) : '—';
        }),
      ]),
      'No applications on this card in your scope.',
    ),
    h('h3', null, 'Lifecycle history'),
    auditError ?? table('Lifecycle events of this card', ENTRY_HEAD, entryRows(lifecycle), 'No lifecycle events recorded.'),
    h('h3', null, 'Audit entries'),
    auditError ?? table(`Audit entries naming card ${card.uid}`, ENTRY_HEAD, entryRows(entries), 'No audit entries for this card.'),
  );
}

export const cardsView: View = async (ctx) => {
  const uid = ctx.args[0]?.toUpperCase();
  if (uid) return cardDetail(ctx, uid);
  const state = ctx.query.get('state') ?? '';
  const after = ctx.query.get('after') ?? '';
  const r = await get<{ cards: Card[]; next: string | null }>('/cards', { limit: 50, state: state || undefined, after: after || undefined });
  const filter = h(
    'select',
    { id: 'state-filter', 'aria-label': 'Filter by lifecycle state' },
    h('option', { value: '' }, 'all states'),
    STATES.map((s) => h('option', { value: s, selected: s === state }, s)),
  );
  filter.addEventListener('change', () => ctx.go(`#/cards${filter.value ? `?state=${filter.value}` : ''}`));
  return h(
    'div',
    null,
    searchForm(ctx),
    h('div', { class: 'inline' }, h('label', { for: 'state-filter' }, 'Lifecycle state'), filter),
    table(
      'Cards in your scope',
      ['UID', 'State', 'PICC key version', 'Last change'],
      r.cards.map((c) => [h('a', { href: `#/cards/${c.uid}`, class: 'mono' }, c.uid), badge(c.state), String(c.piccKeyVersion), time(c.updatedAt)]),
      state ? `No ${state} cards in your scope.` : 'No cards in your scope yet.',
    ),
    r.next ? h('p', null, h('a', { href: `#/cards?${new URLSearchParams({ ...(state ? { state } : {}), after: r.next }).toString()}` }, 'Next page →')) : null,
    h('details', null, h('summary', null, 'Raw response'), h('pre', null, safeJson({ count: r.cards.length, next: r.next }))),
  );
};

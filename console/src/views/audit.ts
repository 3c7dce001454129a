// Audit log: filter by card, reader, AID, tenant (server side), operation and time (on the page
// fetched); one entry with its inclusion proof checked here in the browser against the latest
// signed checkpoint (see ../proof.ts).
import { get, post, type AuditEntry, type Checkpoint, type InclusionProof } from '../api.js';
import { badge, errorBox, h, notice, safeJson, table, time } from '../dom.js';
import { checkInclusion, pinKey, repin, type ProofOutcome } from '../proof.js';
import { ENTRY_HEAD, entryRows } from './cards.js';
import { can, isGlobal, type View, type ViewContext } from './view.js';

const FIELDS = ['cardUid', 'readerId', 'aid', 'tenant', 'operation', 'since', 'until'] as const;

function toMs(v: string | null): number | undefined {
  if (!v) return undefined;
  const t = Date.parse(v.length <= 16 ? `${v}:00Z` : v);
  return Number.isFinite(t) ? t : undefined;
}

async function fetchVkey(): Promise<string> {
  const r = await fetch('/console/vkey', { cache: 'no-store', credentials: 'omit' });
  if (!r.ok) throw new Error('the server publishes no audit checkpoint key');
  return r.text();
}

/** Entry `index`, its proof and the checkpoint it is proved against, as this caller may read them. */
async function proofMaterial(ctx: ViewContext, index: number): Promise<{ entry: AuditEntry; proof: InclusionProof; checkpoint: Checkpoint }> {
  if (isGlobal(ctx.me)) {
    const { entries } = await get<{ entries: AuditEntry[] }>('/audit/entries', { from: index, limit: 1 });
    const entry = entries[0];
    if (!entry || entry.index !== index) throw new Error(`no audit entry ${index}`);
    let checkpoint = await get<Checkpoint>('/audit/checkpoints/latest');
    if (checkpoint.size <= index) {
      if (!can(ctx.me, 'issuer_admin', 'auditor')) throw new Error('the latest signed checkpoint does not cover this entry yet; an issuer admin or auditor can sign one');
      checkpoint = await post<Checkpoint>('/audit/checkpoints');
    }
    const proof = await get<InclusionProof>('/audit/proofs/inclusion', { index, treeSize: checkpoint.size });
    return { entry, proof, checkpoint };
  }
  for (const tenant of ctx.me.tenants) {
    const v = await get<{ checkpoint: Checkpoint; entries: { entry: AuditEntry; proof: InclusionProof }[] }>(`/audit/tenants/${encodeURIComponent(tenant)}/view`, { from: index, limit: 1 });
    const hit = v.entries[0];
    if (hit && hit.entry.index === index) return { entry: hit.entry, proof: hit.proof, checkpoint: v.checkpoint };
  }
  throw new Error(`no audit entry ${index} in your tenants' view`);
}

function outcomeBox(o: ProofOutcome): HTMLElement {
  return h(
    'div',
    { class: `proof ${o.ok ? 'ok' : 'bad'}`, role: 'status', 'data-testid': 'proof-result' },
    h('strong', null, o.ok ? 'Verified in this browser: the entry is in the signed log.' : 'NOT verified.'),
    h('ol', null, o.steps.map((s) => h('li', { class: s.ok ? 'ok' : 'bad' }, `${s.ok ? '✓' : '✗'} ${s.text}`))),
  );
}

async function entryDetail(ctx: ViewContext, index: number): Promise<HTMLElement> {
  const result = h('div', { 'aria-live': 'polite' });
  const { entry, checkpoint } = await proofMaterial(ctx, index);
  const verify = async () => {
    result.replaceChildren(h('p', { class: 'hint' }, 'Checking…'));
    try {
      const pin = pinKey(await fetchVkey());
      if (!pin.ok) {
        const repinBtn = pin.served ? h('button', { type: 'button', class: 'danger', onclick: () => (repin(pin.served!), void verify()) }, 'Trust the new key') : null;
        result.replaceChildren(h('div', { class: 'proof bad', role: 'alert' }, h('strong', null, 'Checkpoint key: '), pin.reason, pin.pinned ? h('pre', null, `pinned: ${pin.pinned}\nserved: ${pin.served ?? ''}`) : null, repinBtn));
        return;
      }
      const fresh = await proofMaterial(ctx, index);
      result.replaceChildren(outcomeBox(checkInclusion(pin.key, fresh.checkpoint, fresh.entry, fresh.proof)), ...(pin.pinnedNow ? [notice(`Pinned checkpoint key ${pin.vkey.split('+')[0]} in this browser (first use).`, 'info')] : []));
    } catch (e) {
      result.replaceChildren(errorBox(e));
    }
  };
  return h(
    'div',
    { 'data-testid': 'entry-detail' },
    h('p', null, h('a', { href: '#/audit' }, '← Audit log')),
    h('h2', null, `Entry ${entry.index} `, badge(entry.result)),
    h(
      'dl',
      { class: 'facts' },
      ...(
        [
          ['Time', time(entry.time)],
          ['Operation', entry.operation],
          ['Actor', entry.actor ?? '—'],
          ['Reader', entry.readerId ?? '—'],
          ['Card', entry.cardUid ? h('a', { href: `#/cards/${entry.cardUid}`, class: 'mono' }, entry.cardUid) : '—'],
          ['Tenant / AID', [entry.tenant, entry.aid].filter(Boolean).join(' / ') || '—'],
          ['Key / version', entry.keyNo !== null ? `key ${entry.keyNo}${entry.keyVersion !== null ? ` v${entry.keyVersion}` : ''}` : '—'],
          ['Correlation', entry.correlationId ?? '—'],
          ['Signed checkpoint', `tree of ${checkpoint.size} entries, ${time(checkpoint.createdAt)}`],
        ] as [string, string | HTMLElement][]
      ).flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]),
    ),
    h('h3', null, 'Details'),
    h('pre', null, safeJson(entry.details)),
    h('button', { type: 'button', class: 'primary', 'data-testid': 'verify', onclick: () => void verify() }, 'Verify inclusion in this browser'),
    result,
  );
}

export const auditView: View = async (ctx) => {
  const idx = ctx.args[0];
  if (idx !== undefined && /^\d+$/.test(idx)) return entryDetail(ctx, Number(idx));
  const q = ctx.query;
  const global = isGlobal(ctx.me);
  const tenant = q.get('tenant') || (global ? '' : ctx.me.tenants[0]!);
  const from = q.get('from');
  const inputs = Object.fromEntries(
    FIELDS.map((f) => [
      f,
      f === 'tenant' && !global
        ? h('select', { id: `f-${f}`, name: f }, ctx.me.tenants.map((t) => h('option', { value: t, selected: t === tenant }, t)))
        : h('input', { id: `f-${f}`, name: f, value: (f === 'tenant' ? tenant : q.get(f)) ?? '', type: f === 'since' || f === 'until' ? 'datetime-local' : 'text', autocomplete: 'off', spellcheck: 'false' }),
    ]),
  ) as Record<(typeof FIELDS)[number], HTMLInputElement | HTMLSelectElement>;
  const labels: Record<(typeof FIELDS)[number], string> = { cardUid: 'Card UID', readerId: 'Reader', aid: 'AID', tenant: 'Tenant', operation: 'Operation contains', since: 'From (UTC)', until: 'To (UTC)' };
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Audit filters' },
    FIELDS.map((f) => h('div', { class: 'field' }, h('label', { for: `f-${f}` }, labels[f]), inputs[f])),
    h('div', { class: 'field' }, h('button', { type: 'submit', class: 'primary' }, 'Apply filters')),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const f of FIELDS) {
      const v = inputs[f].value.trim();
      if (v) p.set(f, f === 'cardUid' || f === 'aid' ? v.toUpperCase() : v);
    }
    ctx.go(`#/audit?${p.toString()}`);
  });
  let content: HTMLElement;
  try {
    const r = await get<{ entries: AuditEntry[]; next: number | null }>('/audit/entries', {
      limit: 200,
      from: from ?? undefined,
      tenant: tenant || undefined,
      aid: q.get('aid') || undefined,
      cardUid: q.get('cardUid') || undefined,
      readerId: q.get('readerId') || undefined,
    });
    const op = (q.get('operation') ?? '').toLowerCase();
    const since = toMs(q.get('since'));
    const until = toMs(q.get('until'));
    const shown = r.entries.filter((e) => (!op || e.operation.toLowerCase().includes(op)) && (since === undefined || e.time >= since) && (until === undefined || e.time <= until));
    const next = new URLSearchParams(q);
    if (r.next !== null) next.set('from', String(r.next));
    content = h(
      'div',
      null,
      h('p', { class: 'hint' }, `${shown.length} of ${r.entries.length} entries on this page match. Open an entry to check its inclusion proof in this browser.`),
      table('Audit entries', ENTRY_HEAD, entryRows(shown), 'No entries match these filters.'),
      r.next !== null ? h('p', null, h('a', { href: `#/audit?${next.toString()}` }, 'Next page →')) : null,
    );
  } catch (e) {
    content = errorBox(e);
  }
  return h('div', null, form, content);
};

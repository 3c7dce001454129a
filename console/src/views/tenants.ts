// Tenants and applications: each tenant's AIDs with their layout (keys, files, access rights as the
// layout declares them: never key values), the versions of each key (managed versions and the ones
// readers accept), and a layout check: a layout sent to the API is linted, and one that breaks an
// isolation rule is refused with the linter's findings, shown here rule by rule.
import { ApiError, call, get, type Application, type Tenant } from '../api.js';
import { errorBox, h, notice, safeJson, table, time } from '../dom.js';
import { can, type View, type ViewContext } from './view.js';

interface KeyVersions {
  versions: { version: number; state?: string; createdAt?: number; [k: string]: unknown }[];
  accepted: number[];
}

async function keyVersionsTable(a: Application): Promise<HTMLElement> {
  const rows: (string | HTMLElement)[][] = [];
  for (let k = 0; k < a.keyCount; k++) {
    try {
      const v = await get<KeyVersions>(`/key-versions/${encodeURIComponent(a.tenantId)}/${a.aid}/${k}`);
      rows.push([`key ${k}`, v.versions.map((x) => `v${x.version}${x.state ? ` (${x.state})` : ''}`).join(', ') || '—', v.accepted.map((x) => `v${x}`).join(', ') || '—']);
    } catch (e) {
      if (e instanceof ApiError && e.status === 403) return notice('Key versions are visible to issuer admins and auditors.', 'info');
      rows.push([`key ${k}`, e instanceof Error ? e.message : String(e), '']);
    }
  }
  return table(`Key versions of ${a.aid}`, ['Key', 'Managed versions', 'Accepted by readers'], rows, 'No keys.');
}

function layoutCheck(): HTMLElement {
  const text = h('textarea', { id: 'layout-text', rows: 10, spellcheck: 'false', placeholder: 'layout in YAML or JSON' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'panel-form' },
    h('label', { for: 'layout-text' }, 'Layout (YAML or JSON)'),
    text,
    h('p', { class: 'hint' }, 'The CMS lints the layout; a clean layout is registered (its tenants and applications are created), one that breaks isolation is refused with the findings below.'),
    h('button', { type: 'submit', class: 'primary' }, 'Lint and register'),
    out,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const body = text.value;
    const isJson = body.trim().startsWith('{');
    call<{ tenants: string[]; applications: string[] }>('POST', '/layouts', { raw: body, contentType: isJson ? 'application/json' : 'application/yaml' })
      .then((r) => out.replaceChildren(notice(`Registered: tenants ${r.tenants.join(', ') || '—'}; applications ${r.applications.join(', ') || '—'}.`, 'ok')))
      .catch((e: unknown) => {
        out.replaceChildren(errorBox(e));
        out.append(findingsOf(e));
      });
  });
  return form;
}

function findingsOf(e: unknown): HTMLElement | string {
  const details = (e as { details?: unknown }).details;
  if (!details) return '';
  return h('pre', null, safeJson(details));
}

async function tenantDetail(ctx: ViewContext, id: string): Promise<HTMLElement> {
  const t = await get<Tenant>(`/tenants/${encodeURIComponent(id)}`);
  const apps = (await get<{ applications: Application[] }>('/applications', { tenant: id })).applications;
  const sections: HTMLElement[] = [];
  for (const a of apps) {
    sections.push(
      h(
        'section',
        { class: 'app', 'aria-labelledby': `app-${a.aid}` },
        h('h3', { id: `app-${a.aid}` }, h('span', { class: 'mono' }, a.aid), ` ${a.name}`),
        h('p', { class: 'hint' }, `${a.keyType.toUpperCase()} · ${a.keyCount} keys · layout ${a.layoutName} · registered ${time(a.createdAt)}`),
        await keyVersionsTable(a),
        h('details', null, h('summary', null, 'Layout definition (as registered; passed the isolation linter)'), h('pre', null, safeJson(a.definition))),
      ),
    );
  }
  return h(
    'div',
    null,
    h('p', null, h('a', { href: '#/tenants' }, '← Tenants')),
    h('h2', null, `${t.name} `, h('span', { class: 'mono' }, `(${t.id})`)),
    sections.length ? sections : notice('This tenant has no applications yet.', 'info'),
    h('p', null, h('a', { href: `#/audit?tenant=${encodeURIComponent(t.id)}` }, `Audit entries of ${t.id} →`)),
  );
}

export const tenantsView: View = async (ctx) => {
  if (ctx.args[0]) return tenantDetail(ctx, ctx.args[0]);
  const tenants = (await get<{ tenants: Tenant[] }>('/tenants')).tenants;
  const apps = (await get<{ applications: Application[] }>('/applications')).applications;
  return h(
    'div',
    null,
    table(
      'Tenants in your scope',
      ['Tenant', 'Name', 'Applications', 'Created'],
      tenants.map((t) => [
        h('a', { href: `#/tenants/${encodeURIComponent(t.id)}`, class: 'mono' }, t.id),
        t.name,
        apps
          .filter((a) => a.tenantId === t.id)
          .map((a) => `${a.aid} ${a.name}`)
          .join(', ') || '—',
        time(t.createdAt),
      ]),
      'No tenants in your scope.',
    ),
    can(ctx.me, 'issuer_admin', 'tenant_admin') ? h('details', { class: 'panel' }, h('summary', null, 'Check and register a layout'), layoutCheck()) : null,
  );
};

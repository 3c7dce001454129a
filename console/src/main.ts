// The console shell: sign-in by API token, navigation, hash routes (#/cards/04A1…) so that every view
// has a link, and focus moved to the view's heading after navigation (keyboard and screen readers).
import { ApiError, call, session, setUnauthorisedHandler, type Me } from './api.js';
import { errorBox, h } from './dom.js';
import { alertsView } from './views/alerts.js';
import { approvalsView } from './views/approvals.js';
import { auditView } from './views/audit.js';
import { cardsView } from './views/cards.js';
import { consentView } from './views/consent.js';
import { overviewView } from './views/overview.js';
import { readersView } from './views/readers.js';
import { rotationView } from './views/rotation.js';
import { tenantsView } from './views/tenants.js';
import type { View, ViewContext } from './views/view.js';

const VIEWS: { path: string; label: string; key: string; view: View }[] = [
  { path: 'overview', label: 'Overview', key: 'o', view: overviewView },
  { path: 'cards', label: 'Cards', key: 'c', view: cardsView },
  { path: 'tenants', label: 'Tenants & applications', key: 't', view: tenantsView },
  { path: 'readers', label: 'Readers', key: 'r', view: readersView },
  { path: 'rotation', label: 'Rotation campaigns', key: 'k', view: rotationView },
  { path: 'approvals', label: 'Approvals', key: 'p', view: approvalsView },
  { path: 'consent', label: 'Consent', key: 'n', view: consentView },
  { path: 'audit', label: 'Audit log', key: 'a', view: auditView },
  { path: 'alerts', label: 'Alerts', key: 'l', view: alertsView },
];

const root = document.getElementById('app')!;
let me: Me | undefined;
let cleanup: (() => void) | undefined;

function route(): { path: string; args: string[]; query: URLSearchParams } {
  const raw = location.hash.replace(/^#\/?/, '');
  const [p, q] = raw.split('?');
  const parts = (p ?? '').split('/').filter(Boolean).map(decodeURIComponent);
  return { path: parts[0] ?? 'overview', args: parts.slice(1), query: new URLSearchParams(q ?? '') };
}

export function go(hash: string): void {
  if (location.hash === hash) void render();
  else location.hash = hash;
}

function signIn(message?: HTMLElement): void {
  cleanup?.();
  me = undefined;
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'dcms_…', 'aria-describedby': 'token-help' });
  const status = h('div', { 'aria-live': 'polite' }, message ?? null);
  const form = h(
    'form',
    { class: 'signin card-box', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'desfire-cms console'),
    h('label', { for: 'token' }, 'Operator API token'),
    input,
    h('p', { id: 'token-help', class: 'hint' }, 'Kept in this tab only (sessionStorage); it is sent to this CMS as a bearer token and never shown.'),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    status,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    status.replaceChildren(h('span', { class: 'hint' }, 'Checking…'));
    call<Me>('GET', '/tokens/self', { token })
      .then((m) => {
        session.set(token);
        me = m;
        input.value = '';
        if (!location.hash || location.hash === '#/' || location.hash === '#/signin') location.hash = '#/overview';
        shell();
        void render();
      })
      .catch((e: unknown) => status.replaceChildren(errorBox(e instanceof ApiError && e.status === 401 ? new ApiError(401, e.code, 'That token is unknown, expired or revoked.') : e)));
  });
  root.replaceChildren(h('main', { id: 'main', class: 'signin-page' }, form));
  input.focus();
}

function signOut(): void {
  session.clear();
  signIn(h('div', { class: 'notice info', role: 'status' }, 'Signed out.'));
}

let mainEl: HTMLElement;
let navEl: HTMLElement;

function shell(): void {
  if (!me) return;
  const m = me;
  navEl = h(
    'nav',
    { 'aria-label': 'Views' },
    h(
      'ul',
      null,
      VIEWS.map((v) => h('li', null, h('a', { href: `#/${v.path}`, 'data-view': v.path, title: `${v.label} (g then ${v.key})` }, v.label))),
    ),
  );
  mainEl = h('main', { id: 'main', tabindex: '-1' });
  const scope = m.tenants.includes('*') ? 'all tenants' : `tenant ${m.tenants.join(', ')}`;
  root.replaceChildren(
    h(
      'header',
      { class: 'top' },
      h('span', { class: 'brand' }, 'desfire-cms'),
      h('span', { class: 'who', 'data-testid': 'who' }, `${m.label} · ${m.roles.join(', ')} · ${scope}`),
      h('button', { type: 'button', onclick: signOut }, 'Sign out'),
    ),
    h('div', { class: 'layout' }, navEl, mainEl),
  );
}

async function render(): Promise<void> {
  if (!session.token) return signIn();
  if (!me) {
    try {
      me = await call<Me>('GET', '/tokens/self');
    } catch (e) {
      session.clear();
      return signIn(errorBox(e));
    }
    shell();
  }
  cleanup?.();
  cleanup = undefined;
  const r = route();
  const v = VIEWS.find((x) => x.path === r.path);
  for (const a of navEl.querySelectorAll('a')) {
    if (a.dataset.view === r.path) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!v) {
    mainEl.replaceChildren(h('h1', { tabindex: '-1' }, 'Not found'), h('p', null, 'No such view. ', h('a', { href: '#/overview' }, 'Go to the overview')));
    return;
  }
  document.title = `${v.label} · desfire-cms`;
  const heading = h('h1', { tabindex: '-1' }, v.label);
  const body = h('div', { class: 'view', 'aria-busy': 'true' }, h('p', { class: 'hint' }, 'Loading…'));
  mainEl.replaceChildren(heading, body);
  heading.focus({ preventScroll: true });
  const ctx: ViewContext = { me: me!, args: r.args, query: r.query, go, onCleanup: (fn) => (cleanup = fn) };
  try {
    const content = await v.view(ctx);
    if (body.isConnected) body.replaceChildren(content);
  } catch (e) {
    if (body.isConnected) body.replaceChildren(errorBox(e));
  } finally {
    body.removeAttribute('aria-busy');
  }
}

// Keyboard: "g" then a letter jumps to a view (shown in each link's title); "/" focuses search.
let pendingG = false;
document.addEventListener('keydown', (ev) => {
  const t = ev.target as HTMLElement | null;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
  if (ev.ctrlKey || ev.metaKey || ev.altKey || !me) return;
  if (pendingG) {
    pendingG = false;
    const v = VIEWS.find((x) => x.key === ev.key);
    if (v) {
      ev.preventDefault();
      go(`#/${v.path}`);
    }
    return;
  }
  if (ev.key === 'g') pendingG = true;
  else if (ev.key === '/') {
    const s = document.querySelector<HTMLInputElement>('input[type=search]');
    if (s) {
      ev.preventDefault();
      s.focus();
    }
  }
});

setUnauthorisedHandler(() => {
  session.clear();
  signIn(errorBox(new ApiError(401, 'ERR_BAD_TOKEN', 'Your token is no longer accepted; sign in again.')));
});
window.addEventListener('hashchange', () => void render());
void render();

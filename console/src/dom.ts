// A tiny DOM builder: text always goes in as text nodes (never innerHTML), so nothing the API
// returns can inject markup.
import { ApiError } from './api.js';

export type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | undefined | null | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function svg(tag: string, attrs: Record<string, string | number>, ...children: (SVGElement | string)[]): SVGElement {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  return el;
}

export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function ago(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return 'never';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function badge(text: string, kind?: string): HTMLElement {
  return h('span', { class: `badge ${kind ?? text.toLowerCase().replace(/[^a-z0-9]+/g, '-')}` }, text);
}

/** A table with a caption; `empty` is shown as one row when there are no rows. */
export function table(caption: string, head: string[], rows: Child[][], empty: string): HTMLElement {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      null,
      h('caption', null, caption),
      h('thead', null, h('tr', null, head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, rows.length ? rows.map((r) => h('tr', null, r.map((c) => h('td', null, c)))) : h('tr', null, h('td', { colspan: head.length, class: 'empty' }, empty))),
    ),
  );
}

export function errorBox(e: unknown): HTMLElement {
  const code = e instanceof ApiError ? e.code : 'ERR_CONSOLE';
  const msg = e instanceof Error ? e.message : String(e);
  const hint =
    e instanceof ApiError && e.status === 403
      ? 'Your token does not have the role or tenant for this.'
      : e instanceof ApiError && e.status === 0
        ? 'Check that the CMS is running and reachable.'
        : '';
  return h('div', { class: 'error', role: 'alert' }, h('strong', null, code), ' ', msg, hint ? h('div', { class: 'hint' }, hint) : null);
}

export function notice(text: string, kind: 'ok' | 'info' | 'warn' = 'info'): HTMLElement {
  return h('div', { class: `notice ${kind}`, role: 'status' }, text);
}

/** A modal confirmation (native <dialog>: focus is trapped, Esc cancels). */
export function confirmDialog(title: string, body: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const ok = h('button', { class: 'danger', value: 'ok', type: 'submit' }, confirmLabel);
    const cancel = h('button', { value: 'cancel', type: 'submit', autofocus: true }, 'Cancel');
    const d = h('dialog', { 'aria-labelledby': 'dlg-title' }, h('form', { method: 'dialog' }, h('h2', { id: 'dlg-title' }, title), h('p', null, body), h('div', { class: 'actions' }, cancel, ok)));
    document.body.appendChild(d);
    d.addEventListener('close', () => {
      resolve(d.returnValue === 'ok');
      d.remove();
    });
    d.showModal();
  });
}

/**
 * JSON for display with anything that could be key material withheld: fields named like secrets,
 * and long hex strings in fields named like keys. (The API never sends key bytes to operators; this
 * is a second line.)
 */
export function safeJson(v: unknown): string {
  const SECRET = /secret|passphrase|plaintext|password|wrapped|^key$|keybytes|keyhex|^token$|^kek$|sessionkey|cmac/i;
  const HEXKEY = /^[0-9a-fA-F]{32,}$/;
  return JSON.stringify(
    v,
    (k, val: unknown) => {
      if (k && SECRET.test(k) && typeof val === 'string') return '[withheld]';
      if (k && /key/i.test(k) && typeof val === 'string' && HEXKEY.test(val)) return '[withheld]';
      return val;
    },
    2,
  );
}

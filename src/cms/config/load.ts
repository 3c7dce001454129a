// Load the server configuration from (optionally) a YAML/JSON file, then DESFIRE_CMS_* environment
// variables, then command-line overrides (non-secret only), validate it against the TypeBox schema
// and return it with defaults filled and paths resolved. Every problem is collected and thrown at
// once as a ConfigError (path + reason for each).
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type TSchema, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { LineCounter, parseDocument } from 'yaml';
import { ENV_BINDINGS, SECRET_ENV, parseEnvValue } from './env.js';
import { type ConfigIssue, ConfigError } from './errors.js';
import { DEFAULT_KINDS, ServerConfig, VARIANTS } from './schema.js';
import { resolveSecrets, wipeSecrets } from './secrets.js';

export interface LoadOptions {
  /** Config file (YAML or JSON). Optional: without one, defaults + environment. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Non-secret overrides from the command line, e.g. { dataDir } from --data-dir. */
  overrides?: { dataDir?: string; host?: string; port?: number };
}

export interface LoadedConfig {
  config: ServerConfig;
  /** The file it came from, if any. */
  source?: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keys that would hold a secret inline; the config may only name a file or an env variable. */
const INLINE_SECRET_KEYS = new Set(['passphrase', 'pin', 'token', 'password', 'secretid', 'secret', 'privatekey', 'key']);

function findInlineSecrets(v: unknown, path: string, issues: ConfigIssue[]): void {
  if (Array.isArray(v)) {
    v.forEach((x, i) => findInlineSecrets(x, `${path}/${i}`, issues));
    return;
  }
  if (!isObj(v)) return;
  for (const [k, x] of Object.entries(v)) {
    const p = `${path}/${k}`;
    if (INLINE_SECRET_KEYS.has(k.toLowerCase())) {
      issues.push({ path: p, message: `secrets may not be written in the config; use ${k}File (a file) or ${k}Env (an environment variable)` });
      continue;
    }
    if (k === 'url' && typeof x === 'string' && urlHasPassword(x)) {
      issues.push({ path: p, message: 'the URL contains a password; use passwordFile or passwordEnv instead' });
      continue;
    }
    findInlineSecrets(x, p, issues);
  }
}

export function urlHasPassword(url: string): boolean {
  try {
    return new URL(url).password.length > 0;
  } catch {
    return false;
  }
}

function setPath(root: Obj, path: readonly string[], value: unknown): void {
  let o = root;
  for (const seg of path.slice(0, -1)) {
    if (!isObj(o[seg])) o[seg] = {};
    o = o[seg] as Obj;
  }
  o[path[path.length - 1]!] = value;
}

function readFileConfig(file: string, issues: ConfigIssue[]): Obj {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    issues.push({ path: file, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
    return {};
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      const pos = lc.linePos(err.pos[0]);
      issues.push({ path: `${file}:${pos.line}:${pos.col}`, message: err.message.split('\n')[0]! });
    }
    return {};
  }
  const v: unknown = doc.toJS();
  if (v === null || v === undefined) return {};
  if (!isObj(v)) {
    issues.push({ path: file, message: 'the config must be a mapping (an object)' });
    return {};
  }
  return v;
}

function typeboxIssues(schema: TSchema, value: unknown, prefix: string, issues: ConfigIssue[]): void {
  const seen = new Set<string>();
  for (const e of Value.Errors(schema, value)) {
    const path = `${prefix}${e.path}` || '/';
    const key = `${path}|${e.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    // additionalProperties errors point at the object; name the offending key instead.
    if (e.schema && (e.schema as { additionalProperties?: boolean }).additionalProperties === false && isObj(e.value)) {
      const props = Object.keys((e.schema as { properties?: Obj }).properties ?? {});
      const extra = Object.keys(e.value).filter((k) => !props.includes(k));
      if (extra.length > 0) {
        for (const k of extra) issues.push({ path: `${path === '/' ? '' : path}/${k}`, message: `unknown setting (allowed: ${props.join(', ')})` });
        continue;
      }
    }
    issues.push({ path, message: e.message });
  }
}

/** The non-discriminated part of the schema. */
const Common = Type.Omit(ServerConfig, ['storage', 'sessions', 'custody']);

/** Apply defaults and validate; collect issues. Exported for tests. */
export function validateConfig(raw: Obj, issues: ConfigIssue[]): ServerConfig {
  const out: Obj = {};
  const common: Obj = {};
  for (const [k, v] of Object.entries(raw)) if (!(k in VARIANTS)) common[k] = v;
  const withDefaults = Value.Default(Common, structuredClone(common)) as Obj;
  typeboxIssues(Common, withDefaults, '', issues);
  Object.assign(out, withDefaults);

  for (const section of Object.keys(VARIANTS) as (keyof typeof VARIANTS)[]) {
    const variants = VARIANTS[section] as Record<string, TSchema>;
    let v = raw[section];
    if (v === undefined) v = {};
    if (!isObj(v)) {
      issues.push({ path: `/${section}`, message: 'expected an object' });
      continue;
    }
    const s: Obj = structuredClone(v);
    if (s.kind === undefined) {
      // A URL alone selects the networked backend; otherwise the embedded default.
      s.kind = section === 'storage' && s.url !== undefined ? 'postgres' : section === 'sessions' && s.url !== undefined ? 'redis' : section === 'custody' && s.addr !== undefined ? 'vault-transit' : section === 'custody' && s.module !== undefined ? 'pkcs11' : DEFAULT_KINDS[section];
    }
    const schema = typeof s.kind === 'string' ? variants[s.kind] : undefined;
    if (!schema) {
      issues.push({ path: `/${section}/kind`, message: `must be one of ${Object.keys(variants).join(', ')}` });
      continue;
    }
    const filled = Value.Default(schema, s) as Obj;
    typeboxIssues(schema, filled, `/${section}`, issues);
    out[section] = filled;
  }
  // Schema order, so printed configurations read top-down like the documentation.
  const ordered: Obj = {};
  for (const k of Object.keys(ServerConfig.properties)) if (k in out) ordered[k] = out[k];
  return ordered as unknown as ServerConfig;
}

/** Rules that span fields. */
function crossChecks(c: ServerConfig, issues: ConfigIssue[]): void {
  const tls = c.http?.tls;
  if (tls?.mode === 'files') {
    if (!tls.certFile) issues.push({ path: '/http/tls/certFile', message: 'required when tls.mode is files' });
    if (!tls.keyFile) issues.push({ path: '/http/tls/keyFile', message: 'required when tls.mode is files' });
  }
  const cu = c.custody;
  if (cu?.kind === 'pkcs11' && cu.tokenLabel === undefined) {
    issues.push({ path: '/custody/tokenLabel', message: 'pkcs11 needs the token label (tokens are selected by label)' });
  }
  if (cu?.kind === 'embedded' && cu.shares && Array.isArray(cu.shares.files) && cu.shares.threshold > cu.shares.files.length) {
    issues.push({ path: '/custody/shares/threshold', message: `threshold ${cu.shares.threshold} exceeds the ${cu.shares.files.length} share files` });
  }
}

function resolvePaths(c: ServerConfig, base: string): void {
  const r = (p: string | undefined) => (p === undefined ? undefined : isAbsolute(p) ? p : resolve(base, p));
  c.dataDir = r(c.dataDir)!;
  const s = c.storage;
  if (s.kind === 'sqlite') s.file = isAbsolute(s.file) ? s.file : resolve(c.dataDir, s.file);
  else if (s.passwordFile) s.passwordFile = r(s.passwordFile);
  if (c.sessions.kind === 'redis' && c.sessions.passwordFile) c.sessions.passwordFile = r(c.sessions.passwordFile);
  const cu = c.custody;
  if (cu.kind === 'embedded') {
    cu.file = isAbsolute(cu.file) ? cu.file : resolve(c.dataDir, cu.file);
    cu.passphraseFile = r(cu.passphraseFile);
    if (cu.shares) cu.shares.files = cu.shares.files.map((f) => r(f)!);
  } else if (cu.kind === 'pkcs11') {
    cu.module = r(cu.module)!;
    cu.pinFile = r(cu.pinFile);
  } else {
    cu.tokenFile = r(cu.tokenFile);
    cu.caFile = r(cu.caFile);
    if (cu.appRole) cu.appRole.secretIdFile = r(cu.appRole.secretIdFile);
  }
  const t = c.http.tls;
  t.certFile = r(t.certFile);
  t.keyFile = r(t.keyFile);
  t.caFile = r(t.caFile);
  // Drop undefined keys so printed configs stay clean.
  const strip = (o: unknown): void => {
    if (!isObj(o)) return;
    for (const [k, v] of Object.entries(o)) {
      if (v === undefined) delete o[k];
      else strip(v);
    }
  };
  strip(c);
}

/** Load and validate; throws ConfigError naming every problem. */
export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const r = collect(opts);
  if (r.issues.length > 0) throw new ConfigError(r.issues);
  return r.source ? { config: r.config, source: r.source } : { config: r.config };
}

/**
 * Everything `config check` reports: config problems and, where the sections they depend on are
 * valid, missing or unreadable secrets — all at once. Secrets read are wiped immediately.
 */
export function checkConfig(opts: LoadOptions = {}): { issues: ConfigIssue[]; loaded?: LoadedConfig } {
  const r = collect(opts);
  const sectionsOk = !r.issues.some((i) => /^\/(custody|storage|sessions)(\/|$)/.test(i.path) || /^env DESFIRE_CMS_(VAULT|PKCS11|POSTGRES|REDIS|CUSTODY|STORAGE|SESSIONS)/.test(i.path));
  if (sectionsOk) {
    try {
      wipeSecrets(resolveSecrets(r.config, opts.env ?? process.env));
    } catch (e) {
      if (e instanceof ConfigError) r.issues.push(...e.issues);
      else throw e;
    }
  }
  if (r.issues.length > 0) return { issues: r.issues };
  return { issues: [], loaded: r.source ? { config: r.config, source: r.source } : { config: r.config } };
}

function collect(opts: LoadOptions): { config: ServerConfig; issues: ConfigIssue[]; source?: string } {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const issues: ConfigIssue[] = [];
  const file = opts.file ? resolve(cwd, opts.file) : undefined;
  const raw: Obj = file ? readFileConfig(file, issues) : {};
  findInlineSecrets(raw, '', issues);

  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('DESFIRE_CMS_') || value === undefined) continue;
    if (name === 'DESFIRE_CMS_CONFIG') continue;
    const b = ENV_BINDINGS[name];
    if (!b) {
      if (name in SECRET_ENV || isNamedSecretEnv(raw, name)) continue;
      issues.push({ path: `env ${name}`, message: 'unknown variable (see docs/configuration.md)' });
      continue;
    }
    const parsed = parseEnvValue(b.kind, value);
    if ('error' in parsed) issues.push({ path: `env ${name}`, message: parsed.error });
    else setPath(raw, b.path, parsed.value);
  }
  if (opts.overrides?.dataDir !== undefined) raw.dataDir = opts.overrides.dataDir;
  if (opts.overrides?.host !== undefined) setPath(raw, ['http', 'host'], opts.overrides.host);
  if (opts.overrides?.port !== undefined) setPath(raw, ['http', 'port'], opts.overrides.port);

  const config = validateConfig(raw, issues);
  crossChecks(config, issues);
  try {
    resolvePaths(config, file ? dirname(file) : cwd);
  } catch {
    // an invalid structure: already reported above
  }
  return file ? { config, issues, source: file } : { config, issues };
}

/** An env variable the config itself names as a secret source (e.g. custody.pinEnv). */
function isNamedSecretEnv(raw: Obj, name: string): boolean {
  let found = false;
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (isObj(v)) for (const [k, x] of Object.entries(v)) {
      if (k.endsWith('Env') && x === name) found = true;
      else walk(x);
    }
  };
  walk(raw);
  return found;
}

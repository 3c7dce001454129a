// `desfire-cms server [--config FILE] [--data-dir DIR] [--host H] [--port N]`: run the CMS with
// embedded defaults (SQLite and the embedded vault in the data dir, memory sessions, HTTPS with a
// server certificate from the CMS CA). SIGTERM/SIGINT: stop accepting, drain, close storage, exit 0.
//
// `desfire-cms server token --role R [--tenant T]... [--label L] [--ttl SECONDS] [--config FILE] [--data-dir DIR]`:
// create an operator API token directly in the database (bootstrap / recovery); printed once.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CmsApp, buildCmsApp } from '../../cms/app.js';
import { buildApi } from '../../cms/api/build.js';
import { startServer } from '../../cms/api/server.js';
import { ROLES, type Role } from '../../cms/api/tokens/service.js';
import { OperatorTokens } from '../../cms/api/tokens/service.js';
import { ConfigError, type LoadOptions, loadConfig, postgresUrl, resolveSecrets, resolveStoragePassword, wipeSecrets } from '../../cms/config/index.js';
import { openDatabase } from '../../cms/storage/index.js';
import { waitForUnseal } from '../../cms/approvals/sealed-start.js';
import { type CliIO, type Command, UsageError } from '../io.js';
import { parseFlags } from './config.js';

const USAGE = [
  'usage: desfire-cms server [--config FILE] [--data-dir DIR] [--host HOST] [--port N]',
  '       desfire-cms server openapi [--out FILE]   (write the OpenAPI document of the API)',
  '       desfire-cms server token --role issuer_admin|tenant_admin|auditor [--tenant ID]... [--label TEXT] [--ttl SECONDS] [--config FILE] [--data-dir DIR]',
  'Secrets (vault passphrase, PINs, tokens) come from files or the environment, never from arguments;',
  'see docs/configuration.md.',
];

function loadOptions(values: Record<string, string>, io: CliIO): LoadOptions {
  const file = values.config ?? io.env.DESFIRE_CMS_CONFIG;
  const overrides: NonNullable<LoadOptions['overrides']> = {};
  if (values['data-dir'] !== undefined) overrides.dataDir = values['data-dir'];
  if (values.host !== undefined) overrides.host = values.host;
  if (values.port !== undefined) {
    if (!/^\d{1,5}$/.test(values.port) || Number(values.port) > 65535) throw new UsageError('--port must be 0..65535');
    overrides.port = Number(values.port);
  }
  return { ...(file ? { file } : {}), env: io.env, cwd: io.cwd, overrides };
}

function printConfigError(io: CliIO, e: ConfigError): number {
  io.err(`desfire-cms server: ${e.issues.length} configuration problem${e.issues.length === 1 ? '' : 's'}`);
  for (const i of e.issues) io.err(`  ${i.path}: ${i.message}`);
  return 1;
}

/** Run until `stop` aborts (the CLI wires SIGTERM/SIGINT to it). Exported for in-process tests. */
export async function runServer(args: string[], io: CliIO, stop: AbortSignal, onListening?: (url: string, app: CmsApp) => void): Promise<number> {
  const f = parseFlags(args, ['config', 'data-dir', 'host', 'port']);
  if (f.positional.length > 0) throw new UsageError(`unexpected argument '${f.positional[0]}'`);
  let cms: CmsApp;
  try {
    const { config } = loadConfig(loadOptions(f.values, io));
    const secrets = resolveSecrets(config, io.env);
    try {
      // custody.unseal 'api': serve approvals and the unseal route until the vault is opened
      const sealedStart = config.custody.kind === 'embedded' && config.custody.unseal === 'api';
      const unsealedVault = sealedStart ? await waitForUnseal(config, secrets, { log: io.out, signal: stop }) : undefined;
      if (sealedStart && !unsealedVault) return 0; // stopped while sealed
      cms = await buildCmsApp(config, secrets, unsealedVault ? { unsealedVault } : {});
    } finally {
      wipeSecrets(secrets);
    }
  } catch (e) {
    if (e instanceof ConfigError) return printConfigError(io, e);
    throw e;
  }
  const cfg = cms.config;
  let running;
  try {
    running = await startServer(cms.deps, { host: cfg.http.host, port: cfg.http.port, ...(cms.tls ? { tls: cms.tls } : {}), shutdownGraceMs: cfg.limits.shutdownGraceMs });
  } catch (e) {
    await cms.close();
    throw e;
  }
  if (cms.ca) {
    const caPath = join(cfg.dataDir, 'pki', 'ca.pem');
    mkdirSync(join(cfg.dataDir, 'pki'), { recursive: true, mode: 0o700 });
    writeFileSync(caPath, cms.ca.certificatePem, { mode: 0o644 });
    io.out(`CMS CA certificate: ${caPath}`);
  }
  io.out(`desfire-cms server listening on ${running.url} (data: ${cfg.dataDir}, storage: ${cfg.storage.kind}, sessions: ${cfg.sessions.kind}, custody: ${cfg.custody.kind})`);
  if (cms.bootstrapToken) {
    io.out('No issuer_admin token existed; created one. It is shown ONCE — store it now:');
    io.out(`  bootstrap issuer_admin token: ${cms.bootstrapToken}`);
    delete cms.bootstrapToken;
  }
  // Operations (src/cms/ops): the 127.0.0.1 metrics listener, and work parked by the last stop.
  const { startMetricsListener } = await import('../../cms/ops/metrics-server.js');
  const { resumeParkedWork } = await import('../../cms/ops/resume.js');
  const { gracefulStop } = await import('../../cms/ops/shutdown.js');
  let metricsListener;
  try {
    if (cfg.metrics.enabled) {
      metricsListener = await startMetricsListener(cms.metrics, cfg.metrics.host, cfg.metrics.port);
      io.out(`metrics: ${metricsListener.url}`);
    }
    const resumed = await resumeParkedWork({ db: cms.db.db, custody: cms.custody!, audit: cms.deps.audit!, work: cms.work, ...(cms.db.sqlite ? { sqlite: cms.db.sqlite } : {}) });
    io.out(`resumed ${resumed.length} parked background job${resumed.length === 1 ? '' : 's'}${resumed.map((j) => ` ${j.id}`).join('')}`);
  } catch (e) {
    await running.close();
    await metricsListener?.close();
    await cms.close();
    throw e;
  }
  onListening?.(running.url, cms);
  await new Promise<void>((resolve) => {
    if (stop.aborted) resolve();
    else stop.addEventListener('abort', () => resolve(), { once: true });
  });
  io.out('desfire-cms server: stopping (no new work; draining in-flight requests, parking background jobs)');
  await gracefulStop({ server: running, work: cms.work, ...(metricsListener ? { metricsListener } : {}), ...(cms.deps.audit ? { audit: cms.deps.audit } : {}), services: cms, graceMs: cfg.limits.shutdownGraceMs, report: (l) => io.out(`desfire-cms server: ${l}`) });
  io.out('desfire-cms server: stopped');
  return 0;
}

async function tokenCommand(args: string[], io: CliIO): Promise<number> {
  const f = parseFlags(args, ['config', 'data-dir', 'role', 'tenant', 'label', 'ttl']);
  // --tenant may repeat
  const tenants: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--tenant') tenants.push(args[i + 1] ?? '');
    else if (a.startsWith('--tenant=')) tenants.push(a.slice(9));
  }
  const role = f.values.role;
  if (!role) throw new UsageError('--role is required');
  if (!(ROLES as readonly string[]).includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
  if (role === 'issuer_admin' && tenants.length === 0) tenants.push('*');
  if (tenants.length === 0) throw new UsageError('--tenant is required for this role (or --tenant "*")');
  for (const t of tenants) if (!/^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$/.test(t)) throw new UsageError(`--tenant '${t.slice(0, 40)}' is not a tenant id`);
  let ttlSeconds: number | undefined;
  if (f.values.ttl !== undefined) {
    if (!/^\d+$/.test(f.values.ttl)) throw new UsageError('--ttl must be a number of seconds');
    ttlSeconds = Number(f.values.ttl);
  }
  let config;
  try {
    config = loadConfig(loadOptions(f.values, io)).config;
  } catch (e) {
    if (e instanceof ConfigError) return printConfigError(io, e);
    throw e;
  }
  const s = config.storage;
  let url: string | undefined;
  if (s.kind === 'postgres') {
    let pw: Buffer | undefined;
    try {
      pw = resolveStoragePassword(config, io.env);
    } catch (e) {
      if (e instanceof ConfigError) return printConfigError(io, e);
      throw e;
    }
    url = postgresUrl(s.url, pw);
    pw?.fill(0);
  }
  const db = await openDatabase(s.kind === 'sqlite' ? { kind: 'sqlite', file: s.file } : { kind: 'postgres', url: url!, poolSize: 2, ...(s.schema ? { schema: s.schema } : {}) });
  try {
    const { token, record } = await new OperatorTokens(db.db).create({
      label: f.values.label ?? `cli ${role}`,
      roles: [role as Role],
      tenants,
      createdBy: 'cli',
      ...(ttlSeconds ? { ttlSeconds } : {}),
    });
    io.out(`token id: ${record.id} (roles: ${record.roles.join(',')}; tenants: ${record.tenants.join(',')})`);
    io.out(`token (shown once): ${token}`);
    return 0;
  } finally {
    await db.close();
  }
}

/**
 * `server openapi [--out FILE]`: build the whole API (throwaway SQLite + vault in a temp dir, no
 * listening) and write the OpenAPI document it serves at /docs/openapi.json.
 */
async function openapiCommand(args: string[], io: CliIO): Promise<number> {
  const f = parseFlags(args, ['out']);
  if (f.positional.length > 0) throw new UsageError(`unexpected argument '${f.positional[0]}'`);
  const dir = mkdtempSync(join(tmpdir(), 'desfire-cms-openapi-'));
  try {
    const env = { DESFIRE_VAULT_PASSPHRASE: randomBytes(24).toString('base64url'), DESFIRE_CMS_LOG_LEVEL: 'silent', DESFIRE_CMS_TLS_MODE: 'off' };
    const { config } = loadConfig({ env, overrides: { dataDir: dir } });
    const secrets = resolveSecrets(config, env);
    const cms = await buildCmsApp(config, secrets);
    wipeSecrets(secrets);
    try {
      const app = await buildApi(cms.deps);
      const text = JSON.stringify(app.swagger(), null, 2) + '\n';
      await app.close();
      if (f.values.out) {
        writeFileSync(f.values.out, text);
        io.out(`wrote ${f.values.out}`);
      } else io.out(text.trimEnd());
    } finally {
      await cms.close();
    }
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const command: Command = {
  async run(args: string[], io: CliIO): Promise<number> {
    if (args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
      for (const l of USAGE) io.out(l);
      return 0;
    }
    if (args[0] === 'token') return tokenCommand(args.slice(1), io);
    if (args[0] === 'openapi') return openapiCommand(args.slice(1), io);
    const ac = new AbortController();
    const onSignal = () => ac.abort();
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    try {
      return await runServer(args, io, ac.signal);
    } finally {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
  },
};

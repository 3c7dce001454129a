// The composition root: builds every service of the CMS from one validated configuration and its
// secrets, and hands the HTTP API its dependencies. Nothing else in the CMS reads configuration.
//
//   storage   openDatabase (SQLite file in the data dir | PostgreSQL), migrated
//   sessions  the session store (memory | Redis): rate limits shared by every process on it
//   audit     the audit log (group commit, signed checkpoints, alerts); custody audits into it
//   custody   embedded vault (SQLite file in the data dir, passphrase or shares) — first start
//             initialises it with the configured passphrase; later starts unseal it
//   pki       the CMS CA (private key wrapped under a key derived inside custody), which issues the
//             server certificate in tls.mode=auto
//   api       operator tokens; a bootstrap issuer_admin token when none exists
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type Kysely, sql } from 'kysely';
import { prepare } from './delivery/prepared.js';
import { hkdfSha256 } from '../core/crypto/hkdf.js';
import { wipe } from '../core/crypto/bytes.js';
import type { AuditSink } from '../custody/audit.js';
import type { CallerContext, KeyCustody } from '../custody/types.js';
import { createLogger } from './api/logging.js';
import { openAudit } from './audit/index.js';
import { batonModule } from './api/routes/baton.js';
import { alertsModule } from './api/routes/alerts.js';
import { rotationModule } from './api/routes/rotation.js';
import { criticalModule } from './api/routes/critical.js';
import { type VaultControl, vaultGate } from './approvals/unseal.js';
import type { UnsealedVault } from './approvals/sealed-start.js';
import { consentModule } from './api/routes/consent.js';
import { ConsentService } from './consent/index.js';
import type { ApiDeps, HealthCheck, RateLimiter, RequestActivity } from './api/ports.js';
import type { DeferringReaderAuthenticator } from './api/auth.js';
import { issueServerCertificate, serverNames, type TlsMaterial } from './api/tls.js';
import { OperatorTokens } from './api/tokens/service.js';
import type { ServerConfig } from './config/schema.js';
import { type ServerSecrets, postgresUrl } from './config/secrets.js';
import { CertificateAuthority } from './pki/ca.js';
import { aesGcmProtector } from './pki/keystore.js';
import { type VerifiedReader, verifyReaderCertificate } from './pki/verify.js';
import { CardRepository, ReaderRepository, SqlCaKeyStore, SqlEnrolmentCodeStore, SqlRevocationList, TenantRepository } from './domain/index.js';
import { openSessionStore } from './session/index.js';
import { attachStation } from './jobs/module.js';
import { type Database, type DatabaseHandle, openDatabase, withTransaction } from './storage/index.js';
import { timedCustody } from './ops/custody-metrics.js';
import { PromMetrics } from './ops/prometheus.js';
import { attachMetrics, auditObserver } from './ops/wire.js';
import { BackgroundWork } from './ops/shutdown.js';

export class StartupError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'StartupError';
  }
}

export interface CmsApp {
  config: ServerConfig;
  logger: Logger;
  deps: ApiDeps;
  db: DatabaseHandle;
  custody?: KeyCustody;
  /** Prometheus metrics (src/cms/ops): served at GET /v1/metrics and by the metrics listener. */
  metrics: PromMetrics;
  /** Background jobs (KEK rewrap runs): parked on SIGTERM, resumed at start (src/cms/ops). */
  work: BackgroundWork;
  ca?: CertificateAuthority;
  tls?: TlsMaterial;
  /** Set when this start created the first issuer_admin token: print it once. */
  bootstrapToken?: string;
  close(): Promise<void>;
}

export interface BuildAppOptions {
  /** Log destination (default stdout). */
  logDestination?: NodeJS.WritableStream;
  /**
   * Tenant consent (src/cms/consent) is always enforced: station install/delete jobs and rotation
   * campaigns run only under a tenant's authorisation, named in the job, the receipt and the audit
   * entries. This switch turns that off — it exists for one test that proves enforcement matters
   * (test/cms/consent-jobs.test.ts); nothing else may set it.
   */
  unsafeSkipConsent?: boolean;
  /** An embedded vault already unsealed (a sealed start, src/cms/approvals/sealed-start.ts): used instead of opening one. */
  unsealedVault?: UnsealedVault;
}

const SYSTEM_CTX = (purpose: string): CallerContext => ({ actor: 'system:cms-server', purpose, correlationId: `startup-${process.pid}` });

async function openCustody(config: ServerConfig, secrets: ServerSecrets, audit: AuditSink, unsealed?: UnsealedVault): Promise<{ custody: KeyCustody; vault?: VaultControl; sealed: () => boolean; close: () => Promise<void> }> {
  const cu = config.custody;
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  if (cu.kind === 'pkcs11') {
    if (!cu.tokenLabel) throw new StartupError('ERR_STARTUP_CUSTODY', 'pkcs11: set custody.tokenLabel (tokens are selected by label)');
    const { Pkcs11Engine } = await import('../custody/pkcs11.js');
    const engine = await Pkcs11Engine.open({ library: cu.module, tokenLabel: cu.tokenLabel, pin: secrets.pkcs11Pin!.toString('utf8') });
    const custody = engine.custody(audit);
    return { custody, sealed: () => false, close: () => custody.close() };
  }
  if (cu.kind === 'vault-transit') {
    const { SqliteVaultStore } = await import('../custody/store-sqlite.js');
    const { VaultTransitEngine } = await import('../custody/vault-transit.js');
    // Master-key metadata and Transit ciphertexts (no plaintext) live in the data directory.
    const masterStore = await SqliteVaultStore.open(join(config.dataDir, 'vault-transit.sqlite'));
    const auth = cu.appRole
      ? { roleId: cu.appRole.roleId, secretId: secrets.vaultSecretId!.toString('utf8'), path: cu.appRole.mount }
      : { token: secrets.vaultToken!.toString('utf8') };
    const engine = await VaultTransitEngine.open({ addr: cu.addr, auth, mount: cu.mount, ...(cu.namespace ? { namespace: cu.namespace } : {}), masterStore });
    const custody = engine.custody(audit);
    return { custody, sealed: () => false, close: () => custody.close() };
  }
  if (unsealed) {
    unsealed.setAudit(audit);
    const custody = unsealed.vault.custody(audit);
    return { custody, vault: unsealed.vault, sealed: () => unsealed.vault.status().sealed, close: async () => (await custody.close(), await unsealed.close()) };
  }
  const { SqliteVaultStore } = await import('../custody/store-sqlite.js');
  const { EmbeddedVault } = await import('../custody/embedded.js');
  const store = await SqliteVaultStore.open(cu.file);
  const vault = await EmbeddedVault.open(store, { audit });
  const ctx = SYSTEM_CTX('vault unseal at start-up');
  if (!vault.status().initialized) {
    if (!secrets.vaultPassphrase) throw new StartupError('ERR_STARTUP_CUSTODY', 'first start: initialise the vault with `desfire-cms vault init` (shares) or give a passphrase');
    await vault.init({ passphrase: secrets.vaultPassphrase }, ctx);
  } else if (vault.status().sealed) {
    if (secrets.vaultPassphrase) await vault.unsealWithPassphrase(secrets.vaultPassphrase, ctx);
    else for (const s of secrets.vaultShares ?? []) await vault.submitShare(s.toString('utf8'), ctx);
  }
  const custody = vault.custody(audit);
  return {
    custody,
    vault,
    sealed: () => vault.status().sealed,
    close: async () => {
      await custody.close();
      await (store as unknown as { close?: () => Promise<void> | void }).close?.();
    },
  };
}

/**
 * mTLS reader authentication. The full check (chain to the CMS CA, validity, reader EKU and SAN,
 * revocation, reader state) runs the first time a certificate is seen; afterwards the parsed and
 * signature-checked result is cached by the certificate's SHA-256, and each request re-checks
 * only what can change: expiry, and — in ONE precompiled query, never cached, so a revocation or
 * suspension made by any CMS process refuses the reader's next request — revocation of the
 * certificate's serial and the reader's state.
 */
function readerAuthenticator(ca: CertificateAuthority, revocations: SqlRevocationList, readers: ReaderRepository, db: Kysely<Database>, sqlite?: DatabaseHandle['sqlite']): DeferringReaderAuthenticator {
  const cache = new Map<string, VerifiedReader & { normSerial: string }>();
  // The cache key (SHA-256 of the DER) per DER object: the API reads a TLS 1.3 connection's peer
  // certificate once and hands the same bytes for every request on it (api/auth.ts), so a
  // keep-alive reader's key is hashed once per connection, not once per request. Only the lookup
  // key is remembered; every check below still runs on every request.
  const keys = new WeakMap<Uint8Array, string>();
  const keyOf = (der: Uint8Array): string => {
    let k = keys.get(der);
    if (k === undefined) keys.set(der, (k = createHash('sha256').update(der).digest('hex')));
    return k;
  };
  const current = prepare<Database, [string, string], { state: string; revoked: string | null }>(db, 2, (readerId, serial) =>
    db
      .selectFrom('readers as r')
      .leftJoin('revoked_certificates as rc', (j) => j.on('rc.serial', '=', serial!))
      .select(['r.state', 'rc.serial as revoked'])
      .where('r.id', '=', readerId!),
    sqlite,
  );
  return {
    /**
     * For routes whose own lookup re-checks the reader (the key delivery): a cached, unexpired
     * certificate is identified without a query and its serial handed to that lookup (one
     * round trip per request instead of two); a first-seen one is fully verified by authenticate.
     */
    async authenticateDeferred(der) {
      const hit = cache.get(keyOf(der));
      if (!hit || Date.now() > hit.notAfter.getTime()) return this.authenticate(der);
      return { readerId: hit.readerId, recheckSerial: hit.normSerial };
    },
    async authenticate(der) {
      const key = keyOf(der);
      try {
        const hit = cache.get(key);
        if (!hit) {
          const v = await verifyReaderCertificate(ca, der, { revocations, readerState: (id) => readers.state(id) });
          if (cache.size >= 10_000) cache.delete(cache.keys().next().value!);
          cache.set(key, { ...v, normSerial: v.serial.toLowerCase().replace(/^0+(?=.)/, '') }); // the revocation list's normal form
          return { readerId: v.readerId };
        }
        if (Date.now() > hit.notAfter.getTime()) {
          cache.delete(key);
          return undefined;
        }
        const now = await current.first(hit.readerId, hit.normSerial);
        if (!now || now.revoked !== null || now.state !== 'active') return undefined;
        return { readerId: hit.readerId };
      } catch {
        return undefined;
      }
    },
  };
}

const PKI_MASTER = 'cms-pki-protector';

/**
 * The key that wraps the CMS's own private keys (CA), derived inside custody: an AN10922
 * derivation from a dedicated master (version 1, pinned) — so the CA key is only usable while the
 * vault is unsealed, and never stored in the clear.
 */
async function pkiProtectorKey(custody: KeyCustody): Promise<Uint8Array> {
  const ctx = SYSTEM_CTX('CMS CA key protector');
  try {
    await custody.getKey(ctx, PKI_MASTER);
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_CUSTODY_UNKNOWN_KEY') throw e;
    try {
      await custody.createKey(ctx, PKI_MASTER, { purpose: 'diversify', alg: 'aes128' });
    } catch (e2) {
      if ((e2 as { code?: string }).code !== 'ERR_CUSTODY_KEY_EXISTS') throw e2;
    }
  }
  const k = await custody.exportForCard(ctx, {
    kind: 'diversified',
    master: PKI_MASTER,
    masterVersion: 1,
    input: new TextEncoder().encode('desfire-cms/pki/ca'),
    binding: { tenant: 'cms-internal', aid: '000000', uid: '00000000', keyNo: 0, version: 0 },
  });
  try {
    return hkdfSha256(k, new TextEncoder().encode('desfire-cms'), new TextEncoder().encode('pki-protector-v1'), 32);
  } finally {
    wipe(k);
  }
}

async function tlsMaterial(config: ServerConfig, ca: CertificateAuthority | undefined): Promise<TlsMaterial | undefined> {
  const t = config.http.tls;
  if (t.mode === 'off') return undefined;
  if (t.mode === 'files') {
    try {
      const m: TlsMaterial = { cert: readFileSync(t.certFile!, 'utf8'), key: readFileSync(t.keyFile!, 'utf8') };
      if (t.caFile) m.ca = readFileSync(t.caFile, 'utf8');
      else if (ca) m.ca = ca.certificatePem;
      return m;
    } catch (e) {
      throw new StartupError('ERR_STARTUP_TLS', `cannot read TLS files: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  if (!ca) throw new StartupError('ERR_STARTUP_TLS', 'tls.mode auto needs the CMS CA');
  return issueServerCertificate(ca, serverNames(config.http.host, t.altNames));
}

export async function buildCmsApp(config: ServerConfig, secrets: ServerSecrets, opts: BuildAppOptions = {}): Promise<CmsApp> {
  const logger = createLogger({ level: config.logging.level, ...(opts.logDestination ? { destination: opts.logDestination } : {}) });
  const cleanups: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (e) {
        logger.warn({ err: e }, 'error while closing');
      }
    }
  };
  try {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const s = config.storage;
    const url = s.kind === 'postgres' ? postgresUrl(s.url, secrets.postgresPassword) : undefined;
    const db = await openDatabase(s.kind === 'sqlite' ? { kind: 'sqlite', file: s.file } : { kind: 'postgres', url: url!, poolSize: s.poolSize, ...(s.schema ? { schema: s.schema } : {}) });
    cleanups.push(() => db.close());

    const ss = config.sessions;
    let sessionUrl: string | undefined;
    if (ss.kind === 'redis') {
      const u = new URL(ss.url);
      if (secrets.redisPassword) u.password = encodeURIComponent(secrets.redisPassword.toString('utf8'));
      sessionUrl = u.toString();
    }
    const sessions = await openSessionStore(ss.kind === 'redis' ? { kind: 'redis', url: sessionUrl!, prefix: ss.keyPrefix } : { kind: 'memory' });
    cleanups.push(() => sessions.close());
    const rateLimiter: RateLimiter = sessions;

    const work = new BackgroundWork(logger);
    const metrics = new PromMetrics({ onlineWindowMs: config.metrics.onlineWindowSeconds * 1000 });
    // HTTP request activity (kept by the API, src/cms/api/build.ts): the audit entry of one client's
    // lone delivery may sync inline — not while other requests are in flight, nor within 20 ms of a
    // request on another connection (several clients at once: their requests wait unseen in the
    // sockets while the loop is blocked)
    const requests: RequestActivity = { inFlight: 0, otherConnectionAt: -Infinity };
    const othersActive = () => requests.inFlight > 1 || performance.now() - requests.otherConnectionAt < 20;
    const audit = await openAudit({ handle: db, keyDir: join(config.dataDir, 'audit'), checkpointIntervalMs: config.audit.checkpointIntervalSeconds * 1000, observe: auditObserver(metrics), othersActive });
    cleanups.push(() => audit.close());
    const cus = await openCustody(config, secrets, audit.log, opts.unsealedVault);
    cleanups.push(cus.close);
    cus.custody = timedCustody(vaultGate(cus.custody), config.custody.kind, metrics); // custody latency by backend; sealed vault → 503 ERR_VAULT_SEALED

    const protector = aesGcmProtector(await pkiProtectorKey(cus.custody));
    // The CA lives in the database (shared by every CMS process on it), its key wrapped under custody.
    const ca = await CertificateAuthority.openOrCreate(new SqlCaKeyStore(db.db), protector);
    const revocations = new SqlRevocationList(db.db);
    const codes = new SqlEnrolmentCodeStore(db.db);
    const domain = {
      db: db.db,
      tenants: new TenantRepository(db.db),
      readers: new ReaderRepository(db.db),
      cards: new CardRepository(db.db),
      atomic: <T>(fn: (s: { readers: ReaderRepository; codes: SqlEnrolmentCodeStore; revocations: SqlRevocationList }) => Promise<T>): Promise<T> =>
        withTransaction(db.db, (tx) => fn({ readers: new ReaderRepository(tx), codes: new SqlEnrolmentCodeStore(tx), revocations: new SqlRevocationList(tx) })),
    };
    const tls = await tlsMaterial(config, ca);

    const tokens = new OperatorTokens(db.db);
    let bootstrapToken: string | undefined;
    if (!(await tokens.hasActiveIssuerAdmin())) {
      bootstrapToken = (await tokens.create({ label: 'bootstrap', roles: ['issuer_admin'], tenants: ['*'], createdBy: 'system' })).token;
    }

    const health: HealthCheck[] = [
      {
        name: 'database',
        check: async () => {
          await sql`select 1`.execute(db.db);
          return { ok: true };
        },
      },
      {
        name: 'sessions',
        check: async () => {
          await sessions.getValue('health:probe');
          return { ok: true };
        },
      },
      { name: 'custody', check: async () => (cus.sealed() ? { ok: false, reason: 'sealed' } : { ok: true }) },
      {
        name: 'audit',
        check: async () => {
          const hl = audit.log.health();
          return hl.status === 'ok' ? { ok: true } : { ok: false, reason: hl.reason ?? 'degraded' };
        },
      },
    ];

    const deps: ApiDeps = {
      logger,
      tokens,
      rateLimiter,
      limits: config.limits,
      health,
      bodyLimitBytes: config.http.bodyLimitBytes,
      trustProxy: config.http.trustProxy,
      custody: cus.custody,
      audit: audit.log,
      requests,
      domain,
      pki: { ca, codes, revocations },
      readers: readerAuthenticator(ca, revocations, domain.readers, db.db, db.sqlite),
      modules: [alertsModule({ db: db.db, audit: audit.log }), batonModule({ db: db.db, readers: domain.readers, audit: audit.log, ...(db.sqlite ? { sqlite: db.sqlite } : {}) }), consentModule({ consent: new ConsentService({ db: db.db, audit: audit.log }), readers: domain.readers, audit: audit.log }), rotationModule({ db: db.db, custody: cus.custody, audit: audit.log, work, ...(db.sqlite ? { sqlite: db.sqlite } : {}), ...(!opts.unsafeSkipConsent ? { authorise: (q, w) => new ConsentService({ db: db.db, audit: audit.log }).requireAuthorisationForCards(q, w) } : {}) }), criticalModule({ db: db.db, custody: cus.custody, audit: audit.log, tenants: domain.tenants, ...(cus.vault ? { vault: cus.vault } : {}) })],
    };
    attachMetrics(deps, metrics, { db: db.db, audit: audit.log, sealed: cus.sealed });
    await attachStation({ deps, logger, db }, !opts.unsafeSkipConsent ? { authorise: (q, w) => new ConsentService({ db: db.db, audit: audit.log }).requireAuthorisation(q, w), authoriseCard: (q, w) => new ConsentService({ db: db.db, audit: audit.log }).requireAuthorisationForCard(q, w) } : {}); // station jobs, key delivery, remote mode (src/cms/jobs)
    const app: CmsApp = { config, logger, deps, db, custody: cus.custody, metrics, work, ca, close: closeAll };
    if (tls) app.tls = tls;
    if (bootstrapToken) app.bootstrapToken = bootstrapToken;
    return app;
  } catch (e) {
    await closeAll();
    throw e;
  }
}

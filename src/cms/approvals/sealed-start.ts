// A server that starts with the embedded vault sealed (config custody.unseal: 'api'; no passphrase
// or share files in its environment). The CMS CA key, the station token key and the automatic TLS
// certificate are all derived through custody, so the full CMS cannot be built before the vault
// opens. Until then the process serves a reduced API on the configured address (TLS from files,
// or none): operator tokens, approvals, GET /v1/custody/status, POST /v1/custody/unseal — every
// key operation answers 503 ERR_VAULT_SEALED. Once the vault is unsealed (passphrase + consumed
// vault_unseal approval, or one share per operator) that listener closes and the caller builds the
// full CMS over the same, unsealed vault (BuildAppOptions.unsealedVault).
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { AuditEvent, AuditSink } from '../../custody/audit.js';
import type { EmbeddedVault } from '../../custody/embedded.js';
import { createLogger } from '../api/logging.js';
import { LocalRateLimiter } from '../api/ratelimit.js';
import { criticalModule } from '../api/routes/critical.js';
import { rotationModule } from '../api/routes/rotation.js';
import { startServer } from '../api/server.js';
import { OperatorTokens } from '../api/tokens/service.js';
import { openAudit } from '../audit/index.js';
import type { ServerConfig } from '../config/schema.js';
import { type ServerSecrets, postgresUrl } from '../config/secrets.js';
import { TenantRepository } from '../domain/tenants.js';
import { openDatabase } from '../storage/index.js';
import { vaultGate } from './unseal.js';

/** An unsealed vault handed to buildCmsApp; its ceremony events go to whatever `setAudit` names. */
export interface UnsealedVault {
  vault: EmbeddedVault;
  setAudit(sink: AuditSink): void;
  close(): Promise<void>;
}

export class SealedStartError extends Error {
  constructor(
    readonly code: 'ERR_STARTUP_SEALED_TLS' | 'ERR_STARTUP_SEALED_UNINITIALISED',
    message: string,
  ) {
    super(message);
    this.name = 'SealedStartError';
  }
}

/**
 * Serve the reduced API until the vault is unsealed; resolves with the unsealed vault, or undefined
 * when `signal` aborts first.
 */
export async function waitForUnseal(config: ServerConfig, secrets: ServerSecrets, o: { log: (line: string) => void; signal: AbortSignal; logDestination?: NodeJS.WritableStream }): Promise<UnsealedVault | undefined> {
  const cu = config.custody;
  if (cu.kind !== 'embedded') throw new SealedStartError('ERR_STARTUP_SEALED_TLS', 'custody.unseal api applies to the embedded vault only');
  const t = config.http.tls;
  if (t.mode === 'auto') throw new SealedStartError('ERR_STARTUP_SEALED_TLS', "custody.unseal 'api' needs http.tls.mode 'files' (or 'off'): the automatic certificate is issued by the CMS CA, whose key is in the vault");
  const { SqliteVaultStore } = await import('../../custody/store-sqlite.js');
  const { EmbeddedVault } = await import('../../custody/embedded.js');
  const s = config.storage;
  const db = await openDatabase(s.kind === 'sqlite' ? { kind: 'sqlite', file: s.file } : { kind: 'postgres', url: postgresUrl(s.url, secrets.postgresPassword), poolSize: 2, ...(s.schema ? { schema: s.schema } : {}) });
  const audit = await openAudit({ handle: db, keyDir: join(config.dataDir, 'audit') });
  let sink: AuditSink = audit.log;
  // appendAll only when the current sink has it (custody falls back to one append per event otherwise)
  const forward: AuditSink = {
    append: (e: AuditEvent) => sink.append(e),
    get appendAll() {
      return sink.appendAll ? (es: AuditEvent[]) => sink.appendAll!(es) : undefined;
    },
  };
  const store = await SqliteVaultStore.open(cu.file);
  const vault = await EmbeddedVault.open(store, { audit: forward });
  const closeStore = async () => void (await (store as unknown as { close?: () => Promise<void> | void }).close?.());
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    if (!vault.status().initialized) throw new SealedStartError('ERR_STARTUP_SEALED_UNINITIALISED', 'the vault is not initialised: `desfire-cms vault init` first');
    if (vault.status().sealed) {
      const custody = vaultGate(vault.custody(forward));
      const tokens = new OperatorTokens(db.db);
      server = await startServer(
        {
          logger: createLogger({ level: config.logging.level, ...(o.logDestination ? { destination: o.logDestination } : {}) }),
          tokens,
          rateLimiter: new LocalRateLimiter(),
          limits: config.limits,
          health: [{ name: 'custody', check: async () => (vault.status().sealed ? { ok: false, reason: 'sealed' } : { ok: true }) }],
          bodyLimitBytes: config.http.bodyLimitBytes,
          trustProxy: config.http.trustProxy,
          audit: audit.log,
          custody,
          modules: [rotationModule({ db: db.db, custody, audit: audit.log }), criticalModule({ db: db.db, custody, audit: audit.log, tenants: new TenantRepository(db.db), vault })],
        },
        { host: config.http.host, port: config.http.port, ...(t.mode === 'files' ? { tls: { cert: readFileSync(t.certFile!, 'utf8'), key: readFileSync(t.keyFile!, 'utf8') } } : {}) },
      );
      o.log(`desfire-cms server: the vault is SEALED; serving approvals and POST /v1/custody/unseal on ${server.url} until it is unsealed`);
      await new Promise<void>((resolve) => {
        const tick = setInterval(() => {
          if (!vault.status().sealed || o.signal.aborted) {
            clearInterval(tick);
            resolve();
          }
        }, 100);
      });
    }
  } catch (e) {
    await server?.close();
    await audit.close();
    await db.close();
    await closeStore();
    throw e;
  }
  await server?.close();
  await audit.close();
  await db.close();
  if (vault.status().sealed) {
    await closeStore();
    return undefined;
  }
  o.log('desfire-cms server: the vault is unsealed; starting the CMS');
  return { vault, setAudit: (a) => void (sink = a), close: closeStore };
}

// Wiring of station jobs, key delivery (and remote mode) into a built CMS: one call from the
// composition root (or a test) before the API is started:
//
//   const cms = await buildCmsApp(config, secrets);
//   await attachStation(cms);          // adds the route module; services on cms.station
//
// The operation-token signing key lives in the database (shared by every CMS process), wrapped
// under a key derived inside custody, like the CA key (src/cms/app.ts).
import type BetterSqlite3 from 'better-sqlite3';
import type { Logger } from 'pino';
import { hkdfSha256 } from '../../core/crypto/hkdf.js';
import { wipe } from '../../core/crypto/bytes.js';
import type { CallerContext, KeyCustody } from '../../custody/types.js';
import type { ApiDeps } from '../api/ports.js';
import { stationRoutes } from '../api/routes/station.js';
import { remoteRoutes } from '../api/routes/remote.js';
import { reconcileRoutes } from '../api/routes/reconcile.js';
import { MemoryRequestStore, type RequestStore } from './reconcile.js';
import { KeyDelivery } from '../delivery/service.js';
import { MasterDelivery } from '../delivery/masters.js';
import { masterRoutes } from '../api/routes/masters.js';
import { SqlCaKeyStore } from '../domain/index.js';
import { aesGcmProtector, type CaKeyStore, MemoryNonceStore, type NonceStore, OperationTokens } from '../pki/index.js';
import { RemoteSessions } from '../remote/service.js';
import { AuditLogStationSink, type AuditRecorder, LogStationAudit, type StationAuditSink, TeeStationAudit } from './audit.js';
import { CardKeys } from './keys.js';
import { RecipientCache } from './recipient.js';
import { StationJobs, type StationJobsOptions } from './service.js';
import { ServerTimings } from './timings.js';

export interface StationServices {
  jobs: StationJobs;
  delivery: KeyDelivery;
  /** Offline diversification masters (role flag 'offline-master'). */
  masters: MasterDelivery;
  remote: RemoteSessions;
  /** Every sink station events go to (the CMS audit log, or log lines without one); add more with add(). */
  audit: TeeStationAudit;
  tokens: OperationTokens;
  /** Server-side time per station/delivery route. */
  timings: ServerTimings;
}

const PROTECTOR_MASTER = 'cms-pki-protector';
const CTX: CallerContext = { actor: 'system:cms-server', purpose: 'station token signing key protector', correlationId: `startup-${process.pid}` };

async function protectorKey(custody: KeyCustody): Promise<Uint8Array> {
  try {
    await custody.getKey(CTX, PROTECTOR_MASTER);
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_CUSTODY_UNKNOWN_KEY') throw e;
    try {
      await custody.createKey(CTX, PROTECTOR_MASTER, { purpose: 'diversify', alg: 'aes128' });
    } catch (e2) {
      if ((e2 as { code?: string }).code !== 'ERR_CUSTODY_KEY_EXISTS') throw e2;
    }
  }
  const k = await custody.exportForCard(CTX, {
    kind: 'diversified',
    master: PROTECTOR_MASTER,
    masterVersion: 1,
    input: new TextEncoder().encode('desfire-cms/station/op'),
    binding: { tenant: 'cms-internal', aid: '000000', uid: '00000001', keyNo: 0, version: 0 },
  });
  try {
    return hkdfSha256(k, new TextEncoder().encode('desfire-cms'), new TextEncoder().encode('station-token-protector-v1'), 32);
  } finally {
    wipe(k);
  }
}

/** Key names of this module in the shared CMS key store are prefixed, so they never collide. */
class PrefixedKeyStore implements CaKeyStore {
  constructor(
    private readonly inner: CaKeyStore,
    private readonly prefix: string,
  ) {}
  load(name: string) {
    return this.inner.load(this.prefix + name);
  }
  saveIfAbsent(name: string, record: Parameters<CaKeyStore['saveIfAbsent']>[1]) {
    return this.inner.saveIfAbsent(this.prefix + name, record);
  }
}

export interface AttachOptions {
  audit?: StationAuditSink;
  jobTtlSeconds?: number;
  deliveryTtlSeconds?: number;
  /** Tenant consent: install/delete jobs run only under an authorisation, e.g. `(q, w) => consent.requireAuthorisation(q, w)` (src/cms/consent). */
  authorise?: StationJobsOptions['authorise'];
  /** The same for every installation of a personalise job in one query, e.g. `(q, w) => consent.requireAuthorisationForCard(q, w)`; only with `authorise`. */
  authoriseCard?: StationJobsOptions['authoriseCard'];
  /** How often expired claimed jobs are marked 'unknown' (default 30 s). */
  sweepIntervalMs?: number;
}

/** Build the services from a CMS's dependencies and add their routes to `deps.modules`. */
export async function buildStation(deps: ApiDeps, logger: Logger, opts: AttachOptions = {}, sqlite?: BetterSqlite3.Database): Promise<StationServices> {
  if (!deps.custody || !deps.domain) throw new Error('station jobs need custody and the domain');
  const { db, tenants, readers } = deps.domain;
  const custody = deps.custody;
  const tokens = await OperationTokens.openOrCreate(new PrefixedKeyStore(new SqlCaKeyStore(db), 'station-'), aesGcmProtector(await protectorKey(custody)));
  const rl = deps.rateLimiter as unknown as Partial<NonceStore>;
  const nonces: NonceStore = typeof rl.consumeOnce === 'function' ? (rl as NonceStore) : new MemoryNonceStore();
  const recorder = (deps as { audit?: AuditRecorder }).audit;
  const audit = new TeeStationAudit(recorder ? new AuditLogStationSink(recorder) : new LogStationAudit(logger.child({ component: 'audit' })));
  if (opts.audit) audit.add(opts.audit);
  const keys = new CardKeys(custody);
  const recipients = new RecipientCache(readers);
  const jobs = new StationJobs({ db, custody, tenants, readers, tokens, nonces, audit, keys, ...(sqlite ? { sqlite } : {}), ...(opts.jobTtlSeconds ? { ttlSeconds: opts.jobTtlSeconds } : {}), ...(opts.authorise ? { authorise: opts.authorise, ...(opts.authoriseCard ? { authoriseCard: opts.authoriseCard } : {}) } : {}) });
  const delivery = new KeyDelivery({ db, custody, readers, tenants, audit, keys, recipients, ...(sqlite ? { sqlite } : {}), ...(opts.deliveryTtlSeconds ? { ttlSeconds: opts.deliveryTtlSeconds } : {}) });
  const masters = new MasterDelivery({ custody, readers, tenants, audit, recipients });
  const remote = new RemoteSessions({ jobs, custody, audit });
  const timings = new ServerTimings();
  // claimed jobs past their expiry without a receipt become 'unknown' (to be reconciled)
  const sweep = setInterval(() => void jobs.sweepExpired().catch(() => undefined), opts.sweepIntervalMs ?? 30_000);
  sweep.unref();
  deps.modules = [
    ...(deps.modules ?? []),
    { name: 'station', register: (app) => stationRoutes(jobs, delivery, timings)(app) },
    { name: 'remote', register: (app) => remoteRoutes(remote)(app) },
    { name: 'masters', register: (app) => masterRoutes(masters)(app) },
    // operator-requested reconciliation: requests in the session store (shared by every CMS process)
    { name: 'reconcile', register: (app) => reconcileRoutes(jobs, typeof (rl as Partial<RequestStore>).getValue === 'function' ? (rl as unknown as RequestStore) : new MemoryRequestStore())(app) },
  ];
  return { jobs, delivery, masters, remote, audit, tokens, timings };
}

const attached = new WeakMap<ApiDeps, Promise<StationServices>>();

/**
 * For the composition root (src/cms/app.ts) and tests: builds the services once per `deps`;
 * a second call returns the same services (adding `opts.audit` as one more audit sink).
 */
export async function attachStation(cms: { deps: ApiDeps; logger: Logger; db?: { sqlite?: BetterSqlite3.Database } }, opts: AttachOptions = {}): Promise<StationServices> {
  let p = attached.get(cms.deps);
  if (!p) {
    p = buildStation(cms.deps, cms.logger, opts, cms.db?.sqlite);
    attached.set(cms.deps, p);
    return p;
  }
  const s = await p;
  if (opts.audit) s.audit.add(opts.audit);
  return s;
}

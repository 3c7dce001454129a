// The small interfaces the API needs from the rest of the CMS. The composition root (src/cms/app.ts)
// adapts the real services to them; the API itself depends on nothing else.
import type { Logger } from 'pino';
import type { KeyCustody } from '../../custody/types.js';
import type { AuditLog } from '../audit/log.js';
import type { CardRepository, ReaderRepository, TenantRepository } from '../domain/index.js';
import type { CertificateAuthority } from '../pki/ca.js';
import type { EnrolmentCodeStore } from '../pki/enrolment.js';
import type { RevocationList } from '../pki/revocation.js';
import type { Database } from '../storage/index.js';
import type { Kysely } from 'kysely';
import type { OperatorTokens } from './tokens/service.js';
import type { CmsMetrics } from '../ops/metrics.js';

/** Rate limiting (the session store's `hit`, shared across processes when it is Redis). */
export interface RateLimiter {
  hit(key: string, limit: number, windowMs: number): Promise<{ allowed: boolean; remaining: number; resetMs: number }>;
}

/** One dependency /readyz reports on. */
export interface HealthCheck {
  name: string;
  check(): Promise<{ ok: boolean; reason?: string }>;
}

/** An authenticated reader (from its mTLS client certificate). */
export interface ReaderIdentity {
  readerId: string;
  tenant?: string;
}

/** Maps a presented client certificate (DER) to an active reader, or undefined. */
export interface ReaderAuthenticator {
  authenticate(certDer: Uint8Array): Promise<ReaderIdentity | undefined>;
}

export interface ApiLimits {
  operatorRequests: number;
  readerRequests: number;
  anonymousRequests: number;
  windowMs: number;
}

export interface ApiDeps {
  logger: Logger;
  tokens: OperatorTokens;
  rateLimiter: RateLimiter;
  limits: ApiLimits;
  health: HealthCheck[];
  readers?: ReaderAuthenticator;
  bodyLimitBytes?: number;
  trustProxy?: boolean;
  /** Domain repositories: tenants/applications/layouts, readers, cards routes are mounted when given. */
  domain?: {
    db: Kysely<Database>;
    tenants: TenantRepository;
    readers: ReaderRepository;
    cards: CardRepository;
    /** One transaction with reader/PKI stores bound to it (see routes/readers.ts). */
    atomic?: <T>(fn: (s: { readers: ReaderRepository; codes: EnrolmentCodeStore; revocations: RevocationList }) => Promise<T>) => Promise<T>;
  };
  /** PKI: enrolment codes and reader enrolment (CSR → certificate) routes when given. */
  pki?: { ca: CertificateAuthority; codes: EnrolmentCodeStore; revocations: RevocationList };
  /** The audit log: audit routes are mounted, and operator actions are recorded, when given. */
  audit?: AuditLog;
  /** Custody key administration routes are mounted when given. */
  custody?: KeyCustody;
  /** Metrics hooks (src/cms/ops): request rate/latency by route and status, reader presence. */
  metrics?: CmsMetrics;
  /** Route groups beyond the built-in ones (tokens, health, docs). */
  modules?: ApiModule[];
  /**
   * Kept up to date when given: the audit store reads it to tell one client's requests from load
   * (src/cms/audit/store.ts, `othersActive`).
   */
  requests?: RequestActivity;
}

/** HTTP request activity, as the API sees it. */
export interface RequestActivity {
  /** Requests received whose response has not closed yet. */
  inFlight: number;
  /** performance.now() when a request last arrived on another connection than the request before it. */
  otherConnectionAt: number;
}

import type { FastifyInstance } from 'fastify';
/** A group of routes (one file per group under ./routes). */
export interface ApiModule {
  name: string;
  register(app: FastifyInstance): Promise<void> | void;
}

// Who is calling: operators by bearer API token, readers by mTLS client certificate from the CMS
// CA (both on the same listener). Every route declares who may call it in `config.auth`; a route
// without a declaration is issuer_admin-only (secure default). Then the rate limit per caller.
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, forbidden, sendError, unauthorized } from './errors.js';
import type { ApiDeps, ReaderAuthenticator } from './ports.js';
import { ALL_TENANTS, type OperatorToken, type Role } from './tokens/service.js';

export type Principal =
  | { kind: 'operator'; id: string; roles: Role[]; tenants: string[]; token: OperatorToken }
  | { kind: 'reader'; id: string; tenant?: string; recheck?: ReaderRecheck };

/**
 * A reader re-check (certificate revocation + reader state) handed to the route: on a route that
 * declares `readerRecheck: 'handler'`, a reader whose certificate is already verified and cached
 * is identified without a database read, and the route's own lookup MUST read the revocation of
 * `serial` and the reader's state in the same query (one round trip instead of two), refuse with
 * 403 ERR_READER_NOT_ACTIVE, and set `done`. A successful answer with `done` unset is turned into
 * a 500 (fail closed: a route that forgets the check never answers).
 */
export interface ReaderRecheck {
  /** The presented certificate's serial, in the revocation list's normal form. */
  serial: string;
  done: boolean;
}

/** The authenticator's variant for routes that re-check in their own lookup (see ReaderRecheck). */
export interface DeferringReaderAuthenticator extends ReaderAuthenticator {
  /**
   * A cached certificate (not expired): its reader and the serial to re-check, without a database
   * read. A certificate seen for the first time is fully verified here (revocation and state
   * included): no recheck is returned. undefined: refused.
   */
  authenticateDeferred(certDer: Uint8Array): Promise<{ readerId: string; tenant?: string; recheckSerial?: string } | undefined>;
}

export type AuthSpec =
  | { public: true }
  /**
   * Operators with any of these roles; readers too when `reader` is set. `readerRecheck: 'handler'`:
   * the route's handler re-checks the reader (see ReaderRecheck) instead of this hook.
   */
  | { operator?: Role[]; reader?: boolean; readerRecheck?: 'handler' };

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    auth?: AuthSpec;
    /** false: not rate-limited (health probes). */
    rateLimit?: boolean;
  }
}

export const ANY_OPERATOR: Role[] = ['issuer_admin', 'tenant_admin', 'auditor'];

/** Tenants the caller may see: '*' (all) or a list. */
export function tenantScope(req: FastifyRequest): '*' | string[] {
  const p = req.principal;
  if (!p) return [];
  if (p.kind === 'reader') return p.tenant ? [p.tenant] : [];
  return p.tenants.includes(ALL_TENANTS) ? '*' : p.tenants;
}

export function canSeeTenant(req: FastifyRequest, tenant: string): boolean {
  const s = tenantScope(req);
  return s === '*' || s.includes(tenant);
}

/** Refuse (403) a request about a tenant outside the caller's scope. */
export function assertTenant(req: FastifyRequest, tenant: string): void {
  if (!canSeeTenant(req, tenant)) throw forbidden(`no access to tenant '${tenant}'`, 'ERR_FORBIDDEN_TENANT');
}

export function hasRole(req: FastifyRequest, ...roles: Role[]): boolean {
  const p = req.principal;
  return p?.kind === 'operator' && p.roles.some((r) => roles.includes(r));
}

/** The actor string for audit entries: `operator:tok_…` / `reader:rdr_…`. */
export function actorOf(req: FastifyRequest): string {
  const p = req.principal;
  return p ? `${p.kind}:${p.id}` : 'anonymous';
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : '';
}

/**
 * The client certificate's DER, read once per TLS 1.3 connection (getPeerCertificate builds a
 * large object on every call; a keep-alive reader sends many requests on one connection). TLS 1.3
 * has no renegotiation, so the peer certificate cannot change on the socket; older protocol
 * versions are read on every request. Authentication itself (revocation, reader state) still runs
 * on every request.
 */
const peerDer = new WeakMap<object, Uint8Array | null>();
function peerCertificate(sock: Partial<TLSSocket>): Uint8Array | null {
  const hit = peerDer.get(sock);
  if (hit !== undefined) return hit;
  const cert = sock.getPeerCertificate!();
  const der = cert && cert.raw ? new Uint8Array(cert.raw) : null;
  if (sock.getProtocol?.() === 'TLSv1.3') peerDer.set(sock, der);
  return der;
}

export const READER_NOT_ACTIVE = 'the reader certificate is not (or no longer) accepted';

async function identify(req: FastifyRequest, deps: ApiDeps, spec: AuthSpec | undefined): Promise<void> {
  const tok = bearer(req);
  if (tok !== undefined) {
    const t = tok ? await deps.tokens.verify(tok) : undefined;
    if (!t) throw new ApiError(401, 'ERR_BAD_TOKEN', 'the API token is unknown, expired or revoked');
    req.principal = { kind: 'operator', id: t.id, roles: t.roles, tenants: t.tenants, token: t };
    return;
  }
  const sock = req.raw.socket as Partial<TLSSocket>;
  if (deps.readers && typeof sock.getPeerCertificate === 'function' && sock.authorized) {
    const der = peerCertificate(sock);
    if (der) {
      const readers = deps.readers as Partial<DeferringReaderAuthenticator> & ReaderAuthenticator;
      const defer = spec !== undefined && 'readerRecheck' in spec && spec.readerRecheck === 'handler' && readers.authenticateDeferred !== undefined;
      const r = defer ? await readers.authenticateDeferred!(der) : await readers.authenticate(der);
      if (!r) throw new ApiError(403, 'ERR_READER_NOT_ACTIVE', READER_NOT_ACTIVE);
      const p: Principal = r.tenant ? { kind: 'reader', id: r.readerId, tenant: r.tenant } : { kind: 'reader', id: r.readerId };
      const serial = (r as { recheckSerial?: string }).recheckSerial;
      if (serial !== undefined) p.recheck = { serial, done: false };
      req.principal = p;
    }
  }
}

function authorize(req: FastifyRequest, declared: AuthSpec | undefined): void {
  const spec: AuthSpec = declared ?? { operator: ['issuer_admin'] };
  if ('public' in spec) return;
  const p = req.principal;
  if (!p) throw unauthorized();
  if (p.kind === 'reader') {
    if (!spec.reader) throw forbidden('readers may not call this endpoint');
    return;
  }
  if (!spec.operator || !p.roles.some((r) => spec.operator!.includes(r))) {
    throw forbidden(`requires role ${(spec.operator ?? []).join(' or ') || '(reader)'}`);
  }
}

export function registerAuth(app: FastifyInstance, deps: ApiDeps): void {
  // Every refusal is audited before the answer leaves: 401/403 anywhere, and a 404 of a matched
  // route to an authenticated caller (a resource outside its scope is answered as not found).
  const audit = deps.audit;
  if (audit) {
    // Callback style: every answer passes here, and a success (the readers' hot path) must not pay
    // for a promise; only refusals wait for their audit entry.
    app.addHook('onSend', (req: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) => {
      const s = reply.statusCode;
      if (s !== 401 && s !== 403 && !(s === 404 && req.principal && req.routeOptions.url !== undefined)) return done(null, payload);
      let code = 'ERR_UNKNOWN';
      try {
        code = String((JSON.parse(String(payload)) as { error: { code: string } }).error.code);
      } catch {
        /* not an error body */
      }
      const route = req.routeOptions.url ?? 'unmatched';
      audit
        .record({ actor: actorOf(req), operation: 'api.refused', result: s === 404 ? 'not_found' : 'denied', correlationId: String(req.id), details: { method: req.method, route, status: s, code } })
        .catch(() => undefined)
        .then(() => done(null, payload), done);
    });
  }
  // Fail closed: a reader re-check handed to the route (ReaderRecheck) must have been done before
  // a successful answer is serialised.
  app.addHook('preSerialization', (req: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) => {
    const p = req.principal;
    if (p?.kind === 'reader' && p.recheck && !p.recheck.done && reply.statusCode < 400) {
      return done(new ApiError(500, 'ERR_INTERNAL', 'the reader was not re-checked'));
    }
    done(null, payload);
  });
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    try {
      // Fastify's `routeOptions` is a getter that builds a fresh 12-field object on every read:
      // read once per request (was six reads on a reader's request)
      const ro = req.routeOptions;
      const isRoute = ro.url !== undefined;
      const config = ro.config;
      const spec = config?.auth;
      const isPublic = spec !== undefined && 'public' in spec;
      if (!isPublic) {
        try {
          await identify(req, deps, spec);
        } catch (e) {
          // Failed credentials count against the client address, so guessing is rate-limited too.
          const r = await deps.rateLimiter.hit(`rl:ip:${req.ip}`, deps.limits.anonymousRequests, deps.limits.windowMs);
          if (!r.allowed) {
            reply.header('retry-after', Math.max(1, Math.ceil(r.resetMs / 1000)));
            throw new ApiError(429, 'ERR_RATE_LIMITED', 'too many requests; retry later');
          }
          throw e;
        }
      }
      if (isRoute) authorize(req, spec);
      if (config?.rateLimit === false) return;
      const p = req.principal;
      const [key, limit] = p
        ? p.kind === 'operator'
          ? [`rl:op:${p.id}`, deps.limits.operatorRequests]
          : [`rl:rd:${p.id}`, deps.limits.readerRequests]
        : [`rl:ip:${req.ip}`, deps.limits.anonymousRequests];
      const r = await deps.rateLimiter.hit(key, limit, deps.limits.windowMs);
      reply.header('x-ratelimit-limit', limit);
      reply.header('x-ratelimit-remaining', Math.max(0, r.remaining));
      if (!r.allowed) {
        reply.header('retry-after', Math.max(1, Math.ceil(r.resetMs / 1000)));
        throw new ApiError(429, 'ERR_RATE_LIMITED', 'too many requests; retry later');
      }
    } catch (e) {
      return sendError(reply, req, e);
    }
  });
}

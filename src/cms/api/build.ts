// buildApi(deps): the Fastify application, fully assembled but not listening (the Fastify demo
// "app vs server" split): tests inject requests or listen on an ephemeral port; server.ts listens
// for real with TLS.
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions, LogController } from 'fastify';
import { actorOf, registerAuth } from './auth.js';
import { ApiError, ErrorBody, sendError } from './errors.js';
import type { ApiDeps } from './ports.js';
import { docsRoutes } from './routes/docs.js';
import { consoleRoutes } from './console.js';
import { healthRoutes } from './routes/health.js';
import { auditRoutes } from './routes/audit.js';
import { cardRoutes } from './routes/cards.js';
import { custodyRoutes } from './routes/custody.js';
import { readerRoutes } from './routes/readers.js';
import { tenantRoutes } from './routes/tenants.js';
import { tokenRoutes } from './routes/tokens.js';
import { registerHttpMetrics } from '../ops/http-metrics.js';

export const API_VERSION = '0.1.0';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

type Bindings = Parameters<FastifyBaseLogger['child']>[0];
type ChildOptions = NonNullable<Parameters<FastifyBaseLogger['child']>[1]>;

/**
 * A request's child logger, created on first use. Fastify makes a pino child (request id) for
 * every request and the preHandler another (the actor); building a pino child (bindings
 * serialisation, redaction setup) was ~3% of the CPU of a key delivery, which normally logs
 * nothing. The lines written are the same: the child is built with the same bindings when the
 * first line is logged (or its level or bindings are read). A class: one object per request
 * (the methods are shared), where the closure-based version built ten functions per request
 * (~2% of a delivery's samples with them).
 */
class LazyChildLogger {
  private real: FastifyBaseLogger | undefined;

  constructor(
    /** Where the child comes from: a real logger, or a lazy one (built first, then asked for the child). */
    private readonly parent: FastifyBaseLogger | LazyChildLogger,
    private readonly bindingsOf: Bindings,
    private readonly options: ChildOptions,
  ) {}

  /** The pino child (built now if it was not yet). */
  built(): FastifyBaseLogger {
    if (this.real) return this.real;
    const p = this.parent instanceof LazyChildLogger ? this.parent.built() : this.parent;
    return (this.real = p.child(this.bindingsOf, this.options));
  }

  get level(): string {
    return this.built().level;
  }
  set level(l: string) {
    this.built().level = l;
  }
  /** A child of a lazy logger is lazy too: neither is built until the child logs. */
  child(b: Bindings, o?: ChildOptions): FastifyBaseLogger {
    return new LazyChildLogger(this, b, o ?? {}) as unknown as FastifyBaseLogger;
  }
  isLevelEnabled(l: string): boolean {
    return (this.built() as unknown as { isLevelEnabled(l: string): boolean }).isLevelEnabled(l);
  }
  bindings(): Bindings {
    return (this.built() as unknown as { bindings(): Bindings }).bindings();
  }
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
// the level methods, once on the prototype: build the child on the first line, then log through it
for (const l of LEVELS) {
  Object.defineProperty(LazyChildLogger.prototype, l, {
    writable: true,
    configurable: true,
    value: function (this: LazyChildLogger, ...a: unknown[]): void {
      (this.built()[l] as (...x: unknown[]) => void)(...a);
    },
  });
}

export function lazyChildLogger(parent: FastifyBaseLogger, bindings: Bindings, options: ChildOptions = {}): FastifyBaseLogger {
  return new LazyChildLogger(parent, bindings, options) as unknown as FastifyBaseLogger;
}

export interface BuildOptions {
  /** Extra Fastify server options (e.g. `https` from server.ts). */
  server?: Partial<FastifyServerOptions> & Record<string, unknown>;
}

export async function buildApi(deps: ApiDeps, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger,
    bodyLimit: deps.bodyLimitBytes ?? 1024 * 1024,
    trustProxy: deps.trustProxy ?? false,
    requestIdHeader: 'x-request-id',
    genReqId: (req) => {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID();
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
    return503OnClosing: true,
    routerOptions: { maxParamLength: 256 },
    // Router-level failures (bad URL, overlong parameter) use the same error model.
    frameworkErrors: (err: Error, req: FastifyRequest, reply: FastifyReply) => sendError(reply, req, err),
    forceCloseConnections: 'idle',
    // Key delivery is the hot path of every runtime reader: Fastify's two per-request lines
    // (info level) are written there only when debug logging is on. Refusals are still audited
    // and errors still logged. (The level is the server logger's: asking the request's logger
    // would build it.)
    logController: new LogController({ disableRequestLogging: (req: FastifyRequest) => req.url === '/v1/keys/deliver' && !deps.logger.isLevelEnabled('debug') }),
    childLoggerFactory: (logger: FastifyBaseLogger, bindings: Bindings, options: ChildOptions) => lazyChildLogger(logger, bindings, options),
    ...(opts.server ?? {}),
  } as FastifyServerOptions) as unknown as FastifyInstance;

  // request activity: in flight from the server's 'request' event to the response's 'close'
  // (emitted once per response, finished or aborted), and when a request last came on another
  // connection than the one before it (many clients at once: nearly every request)
  const activity = deps.requests;
  if (activity) {
    let lastSocket: unknown;
    app.server.on('request', (req: { socket: unknown }, res: { once(e: 'close', f: () => void): unknown }) => {
      activity.inFlight++;
      if (req.socket !== lastSocket) {
        lastSocket = req.socket;
        activity.otherConnectionAt = performance.now();
      }
      res.once('close', () => void activity.inFlight--);
    });
  }

  app.addSchema(ErrorBody);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'desfire-cms',
        version: API_VERSION,
        description:
          'Card Management System for MIFARE DESFire. Operators authenticate with bearer API tokens; readers with mTLS client certificates from the CMS CA. Every error is `{ error: { code, message, details? } }`.',
      },
      components: {
        securitySchemes: {
          apiToken: { type: 'http', scheme: 'bearer', description: 'operator API token (dcms_…)' },
          // OpenAPI 3.1 'mutualTLS' (not in the plugin's 3.0 types).
          readerCertificate: { type: 'mutualTLS', description: 'reader client certificate issued by the CMS CA' } as unknown as { type: 'http'; scheme: string },
        },
      },
    },
    refResolver: { buildLocalReference: (json, _base, _frag, i) => String(json.$id ?? `def-${i}`) },
  });

  app.addHook('onSend', (req, reply, payload, done) => {
    reply.header('x-request-id', req.id);
    done(null, payload);
  });
  app.setErrorHandler((err, req, reply) => sendError(reply, req, err));
  app.setNotFoundHandler((req, reply) => sendError(reply, req, new ApiError(404, 'ERR_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)));
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml'], { parseAs: 'string' }, (_req, body, done) => done(null, body));

  registerAuth(app, deps);
  if (deps.metrics) registerHttpMetrics(app, deps.metrics);
  // Handler log lines name the caller (operator token id or reader id), never its credential.
  app.addHook('preHandler', (req, _reply, done) => {
    if (req.principal) req.log = req.log.child({ actor: actorOf(req) });
    done();
  });
  await app.register(healthRoutes(deps));
  await app.register(docsRoutes());
  await app.register(consoleRoutes(deps.audit ? { vkey: deps.audit.vkey } : {}));
  await app.register(tokenRoutes(deps), { prefix: '/v1' });
  if (deps.custody) await app.register(custodyRoutes(deps.custody), { prefix: '/v1' });
  if (deps.audit) await app.register(auditRoutes(deps.audit), { prefix: '/v1' });
  if (deps.domain) {
    const dm = deps.domain;
    await app.register(tenantRoutes(dm.tenants, deps.audit), { prefix: '/v1' });
    await app.register(readerRoutes({ db: dm.db, readers: dm.readers, ...(deps.pki ? { pki: deps.pki } : {}), ...(deps.audit ? { audit: deps.audit } : {}), ...(dm.atomic ? { atomic: dm.atomic } : {}) }), { prefix: '/v1' });
    await app.register(cardRoutes(dm.db, dm.cards, deps.audit), { prefix: '/v1' });
  }
  for (const m of deps.modules ?? []) await app.register(async (scope) => m.register(scope), { prefix: '/v1' });
  await app.ready();
  return app;
}

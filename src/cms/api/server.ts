// The listening half of the app/server split: HTTPS (or plain HTTP behind a TLS-terminating proxy)
// with `requestCert: true`, so readers authenticate by mTLS with certificates from the CMS CA while
// operators use bearer tokens on the same listener (`rejectUnauthorized: false` lets clients
// without a certificate in; the API decides per route). close() stops accepting, lets in-flight
// requests finish (up to the grace period), then cuts what is left.
import { DEFAULT_CIPHERS } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { buildApi } from './build.js';
import type { ApiDeps } from './ports.js';
import type { TlsMaterial } from './tls.js';

/**
 * The listener's cipher list: node's default with TLS_AES_128_GCM_SHA256 first, and the server's
 * order decides (`honorCipherOrder`). Node's clients (and OpenSSL's) offer TLS_AES_256_GCM_SHA384
 * first, which OpenSSL picks by the client's order; AES-128-GCM is TLS 1.3's mandatory suite, runs
 * on AES-NI with 10 rounds instead of 14, and every record of every reader request and answer
 * (both directions) is encrypted with it. Suites offered and accepted are unchanged.
 */
export const SERVER_CIPHERS = ['TLS_AES_128_GCM_SHA256', ...DEFAULT_CIPHERS.split(':').filter((c) => c !== 'TLS_AES_128_GCM_SHA256')].join(':');

export interface ServerOptions {
  host: string;
  port: number;
  tls?: TlsMaterial;
  shutdownGraceMs?: number;
}

export interface RunningServer {
  app: FastifyInstance;
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startServer(deps: ApiDeps, o: ServerOptions): Promise<RunningServer> {
  const server = o.tls
    ? {
        https: {
          cert: o.tls.cert,
          key: o.tls.key,
          ...(o.tls.ca ? { ca: o.tls.ca, requestCert: true, rejectUnauthorized: false } : {}),
          minVersion: 'TLSv1.2' as const,
          ciphers: SERVER_CIPHERS,
          honorCipherOrder: true,
        },
      }
    : {};
  const app = await buildApi(deps, { server });
  await app.listen({ host: o.host, port: o.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const hostForUrl = o.host.includes(':') ? `[${o.host}]` : o.host;
  const url = `${o.tls ? 'https' : 'http'}://${hostForUrl}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    app,
    url,
    port,
    close() {
      closing ??= (async () => {
        const grace = o.shutdownGraceMs ?? 10_000;
        const timer = setTimeout(() => app.server.closeAllConnections?.(), grace);
        timer.unref();
        try {
          await app.close();
        } finally {
          clearTimeout(timer);
        }
      })();
      return closing;
    },
  };
}

// The reader's only channel to the CMS: HTTPS with mutual TLS (client key + certificate from
// enrolment, server verified against the CMS CA), keep-alive, short timeouts. Enrolment itself is
// the one call without a client certificate (the CSR + one-time code are the credentials).
//
// Failures are typed: network failures and 502/503/504 → ERR_READER_CMS_UNREACHABLE (the agent
// goes offline); 403 ERR_READER_NOT_ACTIVE (certificate revoked, reader suspended or revoked) →
// ERR_READER_REVOKED (the agent wipes its cache and stops); other errors → ERR_READER_CMS with the
// CMS's code.
import { createSecureContext } from 'node:tls';
import { Http1Pool, jsonBody } from './http1.js';
import { ReaderError } from './errors.js';

export interface CmsEndpoint {
  /** https://host:port */
  url: string;
  /** CMS CA certificate (PEM): the only trust anchor. */
  ca: string;
  /** TLS server name when it differs from the URL host (e.g. 'localhost' for 127.0.0.1). */
  servername?: string;
  timeoutMs?: number;
}

export interface CmsResponse<T> {
  status: number;
  body: T;
  /** The response headers, names in lower case (diagnostics, e.g. bench/reader-phases' server timing). */
  headers?: Record<string, string>;
}

const NETWORK = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE|ECONNABORTED|ERR_READER_TIMEOUT)$/;

/** Per call: `background` = the reader's own baton uploads (their own connection, see the constructor). */
export interface CallOptions {
  background?: boolean;
}

export class CmsClient {
  private readonly agent: Http1Pool;
  private readonly background: Http1Pool;

  constructor(
    private readonly ep: CmsEndpoint,
    /** Client certificate and its key: PEM, or (PKCS#11 keystore) OpenSSL engine + key URI, the key staying in the token. */
    tls?: { cert: string } & ({ key: string } | { privateKeyEngine: string; privateKeyIdentifier: string }),
  ) {
    const base = new URL(ep.url);
    if (base.protocol !== 'https:') throw new ReaderError('ERR_READER_CONFIG', 'the CMS URL must be https:// (readers talk to the CMS over mTLS only)');
    // Persistent connections (src/reader/http1.ts): the TLS handshake (ECDHE + two certificate
    // verifications) happens once per connection, not per request; at most two (a key delivery
    // never queues behind a baton upload), kept open between requests (LIFO: the warm one first),
    // TLS sessions kept for a cheap resumption when the CMS closes an idle one.
    // One TLS context (CA, client certificate and key) for every connection of both pools: built
    // once, not per connection — a PKCS#11 engine key cannot be initialised a second time in one
    // process ("engine routines::init failed"), and the PEMs are parsed once.
    const secureContext = createSecureContext({ ca: ep.ca, ...(tls ?? {}) });
    const host = base.hostname.replace(/^\[(.*)\]$/, '$1');
    const opts = { host, authority: base.host, port: Number(base.port || 443), secureContext, ...(ep.servername ? { servername: ep.servername } : {}) };
    this.agent = new Http1Pool({ ...opts, maxSockets: 2 });
    // Background baton uploads on a connection of their own: they never take the connection a key
    // delivery would use (a delivery then never waits for a connection behind an upload, nor opens
    // a new one — a full mTLS handshake inside a card transaction — because an upload holds the
    // warm one). The periodic GET /sync stays on the delivery connection and keeps it warm.
    this.background = new Http1Pool({ ...opts, maxSockets: 1 });
  }

  async call<T>(method: string, path: string, body?: unknown, o: CallOptions = {}): Promise<T> {
    const r = await this.raw<T>(method, path, body, o);
    if (r.status >= 200 && r.status < 300) return r.body;
    const err = (r.body as { error?: { code?: string; message?: string } } | undefined)?.error;
    const code = err?.code ?? `HTTP_${r.status}`;
    if (r.status === 403 && (code === 'ERR_READER_NOT_ACTIVE' || code === 'ERR_UNAUTHENTICATED')) throw new ReaderError('ERR_READER_REVOKED', `the CMS refuses this reader: ${err?.message ?? code}`);
    if (r.status === 401) throw new ReaderError('ERR_READER_REVOKED', 'the CMS did not accept this reader certificate');
    if (r.status === 502 || r.status === 503 || r.status === 504) throw new ReaderError('ERR_READER_CMS_UNREACHABLE', `the CMS is unavailable (${r.status} ${code})`);
    const e = new ReaderError('ERR_READER_CMS', `CMS ${method} ${path}: ${r.status} ${code}: ${err?.message ?? ''}`);
    (e as ReaderError & { cmsCode?: string; status?: number }).cmsCode = code;
    (e as ReaderError & { cmsCode?: string; status?: number }).status = r.status;
    throw e;
  }

  async raw<T>(method: string, path: string, body?: unknown, o: CallOptions = {}): Promise<CmsResponse<T>> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = payload === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' };
    let res;
    try {
      res = await (o.background ? this.background : this.agent).request({ method, path, headers, ...(payload !== undefined ? { body: payload } : {}), timeoutMs: this.ep.timeoutMs ?? 5000, repeatable: true });
    } catch (e) {
      throw unreachable(e);
    }
    return { status: res.status, body: jsonBody(res) as T, headers: res.headers };
  }

  close(): void {
    this.agent.destroy();
    this.background.destroy();
  }
}

function unreachable(e: unknown): ReaderError {
  const code = (e as NodeJS.ErrnoException)?.code ?? '';
  if (NETWORK.test(code) || /socket hang up/i.test((e as Error)?.message ?? '')) return new ReaderError('ERR_READER_CMS_UNREACHABLE', `the CMS is unreachable (${code || (e as Error).message})`, { cause: e });
  // TLS failures (wrong CA, bad server certificate) are not "offline": they are configuration errors.
  return new ReaderError('ERR_READER_CMS', `talking to the CMS failed: ${code || (e as Error)?.message}`, { cause: e });
}

export interface EnrolResult {
  readerId: string;
  certificate: string;
  caCertificate: string;
  serial: string;
  notAfter: string;
}

/** POST /v1/enrol with a CSR and the one-time code (no client certificate). */
export async function enrol(ep: CmsEndpoint, csr: string, code: string): Promise<EnrolResult> {
  const c = new CmsClient(ep);
  try {
    return await c.call<EnrolResult>('POST', '/v1/enrol', { csr, code });
  } catch (e) {
    if (e instanceof ReaderError && e.code === 'ERR_READER_CMS') throw new ReaderError('ERR_READER_ENROL', `enrolment refused: ${e.message}`);
    throw e;
  } finally {
    c.close();
  }
}

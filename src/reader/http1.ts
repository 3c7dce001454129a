// A small HTTP/1.1 client over persistent TLS connections: the reader's channel to the CMS (the
// runtime agent's src/reader/cms-client.ts and the station's src/reader/station/client.ts give it
// their mTLS context). Made for one job — JSON requests of a few
// hundred bytes to one server, answered in a few milliseconds, inside a card transaction — where
// node:https spent more of the reader's CPU than the rest of the transaction's agent work: per
// request a ClientRequest, an IncomingMessage, two streams, a parser from a pool, header objects
// (measured on the same CMS: reader CPU per delivery 0.55-0.69 ms with node:https, 0.21-0.26 ms
// on a bare TLS socket; docs/reader-agent.md).
//
// What it does, and nothing more:
// - a pool per server of at most `maxSockets` connections, idle ones reused last-in first-out (the
//   warm one first), requests beyond that queued in order; an idle connection is unreferenced (it
//   never keeps the process alive), dropped when the server closes it, and dropped by us a second
//   before the server's advertised keep-alive timeout (`Keep-Alive: timeout=N`; 30 s without one)
//   or after `idleMs`;
// - one request at a time per connection (no pipelining), head and body in one write;
// - responses framed by Content-Length, by chunked Transfer-Encoding, or by the connection's
//   close; 1xx answers skipped; 204/304 and answers to HEAD without a body; `Connection: close`
//   or HTTP/1.0 ends the connection after the answer; bytes after a complete answer end it too;
// - a request the caller marks repeatable that fails on a REUSED connection before any byte of
//   the answer arrived (the server closed it while it was idle: reset, EPIPE, closed) is sent once
//   more on a new connection; any other failure is the caller's (every call of the runtime agent's
//   CmsClient is repeatable: a key delivery is a read, audited per request; a baton upload is
//   idempotent by sequence number; the sync GETs are reads — the station's job creation and
//   receipts are not, only its GETs are);
// - a timeout per request (the connection is destroyed), limits on the head (64 KiB) and the body
//   (`maxBody`, 16 MiB by default); a malformed answer is an Http1Error, never a guess.
// TLS sessions are kept for a cheap resumption when a connection has to be opened again.
import { type SecureContext, type TLSSocket, connect } from 'node:tls';

export type Http1ErrorCode = 'ERR_HTTP1_PARSE' | 'ERR_HTTP1_TOO_LARGE' | 'ERR_READER_TIMEOUT' | 'ECONNRESET';

/** A failed exchange. `code` ECONNRESET: the connection ended before the answer was complete. */
export class Http1Error extends Error {
  readonly code: Http1ErrorCode;
  constructor(code: Http1ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'Http1Error';
  }
}

export interface Http1Response {
  status: number;
  /** Header names in lower case; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
}

/** A response body as JSON: undefined when it is empty or not JSON (the caller judges by the status). */
export function jsonBody(r: Http1Response): unknown {
  if (r.body.length === 0) return undefined;
  try {
    return JSON.parse(r.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

export interface Http1PoolOptions {
  host: string;
  port: number;
  /** The Host header (default host:port; give it for an IPv6 literal, e.g. "[::1]:8443"). */
  authority?: string;
  servername?: string;
  secureContext: SecureContext;
  /** Connections open at most (in use + idle). */
  maxSockets: number;
  /**
   * An idle connection is closed a second before the server's advertised keep-alive timeout
   * (Fastify: 72 s), after 30 s when it advertises none, and after at most this long if given.
   */
  idleMs?: number;
  /** The largest body accepted (default 16 MiB). */
  maxBody?: number;
}

export interface Http1Request {
  method: string;
  path: string;
  /** Extra header lines (name -> value); Host, Content-Length and Connection are set here. */
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /**
   * Safe to send twice: a request that failed on a reused connection before any byte of the answer
   * (the server closed the idle connection as it was sent) goes once more on a new one.
   */
  repeatable: boolean;
}

const HEAD_MAX = 64 * 1024;
const CRLF2 = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?$/;

type Phase = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'trailers' | 'close' | 'done';

/** The answer being read on a connection: an incremental parser fed by the socket's data events. */
class Exchange {
  phase: Phase = 'head';
  /** Bytes received and not yet consumed. */
  private pending: Buffer = Buffer.alloc(0);
  received = 0;
  status = 0;
  headers: Record<string, string> = {};
  keepAlive = true;
  private body: Buffer[] = [];
  private bodyLength = 0;
  /** Bytes of body still expected (Content-Length) or of the current chunk. */
  private left = 0;
  /** Set when bytes followed the complete answer: the connection cannot be reused. */
  trailing = false;

  constructor(
    private readonly head: boolean,
    private readonly maxBody: number,
  ) {}

  /** Feed bytes; true once the answer is complete. Throws Http1Error on a malformed answer. */
  feed(d: Buffer): boolean {
    this.received += d.length;
    this.pending = this.pending.length ? Buffer.concat([this.pending, d]) : d;
    for (;;) {
      switch (this.phase) {
        case 'head': {
          const end = this.pending.indexOf(CRLF2);
          if (end < 0) {
            if (this.pending.length > HEAD_MAX) throw new Http1Error('ERR_HTTP1_PARSE', `response head larger than ${HEAD_MAX} bytes`);
            return false;
          }
          const text = this.pending.toString('latin1', 0, end);
          this.pending = this.pending.subarray(end + 4);
          this.parseHead(text);
          break;
        }
        case 'length': {
          const n = Math.min(this.left, this.pending.length);
          if (n > 0) this.take(n);
          if (this.left > 0) return false;
          this.phase = 'done';
          break;
        }
        case 'chunk-size': {
          const eol = this.pending.indexOf('\r\n');
          if (eol < 0) {
            if (this.pending.length > 1024) throw new Http1Error('ERR_HTTP1_PARSE', 'chunk size line too long');
            return false;
          }
          const m = CHUNK_SIZE.exec(this.pending.toString('latin1', 0, eol));
          if (!m) throw new Http1Error('ERR_HTTP1_PARSE', 'malformed chunk size');
          this.pending = this.pending.subarray(eol + 2);
          this.left = parseInt(m[1]!, 16);
          this.phase = this.left === 0 ? 'trailers' : 'chunk-data';
          break;
        }
        case 'chunk-data': {
          const n = Math.min(this.left, this.pending.length);
          if (n > 0) this.take(n);
          if (this.left > 0 || this.pending.length < 2) return false;
          if (this.pending[0] !== 0x0d || this.pending[1] !== 0x0a) throw new Http1Error('ERR_HTTP1_PARSE', 'chunk not followed by CRLF');
          this.pending = this.pending.subarray(2);
          this.phase = 'chunk-size';
          break;
        }
        case 'trailers': {
          // no trailer fields: CRLF; else fields up to an empty line (read and ignored)
          if (this.pending.length >= 2 && this.pending[0] === 0x0d && this.pending[1] === 0x0a) {
            this.pending = this.pending.subarray(2);
            this.phase = 'done';
            break;
          }
          const end = this.pending.indexOf(CRLF2);
          if (end < 0) {
            if (this.pending.length > HEAD_MAX) throw new Http1Error('ERR_HTTP1_PARSE', 'trailers too large');
            return false;
          }
          this.pending = this.pending.subarray(end + 4);
          this.phase = 'done';
          break;
        }
        case 'close':
          if (this.pending.length) this.take(this.pending.length);
          return false;
        case 'done':
          if (this.pending.length) this.trailing = true;
          return true;
      }
    }
  }

  /** The connection ended: true if that completes the answer (a body framed by the close). */
  ended(): boolean {
    if (this.phase === 'close') {
      this.phase = 'done';
      return true;
    }
    return this.phase === 'done';
  }

  response(): Http1Response {
    return { status: this.status, headers: this.headers, body: this.body.length === 1 ? this.body[0]! : Buffer.concat(this.body, this.bodyLength) };
  }

  private take(n: number): void {
    this.bodyLength += n;
    if (this.bodyLength > this.maxBody) throw new Http1Error('ERR_HTTP1_TOO_LARGE', `response body larger than ${this.maxBody} bytes`);
    this.body.push(this.pending.subarray(0, n));
    this.pending = this.pending.subarray(n);
    if (this.phase !== 'close') this.left -= n;
  }

  private parseHead(text: string): void {
    const lines = text.split('\r\n');
    const m = STATUS_LINE.exec(lines[0]!);
    if (!m) throw new Http1Error('ERR_HTTP1_PARSE', 'malformed status line');
    const status = Number(m[2]);
    const headers: Record<string, string> = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const c = line.indexOf(':');
      const name = c > 0 ? line.slice(0, c) : '';
      if (!TOKEN.test(name)) throw new Http1Error('ERR_HTTP1_PARSE', 'malformed header line');
      const key = name.toLowerCase();
      const value = line.slice(c + 1).trim();
      headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`;
    }
    if (status >= 100 && status < 200) {
      if (status === 101) throw new Http1Error('ERR_HTTP1_PARSE', 'unexpected protocol switch');
      return; // informational: the real answer follows
    }
    this.status = status;
    this.headers = headers;
    const connection = (headers['connection'] ?? '').toLowerCase();
    this.keepAlive = m[1] === '1' && !/(^|,)\s*close\s*(,|$)/.test(connection);
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    if (this.head || status === 204 || status === 304) {
      this.phase = 'done';
    } else if (te !== undefined) {
      if (/(^|,)\s*chunked\s*$/i.test(te)) this.phase = 'chunk-size';
      else {
        this.phase = 'close';
        this.keepAlive = false;
      }
    } else if (cl !== undefined) {
      const values = new Set(cl.split(',').map((v) => v.trim()));
      const v = [...values][0]!;
      if (values.size !== 1 || !/^\d{1,15}$/.test(v)) throw new Http1Error('ERR_HTTP1_PARSE', 'malformed content-length');
      this.left = Number(v);
      if (this.left > this.maxBody) throw new Http1Error('ERR_HTTP1_TOO_LARGE', `response body larger than ${this.maxBody} bytes`);
      this.phase = 'length';
    } else {
      this.phase = 'close';
      this.keepAlive = false;
    }
  }
}

/** One TLS connection of a pool. */
class Connection {
  /** Has carried a complete exchange before (a failure before any answer byte may be the server's idle close). */
  reused = false;
  dead = false;
  private current: { ex: Exchange; resolve: (r: Http1Response) => void; reject: (e: unknown) => void; timer: NodeJS.Timeout } | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** The server's keep-alive timeout (ms), from its Keep-Alive header. */
  serverIdleMs: number | undefined;

  constructor(
    readonly socket: TLSSocket,
    private readonly onDead: (c: Connection) => void,
  ) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(undefined));
    socket.on('end', () => this.fail(undefined));
  }

  exchange(req: Buffer, head: boolean, maxBody: number, timeoutMs: number): Promise<Http1Response> {
    this.clearIdle();
    if (this.dead) return Promise.reject(Object.assign(new Http1Error('ECONNRESET', 'the connection closed while idle'), { retryable: this.reused }));
    this.socket.ref();
    return new Promise<Http1Response>((resolve, reject) => {
      const timer = setTimeout(() => {
        const c = this.current;
        this.current = undefined;
        this.destroy();
        c?.reject(new Http1Error('ERR_READER_TIMEOUT', 'request timed out'));
      }, timeoutMs);
      this.current = { ex: new Exchange(head, maxBody), resolve, reject, timer };
      this.socket.write(req);
    });
  }

  /** Park the connection (unreferenced) until `idleMs` has passed. */
  park(idleMs: number): void {
    this.socket.unref();
    this.idleTimer = setTimeout(() => this.destroy(), idleMs);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private onData(d: Buffer): void {
    const c = this.current;
    if (!c) {
      this.destroy(); // bytes nobody asked for: the connection is not in a known state
      return;
    }
    let done: boolean;
    try {
      done = c.ex.feed(d);
    } catch (e) {
      this.current = undefined;
      clearTimeout(c.timer);
      this.destroy();
      c.reject(e);
      return;
    }
    if (!done) return;
    this.current = undefined;
    clearTimeout(c.timer);
    const res = c.ex.response();
    const ka = res.headers['keep-alive'];
    const t = ka ? /timeout\s*=\s*(\d+)/i.exec(ka) : null;
    if (t) this.serverIdleMs = Number(t[1]) * 1000;
    if (!c.ex.keepAlive || c.ex.trailing) this.destroy();
    else this.reused = true;
    c.resolve(res);
  }

  private fail(e: unknown): void {
    const c = this.current;
    this.current = undefined;
    if (c) {
      clearTimeout(c.timer);
      if (e === undefined && c.ex.ended()) c.resolve(c.ex.response());
      else {
        const err = e ?? new Http1Error('ECONNRESET', 'the connection closed before the response was complete');
        // a failure before any byte of the answer on a connection that had served before: retryable
        if (this.reused && c.ex.received === 0) (err as { retryable?: boolean }).retryable = true;
        c.reject(err);
      }
    }
    this.destroy();
  }

  destroy(): void {
    this.clearIdle();
    if (!this.dead) {
      this.dead = true;
      this.socket.destroy();
      this.onDead(this);
    }
  }
}

/** A pool of keep-alive TLS connections to one server (see the top of this file). */
export class Http1Pool {
  private readonly idle: Connection[] = [];
  /** Every open connection, idle or in use. */
  private readonly all = new Set<Connection>();
  private readonly waiting: (() => void)[] = [];
  private session: Buffer | undefined;
  private closed = false;
  private readonly hostHeader: string;

  constructor(private readonly o: Http1PoolOptions) {
    this.hostHeader = o.authority ?? (o.port === 443 ? o.host : `${o.host}:${o.port}`);
  }

  /** Open a TLS connection to the server (resuming the last TLS session if there is one). */
  createConnection(): TLSSocket {
    const s = connect({ host: this.o.host, port: this.o.port, secureContext: this.o.secureContext, ...(this.o.servername ? { servername: this.o.servername } : {}), ...(this.session ? { session: this.session } : {}) });
    s.setNoDelay(true);
    s.on('session', (sess: Buffer) => (this.session = sess));
    return s;
  }

  async request(r: Http1Request): Promise<Http1Response> {
    let lines = `${r.method} ${r.path} HTTP/1.1\r\nhost: ${this.hostHeader}\r\n`;
    for (const [k, v] of Object.entries(r.headers)) lines += `${k}: ${v}\r\n`;
    if (r.body !== undefined || r.method === 'POST' || r.method === 'PUT' || r.method === 'PATCH') lines += `content-length: ${r.body === undefined ? 0 : Buffer.byteLength(r.body)}\r\n`;
    const buf = Buffer.from(lines + '\r\n' + (r.body ?? ''), 'utf8');
    const head = r.method === 'HEAD';
    for (let attempt = 0; ; attempt++) {
      const c = await this.acquire(attempt > 0);
      try {
        const res = await c.exchange(buf, head, this.o.maxBody ?? 16 * 1024 * 1024, r.timeoutMs);
        this.release(c);
        return res;
      } catch (e) {
        this.release(c);
        if (attempt === 0 && r.repeatable && (e as { retryable?: boolean }).retryable) continue;
        throw e;
      }
    }
  }

  /** A connection: the most recently parked idle one (unless `fresh`), a new one, or the next one released. */
  private async acquire(fresh: boolean): Promise<Connection> {
    for (;;) {
      if (this.closed) throw new Http1Error('ECONNRESET', 'the client was closed');
      if (fresh) {
        // a retry after an idle close: the other parked connections are as old — drop them
        for (const c of this.idle.splice(0)) c.destroy();
      }
      const c = this.idle.pop();
      if (c) return c;
      if (this.all.size < this.o.maxSockets) {
        const c: Connection = new Connection(this.createConnection(), () => this.dead(c));
        this.all.add(c);
        return c;
      }
      await new Promise<void>((r) => this.waiting.push(r));
    }
  }

  private release(c: Connection): void {
    if (!c.dead && !this.closed) {
      const server = c.serverIdleMs !== undefined ? Math.max(0, c.serverIdleMs - 1000) : 30_000;
      c.park(Math.min(this.o.idleMs ?? Infinity, server));
      this.idle.push(c);
    }
    this.waiting.shift()?.();
  }

  private dead(c: Connection): void {
    this.all.delete(c);
    for (let i = this.idle.length - 1; i >= 0; i--) if (this.idle[i]!.dead) this.idle.splice(i, 1);
    this.waiting.shift()?.();
  }

  /** Close every connection; requests in flight fail, later ones are refused. */
  destroy(): void {
    this.closed = true;
    this.idle.length = 0;
    for (const c of [...this.all]) c.destroy();
    for (const w of this.waiting.splice(0)) w();
  }
}

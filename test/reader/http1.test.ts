// The reader's HTTP/1.1 client (src/reader/http1.ts) against real TLS servers on loopback: a
// node:https server for the ordinary answers, and a raw TLS server that writes exact bytes for the
// framings and failures a server may produce (chunked with extensions and trailers, close-delimited,
// bytes after the answer, a connection closed without an answer, a malformed head, a silent server).
import { webcrypto } from 'node:crypto';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type TLSSocket, createSecureContext, createServer as createTlsServer } from 'node:tls';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CmsClient } from '../../src/reader/cms-client.js';
import { Http1Pool } from '../../src/reader/http1.js';
import { ReaderError } from '../../src/reader/errors.js';

let tlsMaterial: { cert: string; key: string };
const servers: { close(): void }[] = [];

beforeAll(async () => {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=localhost',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }]), new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  tlsMaterial = { cert: cert.toString('pem'), key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n` };
});

afterAll(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A node:https server; counts the TLS connections it accepted. */
async function httpsServer(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const s = createHttpsServer({ ...tlsMaterial }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => handler(req, res, body));
  });
  const st = { connections: 0, port: 0, server: s };
  s.on('secureConnection', () => st.connections++);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  st.port = (s.address() as AddressInfo).port;
  servers.push({ close: () => s.close() });
  return st;
}

/** A TLS server that hands each request (its head, per connection its number) to `answer`, which writes raw bytes. */
async function rawServer(answer: (sock: TLSSocket, head: string, n: number) => void) {
  const s = createTlsServer({ ...tlsMaterial }, (sock) => {
    st.connections++;
    let n = 0;
    let buf = '';
    sock.on('error', () => undefined);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        buf = buf.slice(end + 4 + len);
        answer(sock, head, ++n);
      }
    });
  });
  const st = { connections: 0, port: 0 };
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  st.port = (s.address() as AddressInfo).port;
  servers.push({ close: () => s.close() });
  return st;
}

const pool = (port: number, o: { maxSockets?: number; maxBody?: number } = {}) =>
  new Http1Pool({ host: '127.0.0.1', port, servername: 'localhost', secureContext: createSecureContext({ ca: tlsMaterial.cert }), maxSockets: o.maxSockets ?? 2, ...(o.maxBody ? { maxBody: o.maxBody } : {}) });
const get = (p: Http1Pool, path = '/x', timeoutMs = 5000, repeatable = true) => p.request({ method: 'GET', path, headers: { accept: 'application/json' }, timeoutMs, repeatable });
const client = (port: number, timeoutMs?: number, ca = tlsMaterial.cert) => new CmsClient({ url: `https://127.0.0.1:${port}`, ca, servername: 'localhost', ...(timeoutMs ? { timeoutMs } : {}) });
const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e instanceof ReaderError ? e.code : String((e as { code?: string }).code);
  }
};

describe('the reader HTTP/1.1 client (src/reader/http1.ts)', () => {
  it('keeps one connection alive across requests; POST bodies, statuses and headers arrive intact', async () => {
    const s = await httpsServer((req, res, body) => {
      res.setHeader('x-seen', `${req.method} ${req.url} ${req.headers['content-length'] ?? '-'}`);
      res.setHeader('x-host', req.headers.host ?? '');
      res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ echo: body ? JSON.parse(body) : null }));
    });
    const c = client(s.port);
    try {
      const a = await c.raw<{ echo: unknown }>('POST', '/v1/keys/deliver', { uid: '04AABBCCDDEEFF', n: 'é' });
      expect([a.status, a.body.echo, a.headers?.['x-seen']]).toEqual([200, { uid: '04AABBCCDDEEFF', n: 'é' }, `POST /v1/keys/deliver ${Buffer.byteLength(JSON.stringify({ uid: '04AABBCCDDEEFF', n: 'é' }))}`]);
      expect(a.headers?.['x-host']).toBe(`127.0.0.1:${s.port}`);
      const b = await c.raw<{ echo: unknown }>('GET', '/missing');
      expect([b.status, b.body.echo, b.headers?.['x-seen']]).toEqual([404, null, 'GET /missing -']);
      for (let i = 0; i < 5; i++) expect((await c.raw('GET', '/x')).status).toBe(200);
      expect(s.connections).toBe(1);
    } finally {
      c.close();
    }
  });

  it('reads chunked bodies (from node:https, and with chunk extensions and trailers), close-delimited bodies, and skips 1xx answers', async () => {
    const h = await httpsServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"a":');
      setTimeout(() => res.end('[1,2,3]}'), 5);
    });
    const p1 = pool(h.port);
    try {
      const r = await get(p1);
      expect([r.headers['transfer-encoding'], JSON.parse(r.body.toString())]).toEqual(['chunked', { a: [1, 2, 3] }]);
    } finally {
      p1.destroy();
    }

    const s = await rawServer((sock, head) => {
      if (head.startsWith('GET /chunked')) {
        sock.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n');
        setTimeout(() => sock.write('3\r\nefg\r\n0\r\nx-trailer: 1\r\n\r\n'), 5);
      } else {
        sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the ');
        setTimeout(() => sock.end('end'), 5);
      }
    });
    const p2 = pool(s.port);
    try {
      const a = await get(p2, '/chunked');
      expect([a.status, a.body.toString()]).toEqual([200, 'abcdefg']);
      const b = await get(p2, '/chunked'); // the same connection: the trailers were consumed
      expect(b.body.toString()).toBe('abcdefg');
      expect(s.connections).toBe(1);
      const c = await get(p2, '/close');
      expect(c.body.toString()).toBe('until the end');
      expect((await get(p2, '/chunked')).body.toString()).toBe('abcdefg');
      expect(s.connections).toBe(2); // a close-delimited answer ends its connection
    } finally {
      p2.destroy();
    }
  });

  it('Connection: close, HTTP/1.0 and bytes after the answer end the connection; the next request opens another', async () => {
    const s = await rawServer((sock, head) => {
      if (head.startsWith('GET /close')) sock.write('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok');
      else if (head.startsWith('GET /http10')) sock.write('HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok');
      else if (head.startsWith('GET /extra')) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokJUNK');
      else sock.write('HTTP/1.1 204 No Content\r\n\r\n');
    });
    const p = pool(s.port);
    try {
      for (const path of ['/close', '/http10', '/extra']) {
        expect((await get(p, path)).body.toString()).toBe('ok');
        const before = s.connections;
        expect((await get(p, '/empty')).status).toBe(204); // a 204 has no body: its connection stays
        expect([path, s.connections]).toEqual([path, before + 1]);
      }
      expect(s.connections).toBe(4); // the first answer's connection, then one per ended connection
    } finally {
      p.destroy();
    }
  });

  it('a reused connection the server closed without answering: a repeatable request goes once more on a new connection, another fails; a new connection closed without an answer: an error, not repeated', async () => {
    let answered = 0;
    const s = await rawServer((sock, _head, n) => {
      if (n === 2) {
        sock.destroy(); // the server gave up on the idle connection just as the request came
        return;
      }
      answered++;
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    const p = pool(s.port);
    try {
      expect((await get(p)).body.toString()).toBe('ok');
      expect((await get(p)).body.toString()).toBe('ok'); // failed on the reused one, answered on a new one
      expect([s.connections, answered]).toEqual([2, 2]);
      // not repeatable (a job creation, a receipt): the caller gets the failure
      expect((await get(p)).body.toString()).toBe('ok'); // the 2nd connection's first request
      answered = 0;
      const q = pool(s.port);
      expect((await get(q)).body.toString()).toBe('ok');
      expect(await codeOf(get(q, '/x', 5000, false))).toBe('ECONNRESET');
      expect(answered).toBe(1);
      q.destroy();
    } finally {
      p.destroy();
    }

    const mute = await rawServer((sock) => sock.destroy());
    const c = client(mute.port);
    try {
      expect(await codeOf(c.raw('POST', '/v1/keys/deliver', {}))).toBe('ERR_READER_CMS_UNREACHABLE');
      expect(mute.connections).toBe(1);
    } finally {
      c.close();
    }
  });

  it('at most maxSockets connections: further requests wait for one and are all answered', async () => {
    let inFlight = 0;
    let most = 0;
    const s = await httpsServer((_req, res) => {
      most = Math.max(most, ++inFlight);
      setTimeout(() => {
        inFlight--;
        res.end('{}');
      }, 10);
    });
    const p = pool(s.port, { maxSockets: 2 });
    try {
      const rs = await Promise.all(Array.from({ length: 7 }, () => get(p)));
      expect(rs.map((r) => r.status)).toEqual(Array(7).fill(200));
      expect([s.connections, most]).toEqual([2, 2]);
    } finally {
      p.destroy();
    }
  });

  it('typed failures: timeout and refused connection → unreachable (offline); malformed or oversized answer and an untrusted server → ERR_READER_CMS', async () => {
    const silent = await rawServer(() => undefined);
    const t0 = Date.now();
    const c1 = client(silent.port, 150);
    try {
      expect(await codeOf(c1.raw('GET', '/x'))).toBe('ERR_READER_CMS_UNREACHABLE');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    } finally {
      c1.close();
    }

    const bad = await rawServer((sock, head) => {
      if (head.startsWith('GET /status')) sock.write('HTTP/2 200 OK\r\n\r\n');
      else if (head.startsWith('GET /header')) sock.write('HTTP/1.1 200 OK\r\nno colon here\r\n\r\n');
      else if (head.startsWith('GET /length')) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\nok');
      else if (head.startsWith('GET /chunk')) sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n');
      else sock.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n');
    });
    const c2 = new CmsClient({ url: `https://127.0.0.1:${bad.port}`, ca: tlsMaterial.cert, servername: 'localhost' });
    try {
      for (const path of ['/status', '/header', '/length', '/chunk']) expect([path, await codeOf(c2.raw('GET', path))]).toEqual([path, 'ERR_READER_CMS']);
    } finally {
      c2.close();
    }
    const p = pool(bad.port, { maxBody: 1000 });
    try {
      expect(await codeOf(get(p, '/big'))).toBe('ERR_HTTP1_TOO_LARGE');
    } finally {
      p.destroy();
    }

    const h = await httpsServer((_req, res) => res.end('{}'));
    const other = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const otherCa = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '02', name: 'CN=other', keys: other, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
    const c3 = client(h.port, undefined, otherCa.toString('pem'));
    try {
      expect(await codeOf(c3.raw('GET', '/x'))).toBe('ERR_READER_CMS');
    } finally {
      c3.close();
    }
    h.server.close();
    await new Promise((r) => setTimeout(r, 20));
    const c4 = client(h.port);
    try {
      expect(await codeOf(c4.raw('GET', '/x'))).toBe('ERR_READER_CMS_UNREACHABLE');
    } finally {
      c4.close();
    }
  });

  it('an idle connection is kept until a second before the server\'s advertised keep-alive timeout, then dropped', async () => {
    const s = await rawServer((sock, head) => {
      const t = /GET \/t(\d)/.exec(head)![1];
      sock.write(`HTTP/1.1 200 OK\r\nkeep-alive: timeout=${t}\r\ncontent-length: 2\r\n\r\nok`);
    });
    const p = pool(s.port);
    try {
      await get(p, '/t3'); // kept up to 2 s
      await new Promise((r) => setTimeout(r, 1300));
      await get(p, '/t2'); // the same connection; now kept up to 1 s
      expect(s.connections).toBe(1);
      await new Promise((r) => setTimeout(r, 1300));
      await get(p, '/t2');
      expect(s.connections).toBe(2);
    } finally {
      p.destroy();
    }
  });

  it('close() fails the requests in flight and refuses later ones', async () => {
    const silent = await rawServer(() => undefined);
    const c = client(silent.port, 10_000);
    const inFlight = codeOf(c.raw('GET', '/x'));
    await new Promise((r) => setTimeout(r, 50));
    c.close();
    expect(await inFlight).toBe('ERR_READER_CMS_UNREACHABLE');
    expect(await codeOf(c.raw('GET', '/x'))).toBe('ERR_READER_CMS_UNREACHABLE');
  });
});

// The listener's TLS (src/cms/api/server.ts): the server's cipher order decides, AES-128-GCM
// first. Every reader request and answer is encrypted with the negotiated suite; node's and
// OpenSSL's clients offer TLS_AES_256_GCM_SHA384 first, which the server used to accept.
import { connect, DEFAULT_CIPHERS, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_CIPHERS } from '../../src/cms/api/server.js';
import { type E2e, startE2e } from '../e2e/harness.js';

let h: E2e;
beforeAll(async () => {
  h = await startE2e();
}, 60_000);
afterAll(async () => {
  await h?.close();
});

function handshake(opts: { maxVersion?: 'TLSv1.2' | 'TLSv1.3' } = {}): Promise<{ cipher: string; protocol: string | null }> {
  return new Promise((resolve, reject) => {
    const s: TLSSocket = connect({ host: '127.0.0.1', port: h.server.port, ca: h.ca, servername: 'localhost', ...opts }, () => {
      const out = { cipher: s.getCipher().name, protocol: s.getProtocol() };
      s.destroy();
      resolve(out);
    });
    s.once('error', reject);
  });
}

describe('listener ciphers', () => {
  it('the same suites as node, TLS_AES_128_GCM_SHA256 first', () => {
    expect(SERVER_CIPHERS.split(':')[0]).toBe('TLS_AES_128_GCM_SHA256');
    expect(SERVER_CIPHERS.split(':').sort()).toEqual(DEFAULT_CIPHERS.split(':').sort());
  });

  it('a client offering AES-256-GCM first gets AES-128-GCM (TLS 1.3 and 1.2)', async () => {
    expect(DEFAULT_CIPHERS.split(':')[0]).toBe('TLS_AES_256_GCM_SHA384'); // what the client offers first
    expect(await handshake()).toEqual({ cipher: 'TLS_AES_128_GCM_SHA256', protocol: 'TLSv1.3' });
    const v12 = await handshake({ maxVersion: 'TLSv1.2' });
    expect(v12.protocol).toBe('TLSv1.2');
    expect(v12.cipher).toMatch(/^ECDHE-ECDSA-AES128-GCM-SHA256$/);
  });
});

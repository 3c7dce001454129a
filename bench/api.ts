// HTTP API figures over real HTTPS on 127.0.0.1 (client and server in this process, so on 2 cores
// they share the CPU): requests/s and latency with 50 concurrent clients for
//   - /healthz (TLS + framework + request logging),
//   - an operator call (bearer token lookup + shared rate limit),
//   - a reader call over mTLS (client certificate verified against the CA, revocation list and
//     reader state on every request),
// with a bare node:https JSON server as the baseline, measured in the same run.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { buildCmsApp } from '../src/cms/app.js';
import { startServer } from '../src/cms/api/server.js';
import { loadConfig, resolveSecrets } from '../src/cms/config/index.js';
import { createEnrolmentCode } from '../src/cms/pki/enrolment.js';
import { enrolReader } from '../src/cms/pki/enrol.js';
import { type BenchOptions, type Figure, percentile } from './types.js';

const CONCURRENCY = 50;

interface Target {
  port: number;
  path: string;
  ca: string;
  agents: Agent[];
  headers?: Record<string, string>;
}

function once(t: Target, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const req = request({ host: '127.0.0.1', port: t.port, path: t.path, method: 'GET', headers: t.headers ?? {}, ca: t.ca, servername: 'localhost', agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - start) / 1e6) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

async function load(t: Target, ms: number): Promise<{ rps: number; p50: number; p99: number }> {
  // warm-up: one request per client (TLS handshakes)
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => once(t, t.agents[i % t.agents.length]!)));
  const lat: number[] = [];
  const end = Date.now() + ms;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, i) => {
      const agent = t.agents[i % t.agents.length]!;
      while (Date.now() < end) lat.push(await once(t, agent));
    }),
  );
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  lat.sort((a, b) => a - b);
  return { rps: lat.length / secs, p50: percentile(lat, 50), p99: percentile(lat, 99) };
}

const pem = (label: string, der: ArrayBuffer) => `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').trimEnd()}\n-----END ${label}-----\n`;

export async function figures(opts: BenchOptions): Promise<Figure[]> {
  const ms = opts.quick ? 1000 : 4000;
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-api-'));
  const env = { DESFIRE_VAULT_PASSPHRASE: 'bench passphrase 0123', DESFIRE_CMS_HTTP_PORT: '0', DESFIRE_CMS_LOG_LEVEL: 'warn' };
  const { config } = loadConfig({ env, overrides: { dataDir } });
  config.limits = { ...config.limits, operatorRequests: 1_000_000, readerRequests: 1_000_000, anonymousRequests: 1_000_000 };
  const cms = await buildCmsApp(config, resolveSecrets(config, env), { logDestination: { write: () => true } as unknown as NodeJS.WritableStream });
  const server = await startServer(cms.deps, { host: '127.0.0.1', port: 0, tls: cms.tls! });
  const ca = cms.ca!.certificatePem;
  const out: Figure[] = [];
  try {
    // baseline: a bare node:https server answering a small JSON body
    const bare = createServer({ cert: cms.tls!.cert, key: cms.tls!.key }, (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end('{"status":"ok"}');
    });
    await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
    const barePort = (bare.address() as { port: number }).port;
    const agent = () => new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const base = await load({ port: barePort, path: '/', ca, agents: [agent()] }, ms);
    bare.close();

    const health = await load({ port: server.port, path: '/healthz', ca, agents: [agent()] }, ms);
    out.push({ name: 'api.healthz_https_rps', value: health.rps, unit: 'req/s', baseline: { name: 'node:https bare JSON', value: base.rps }, note: `p50 ${health.p50.toFixed(1)} ms, p99 ${health.p99.toFixed(1)} ms (bare: p99 ${base.p99.toFixed(1)} ms)` });

    const token = cms.bootstrapToken!;
    const op = await load({ port: server.port, path: '/v1/tokens/self', ca, agents: [agent()], headers: { authorization: `Bearer ${token}` } }, ms);
    out.push({ name: 'api.operator_call_rps', value: op.rps, unit: 'req/s', baseline: { name: 'api.healthz_https_rps', value: health.rps }, note: `p50 ${op.p50.toFixed(1)} ms, p99 ${op.p99.toFixed(1)} ms` });

    // 50 enrolled readers, each with its own client certificate and connection
    x509.cryptoProvider.set(webcrypto as never);
    const readers = cms.deps.domain!.readers;
    const agents: Agent[] = [];
    for (let i = 0; i < CONCURRENCY; i++) {
      const id = `bench-${i}`;
      await readers.register(id, id);
      const { code } = await createEnrolmentCode(cms.deps.pki!.codes, { readerId: id, createdBy: 'bench' });
      const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys: keys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
      const e = await enrolReader(cms.deps.pki!.ca, cms.deps.pki!.codes, { csrPem: csr.toString('pem'), code });
      await readers.attachCertificate(id, { serial: e.serial, pem: e.certificatePem, notAfter: e.notAfter.getTime() });
      agents.push(new Agent({ keepAlive: true, maxSockets: 1, cert: e.certificatePem, key: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) }));
    }
    const rd = await load({ port: server.port, path: '/v1/readers/self', ca, agents }, ms);
    out.push({ name: 'api.reader_mtls_call_rps', value: rd.rps, unit: 'req/s', baseline: { name: 'api.healthz_https_rps', value: health.rps }, note: `50 readers, p50 ${rd.p50.toFixed(1)} ms, p99 ${rd.p99.toFixed(1)} ms` });
    out.push({ name: 'api.reader_mtls_call_p99', value: rd.p99, unit: 'ms' });
    for (const a of agents) a.destroy();
  } finally {
    await server.close();
    await cms.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return out;
}

// End-to-end harness: the whole CMS (composition root + station module) over real HTTPS with
// mTLS on 127.0.0.1, the campus layout registered, enrolled readers (a station and one runtime
// reader per tenant), and in-process virtual cards. Consent is enforced (the CMS default): whenever a
// layout is registered through `op`, each of its tenants' admins grants standing install/rotate/delete
// authorisations for its applications (test/helpers/consent.ts), as a tenant admin would.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as x509 from '@peculiar/x509';
import { type CmsApp, buildCmsApp } from '../../src/cms/app.js';
import { type RunningServer, startServer } from '../../src/cms/api/server.js';
import { loadConfig, resolveSecrets } from '../../src/cms/config/index.js';
import { MemoryStationAudit } from '../../src/cms/jobs/audit.js';
import { attachStation, type StationServices } from '../../src/cms/jobs/module.js';
import { CmsClient } from '../../src/reader/station/client.js';
import { grantStandingConsent } from '../helpers/consent.js';

export const CAMPUS = readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8');
export const CAMPUS_AIDS = ['A1C001', 'CAFE01', '11B001', '7A0001'];
export const TENANT_OF: Record<string, string> = { A1C001: 'access', CAFE01: 'cafeteria', '11B001': 'library', '7A0001': 'transit' };

export interface Res {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies
  body: any;
}

export interface E2e {
  cms: CmsApp;
  station: StationServices;
  audit: MemoryStationAudit;
  server: RunningServer;
  admin: string;
  ca: string;
  logLines: string[];
  op(method: string, path: string, body?: unknown, contentType?: string): Promise<Res>;
  /** Register a reader, grant roles, enrol it (CSR + one-time code): an mTLS client. */
  reader(id: string, roles: { aid: string; keyNo: number; operations: string[] }[]): Promise<CmsClient>;
  close(): Promise<void>;
}

async function keyAndCsr(): Promise<{ keyPem: string; csr: string }> {
  x509.cryptoProvider.set(webcrypto as never);
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=reader', keys: keys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
  return { keyPem, csr: csr.toString('pem') };
}

export async function startE2e(env: Record<string, string> = {}, opts: { limits?: boolean } = {}): Promise<E2e> {
  const dataDir = mkdtempSync(join(tmpdir(), 'e2e-'));
  const fullEnv: Record<string, string> = { DESFIRE_CMS_HTTP_PORT: '0', DESFIRE_VAULT_PASSPHRASE: 'e2e vault passphrase 0123', ...env };
  if (opts.limits === false) {
    fullEnv.DESFIRE_CMS_LIMIT_READER_REQUESTS = '1000000';
    fullEnv.DESFIRE_CMS_LIMIT_OPERATOR_REQUESTS = '1000000';
  }
  const { config } = loadConfig({ env: fullEnv, overrides: { dataDir } });
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      logLines.push(...chunk.toString('utf8').split('\n').filter((l: string) => l.length > 0));
      cb();
    },
  });
  config.logging.level = 'warn';
  const cms = await buildCmsApp(config, resolveSecrets(config, fullEnv), { logDestination: sink });
  const audit = new MemoryStationAudit();
  const station = await attachStation(cms, { audit });
  const server = await startServer(cms.deps, { host: '127.0.0.1', port: 0, ...(cms.tls ? { tls: cms.tls } : {}) });
  const ca = cms.ca!.certificatePem;
  const admin = cms.bootstrapToken ?? (await cms.deps.tokens.create({ label: 'e2e', roles: ['issuer_admin'], tenants: ['*'], createdBy: null })).token;
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 4 });
  const clients: CmsClient[] = [];
  const request = (method: string, path: string, body?: unknown, contentType?: string): Promise<Res> => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string> = { authorization: `Bearer ${admin}` };
    if (payload !== undefined) {
      headers['content-type'] = contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: server.port, method, path, headers, ca, servername: 'localhost', agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = text;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  };
  const granted = new Set<string>();
  const op = async (method: string, path: string, body?: unknown, contentType?: string): Promise<Res> => {
    const r = await request(method, path, body, contentType);
    if (method === 'POST' && path === '/v1/layouts' && r.status === 201) await grantStandingConsent(server.app, admin, { granted });
    return r;
  };
  return {
    cms,
    station,
    audit,
    server,
    admin,
    ca,
    logLines,
    op,
    async reader(id, roles) {
      const reg = await op('POST', '/v1/readers', { id, name: id });
      if (reg.status !== 201) throw new Error(`register ${id}: ${reg.status} ${JSON.stringify(reg.body)}`);
      for (const r of roles) {
        const g = await op('POST', `/v1/readers/${id}/roles`, { tenantId: TENANT_OF[r.aid], aid: r.aid, keyNo: r.keyNo, operations: r.operations });
        if (g.status !== 201) throw new Error(`role ${id}: ${g.status} ${JSON.stringify(g.body)}`);
      }
      const code = await op('POST', `/v1/readers/${id}/enrolment-codes`, {});
      const { keyPem, csr } = await keyAndCsr();
      const enrolled = await op('POST', '/v1/enrol', { csr, code: code.body.code });
      if (enrolled.status !== 201) throw new Error(`enrol ${id}: ${enrolled.status} ${JSON.stringify(enrolled.body)}`);
      const c = new CmsClient({ host: '127.0.0.1', port: server.port, ca, cert: enrolled.body.certificate, key: keyPem });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.close();
      agent.destroy();
      await server.close();
      await cms.close();
    },
  };
}

// The demo's CMS: the real composition root (SQLite in the data dir, the embedded vault initialised
// and unsealed with a generated passphrase, memory sessions, a CA issuing the server certificate)
// plus station jobs and key delivery, served over real HTTPS with mTLS on 127.0.0.1 (ephemeral
// port). Operators talk to it with a bearer token; readers enrol over the API (CSR + one-time
// code) and keep their key in an encrypted keystore under the data dir.
import 'reflect-metadata';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type CmsApp, buildCmsApp } from '../../cms/app.js';
import { type RunningServer, startServer } from '../../cms/api/server.js';
import { loadConfig, resolveSecrets } from '../../cms/config/index.js';
import { attachStation, type StationServices } from '../../cms/jobs/module.js';
import { MemoryStationAudit } from '../../cms/jobs/audit.js';
import { ReaderKeystore } from '../../reader/keystore.js';
import { enrol } from '../../reader/cms-client.js';
import { CmsClient as StationCms } from '../../reader/station/client.js';

export interface Res {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies
  body: any;
}

export interface DemoRole {
  tenantId: string;
  aid: string;
  keyNo: number;
  operations: string[];
}

export interface EnrolledReader {
  id: string;
  dir: string;
  keystore: ReaderKeystore;
  roles: DemoRole[];
}

/** Demo-grade scrypt for reader keystores (the passphrase is generated; the real default is slower). */
const DEMO_SCRYPT = { N: 1 << 12, r: 8, p: 1 };

export class DemoCms {
  server: RunningServer | undefined;
  port = 0;
  private readonly agent = new HttpsAgent({ keepAlive: true, maxSockets: 4 });
  private constructor(
    readonly app: CmsApp,
    readonly station: StationServices,
    /** Every station/delivery audit event (besides the signed audit log). */
    readonly events: MemoryStationAudit,
    readonly dataDir: string,
    readonly admin: string,
    readonly passphrase: Uint8Array,
  ) {}

  static async start(dataDir: string, vaultPassphrase: string, readerPassphrase: Uint8Array): Promise<DemoCms> {
    const env: Record<string, string> = {
      DESFIRE_CMS_HTTP_PORT: '0',
      DESFIRE_VAULT_PASSPHRASE: vaultPassphrase,
      // one process drives the whole fleet: the per-client rate limits are for real deployments
      DESFIRE_CMS_LIMIT_READER_REQUESTS: '1000000',
      DESFIRE_CMS_LIMIT_OPERATOR_REQUESTS: '1000000',
    };
    const { config } = loadConfig({ env, overrides: { dataDir } });
    config.logging.level = 'warn';
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    // consent is enforced (the default, as in `desfire-cms server`): no job or campaign without the tenant's authorisation
    const app = await buildCmsApp(config, resolveSecrets(config, env), { logDestination: sink });
    try {
      const events = new MemoryStationAudit();
      const station = await attachStation(app, { audit: events });
      const admin = app.bootstrapToken ?? (await app.deps.tokens.create({ label: 'demo', roles: ['issuer_admin'], tenants: ['*'], createdBy: null })).token;
      const d = new DemoCms(app, station, events, dataDir, admin, readerPassphrase);
      await d.listen();
      return d;
    } catch (e) {
      await app.close();
      throw e;
    }
  }

  get ca(): string {
    return this.app.ca!.certificatePem;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** Start listening (again: on the same port as before, so enrolled readers find it). */
  async listen(): Promise<void> {
    if (this.server) return;
    this.server = await startServer(this.app.deps, { host: '127.0.0.1', port: this.port, shutdownGraceMs: 2000, ...(this.app.tls ? { tls: this.app.tls } : {}) });
    this.port = this.server.port;
  }

  /** Stop listening: the CMS is unreachable for every reader (the process keeps its state). */
  async goOffline(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    this.agent.destroy();
    await s?.close();
  }

  /** A tenant admin's API token for `tenant` (scoped to that tenant only). */
  async tenantAdminToken(tenant: string): Promise<string> {
    return (await this.app.deps.tokens.create({ label: `demo-${tenant}-admin`, roles: ['tenant_admin'], tenants: [tenant], createdBy: null })).token;
  }

  /** An operator call, with the issuer_admin bearer token unless another token is given. */
  op(method: string, path: string, body?: unknown, contentType?: string, token: string = this.admin): Promise<Res> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (payload !== undefined) {
      headers['content-type'] = contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: this.port, method, path, headers, ca: this.ca, servername: 'localhost', agent: this.agent }, (res) => {
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
  }

  /** Register a reader, grant its roles and enrol it over the API: CSR from a fresh keystore + one-time code. */
  async enrolReader(id: string, roles: DemoRole[]): Promise<EnrolledReader> {
    const expect = (what: string, r: Res, _status: number) => {
      if (r.status < 200 || r.status >= 300) throw new Error(`${what} ${id}: HTTP ${r.status} ${JSON.stringify(r.body?.error ?? r.body)}`);
    };
    expect('register reader', await this.op('POST', '/v1/readers', { id, name: id }), 201);
    for (const r of roles) expect('grant role to', await this.op('POST', `/v1/readers/${id}/roles`, r), 201);
    const code = await this.op('POST', `/v1/readers/${id}/enrolment-codes`, {});
    expect('enrolment code for', code, 201);
    const dir = join(this.dataDir, 'readers', id);
    const keystore = ReaderKeystore.create(dir, this.passphrase, DEMO_SCRYPT);
    const res = await enrol({ url: this.url, ca: this.ca, servername: 'localhost' }, await keystore.csr(id), code.body.code as string);
    keystore.saveCertificates(res.certificate, res.caCertificate);
    return { id, dir, keystore, roles };
  }

  /** The station protocol client of an enrolled reader (mTLS). */
  stationClient(r: EnrolledReader): StationCms {
    const c = r.keystore.certificates();
    return new StationCms({ host: '127.0.0.1', port: this.port, ca: c.ca, cert: c.cert, key: r.keystore.tlsKeyPem(), servername: 'localhost', maxSockets: 8 });
  }

  async close(): Promise<void> {
    await this.goOffline();
    await this.app.close();
  }
}

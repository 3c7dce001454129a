// The "done when", end to end with real processes only: `desfire-cms server` spawned
// (SQLite, embedded vault, HTTPS + mTLS), operators talking to it over its API with the bootstrap
// token, readers enrolled with `desfire-cms reader enrol`, cards personalised by a station with
// `desfire-cms reader job`, a card attached through pcscd + vpcd by `desfire-cms card serve`, and
// `desfire-cms reader run --pcsc "Virtual PCD 00 00" --tx access` deciding "granted" with the key
// delivered online. A card of another tenant and a card the CMS never issued are refused.
// Skips with a reason without pcscd/vpcd; fails under CI=true.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadImageSync, saveImageAtomicSync } from '../../src/card/image-file.js';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { DesfireClient } from '../../src/core/client/client.js';
import { ReaderUnsealer } from '../../src/custody/sealed.js';
import { CmsClient } from '../../src/reader/cms-client.js';
import { HttpKeySource } from '../../src/reader/http-keys.js';
import { ReaderKeystore } from '../../src/reader/keystore.js';
import { encodeCredential } from '../../src/reader/transactions.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { VPCD, fileExists, requireComponent } from '../helpers/system.js';
import { lockSlot0, vpcdListening, waitFor } from './vpcd-slot.js';

const [VHOST, VPORT] = [VPCD.split(':')[0] || '127.0.0.1', Number(VPCD.split(':')[1] || 35963)];
const READER = 'Virtual PCD 00 00';
const CLI = ['--import', 'tsx', 'src/cli/dev.ts'];

const ok = requireComponent('pcscd', fileExists('/run/pcscd/pcscd.comm', 'pcscd socket')) && requireComponent('vpcd (slot 0)', await vpcdListening(VHOST, VPORT));

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** One `desfire-cms` command as a child process, to its end. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [...CLI, ...args], { cwd: process.cwd(), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.once('error', reject);
    c.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
}

describe.skipIf(!ok)('desfire-cms server + desfire-cms reader run --pcsc (pcscd + vpcd + card serve), all spawned', () => {
  let dir: string;
  let server: ChildProcess;
  let serverOut = '';
  let serve: ChildProcess | undefined;
  let release: (() => void) | undefined;
  let url: URL;
  let ca: string;
  let caFile: string;
  let admin: string;
  const pass = 'cli e2e reader passphrase';
  let passFile: string;
  const common = () => ['--cms', url.origin, '--servername', 'localhost', '--passphrase-file', passFile];

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies of many shapes
  function api(method: string, path: string, body?: unknown, o: { token?: string; type?: string } = {}): Promise<{ status: number; body: any }> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? admin}` };
    if (payload !== undefined) {
      headers['content-type'] = o.type ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, method, path, headers, ca, servername: 'localhost', agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  async function ok2xx(what: string, p: Promise<{ status: number; body: unknown }>): Promise<void> {
    const r = await p;
    if (r.status < 200 || r.status >= 300) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  }

  /** Register a reader with its roles (operator API), then `desfire-cms reader enrol` with a one-time code file. */
  async function enrolReader(id: string, roles: { tenantId: string; aid: string; keyNo: number; operations: string[] }[]): Promise<string> {
    await ok2xx(`register ${id}`, api('POST', '/v1/readers', { id, name: id }));
    for (const r of roles) await ok2xx(`role for ${id}`, api('POST', `/v1/readers/${id}/roles`, r));
    const code = await api('POST', `/v1/readers/${id}/enrolment-codes`, {});
    expect(code.status).toBe(201);
    const codeFile = join(dir, `${id}.code`);
    writeFileSync(codeFile, code.body.code as string, { mode: 0o600 });
    const rdir = join(dir, id);
    const r = await cli(['reader', 'enrol', '--dir', rdir, '--cms', url.origin, '--ca', caFile, '--id', id, '--code-file', codeFile, '--passphrase-file', passFile, '--servername', 'localhost']);
    expect(r.err).toBe('');
    expect(r.out).toMatch(new RegExp(`^enrolled reader ${id}: certificate serial`));
    expect(r.code).toBe(0);
    return rdir;
  }

  /** A blank card personalised by `desfire-cms reader job` (issue, then install each AID), activated over the API. */
  async function personalise(station: string, aids: string[]): Promise<{ uid: string; image: string }> {
    const card = VirtualCard.create();
    const image = join(dir, `card-${card.uid}.json`);
    saveImageAtomicSync(image, card.toImage());
    const uid = Buffer.from(card.uid).toString('hex').toUpperCase();
    for (const args of [['--kind', 'issue', '--no-random-uid'], ...aids.map((aid) => ['--kind', 'install', '--aid', aid])]) {
      const r = await cli(['reader', 'job', '--dir', station, ...common(), '--image', image, ...args]);
      expect(r.err).toBe('');
      expect(r.out).toMatch(/: ok, recorded \(baton #\d+\)$/m);
      expect(r.code).toBe(0);
    }
    await ok2xx(`activate ${uid}`, api('POST', `/v1/cards/${uid}/state`, { state: 'active' }));
    return { uid, image };
  }

  async function serveImage(file: string): Promise<void> {
    await stopServe();
    let out = '';
    serve = spawn(process.execPath, [...CLI, 'card', 'serve', '--vpcd', `${VHOST}:${VPORT}`, '--image', file], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
    serve.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    serve.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => /attached to vpcd/.test(out) || serve!.exitCode !== null, 30_000);
    if (!/attached to vpcd/.test(out)) throw new Error(`card serve did not attach: ${out}`);
  }

  async function stopServe(): Promise<void> {
    const s = serve;
    serve = undefined;
    if (!s || s.exitCode !== null || s.signalCode !== null) return;
    s.kill('SIGTERM');
    await waitFor(() => s.exitCode !== null || s.signalCode !== null, 10_000);
    if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'reader-cli-e2e-'));
    passFile = join(dir, 'passphrase');
    writeFileSync(passFile, pass, { mode: 0o600 });
    const data = join(dir, 'cms');
    server = spawn(process.execPath, [...CLI, 'server', '--data-dir', data, '--host', '127.0.0.1', '--port', '0'], {
      cwd: process.cwd(),
      env: { ...process.env, DESFIRE_VAULT_PASSPHRASE: 'cli e2e vault passphrase 0123', DESFIRE_CMS_METRICS_ENABLED: 'false', DESFIRE_CMS_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (d: Buffer) => (serverOut += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (serverOut += d.toString()));
    await waitFor(() => /bootstrap issuer_admin token: \S+/.test(serverOut) || server.exitCode !== null, 90_000);
    const m = /listening on (https:\/\/\S+)/.exec(serverOut);
    const t = /bootstrap issuer_admin token: (\S+)/.exec(serverOut);
    if (!m || !t) throw new Error(`desfire-cms server did not start: ${serverOut}`);
    url = new URL(m[1]!);
    admin = t[1]!;
    caFile = join(data, 'pki', 'ca.pem');
    ca = readFileSync(caFile, 'utf8');
    await ok2xx('layout', api('POST', '/v1/layouts', readFileSync('examples/campus.yaml', 'utf8'), { type: 'application/yaml' }));
    // each tenant's own admin authorises the issuer's station to install its application
    for (const [tenant, aid] of [
      ['access', 'A1C001'],
      ['cafeteria', 'CAFE01'],
    ] as const) {
      const tok = await api('POST', '/v1/tokens', { label: `${tenant} admin`, roles: ['tenant_admin'], tenants: [tenant] });
      expect(tok.status).toBe(201);
      await ok2xx(`authorise ${aid}`, api('POST', '/v1/authorisations', { tenant, aid, operation: 'install', profile: '*', ttlSeconds: 3600 }, { token: tok.body.token as string }));
    }
    release = await lockSlot0();
  }, 240_000);

  afterAll(async () => {
    await stopServe();
    release?.();
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await waitFor(() => server.exitCode !== null, 20_000);
      if (server.exitCode === null) server.kill('SIGKILL');
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('a reader enrolled and started from the CLI decides "granted" on a card attached through pcscd + vpcd; another tenant\'s card and an unknown card are refused', async () => {
    const station = await enrolReader('station-1', [
      { tenantId: 'access', aid: 'A1C001', keyNo: 0, operations: ['issue', 'install'] },
      { tenantId: 'cafeteria', aid: 'CAFE01', keyNo: 0, operations: ['install'] },
    ]);
    const office = await enrolReader('office-1', [{ tenantId: 'access', aid: 'A1C001', keyNo: 2, operations: ['deliver'] }]);
    const door = await enrolReader('door-1', [{ tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver', 'offline'] }]);

    // the access card: personalised by the station, its credential (zones 1 and 3) written by the
    // badge office with key 2 delivered online and sealed to the office reader
    const access = await personalise(station, ['A1C001']);
    {
      const ks = ReaderKeystore.open(office, new TextEncoder().encode(pass));
      const c = ks.certificates();
      const cms = new CmsClient({ url: url.origin, ca: c.ca, servername: 'localhost' }, { key: ks.tlsKeyPem(), cert: c.cert });
      try {
        const d = await new HttpKeySource(cms).fetch({ tenant: 'access', aid: 'A1C001', uid: access.uid, keyNo: 2 });
        const k2 = await new ReaderUnsealer('office-1', ks.privateKey).unseal(d.sealed, d.binding);
        const card = VirtualCard.fromImage(loadImageSync(access.image));
        const dc = new DesfireClient(new InProcessTransport(card));
        await dc.selectApplication(0xa1c001);
        await dc.authenticate(2, k2, { method: 'ev2' });
        const now = Math.floor(Date.now() / 1000);
        await dc.writeData(1, 0, encodeCredential({ version: 1, blocked: false, zones: 0b1010, validFrom: now - 60, validUntil: now + 3600, holder: new TextEncoder().encode('staff-0000000042') }), { comm: 'full' });
        k2.fill(0);
        card.reset();
        saveImageAtomicSync(access.image, card.toImage());
      } finally {
        cms.close();
      }
    }
    // the lifecycle route refuses what the lifecycle does not allow, and unknown cards
    const again = await api('POST', `/v1/cards/${access.uid}/state`, { state: 'active' });
    expect([again.status, again.body.error?.code]).toEqual([409, 'ERR_DOMAIN_TRANSITION']);
    expect((await api('POST', '/v1/cards/04000000000001/state', { state: 'active' })).status).toBe(404);
    // a card of another tenant (cafeteria only) and a card the CMS never issued
    const other = await personalise(station, ['CAFE01']);
    const unknownCard = VirtualCard.create();
    const unknown = { uid: Buffer.from(unknownCard.uid).toString('hex').toUpperCase(), image: join(dir, 'unknown.json') };
    saveImageAtomicSync(unknown.image, unknownCard.toImage());

    const run = (zone: number) => cli(['reader', 'run', '--dir', door, ...common(), '--pcsc', READER, '--max', '1', '--timeout', '60', '--tx', 'access', '--zone', String(zone)]);

    await serveImage(access.image);
    const granted = await run(3);
    expect(granted.err).toBe('');
    expect(granted.out.trim()).toBe(`access-check card ${access.uid}: granted (online, baton #1)`);
    expect(granted.code).toBe(0);
    // same card, a zone its credential does not open: the reader decides "denied"
    const zone = await run(2);
    expect(zone.out.trim()).toBe(`access-check card ${access.uid}: denied:zone (online, baton #2)`);
    expect(zone.code).toBe(1);

    await serveImage(other.image);
    const refusedOther = await run(3);
    expect(refusedOther.out).toBe('');
    expect(refusedOther.err.trim()).toMatch(/^refused: ERR_[A-Z_]+: /);
    expect(refusedOther.err).not.toMatch(/granted/);
    expect(refusedOther.code).toBe(1);

    await serveImage(unknown.image);
    const refusedUnknown = await run(3);
    expect(refusedUnknown.out).toBe('');
    expect(refusedUnknown.err.trim()).toMatch(/^refused: ERR_[A-Z_]+: .*unknown/);
    expect(refusedUnknown.code).toBe(1);

    // every decision reached the CMS in the door's baton (synced by `reader run` before it exits)
    const baton = await api('GET', '/v1/readers/door-1/baton');
    expect(baton.status).toBe(200);
    const entries = baton.body.entries as { cardUid: string; op: string; result: string }[];
    expect(entries.slice(0, 2).map((e) => [e.cardUid, e.op, e.result])).toEqual([
      [access.uid, 'access-check', 'granted'],
      [access.uid, 'access-check', 'denied:zone'],
    ]);
    expect(entries.length).toBe(4);
    expect(entries.slice(2).map((e) => e.cardUid)).toEqual([other.uid, unknown.uid]);
    expect(entries.slice(2).every((e) => e.result !== 'granted')).toBe(true);
  }, 400_000);
});

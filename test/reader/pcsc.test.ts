// The reader agent on the real PC/SC path: pcscd + vsmartcard's vpcd, a campus card attached by a
// spawned `desfire-cms card serve` (vpcd slot 0, reader "Virtual PCD 00 00"), the agent's card loop
// waiting for the card, running the access-control transaction (EV2 + full-mode read + decide)
// and a purse debit through pcsclite, with keys sealed to the reader and the baton synced to the
// CMS over mTLS. Skips with a reason when pcscd/vpcd are absent (fails under CI=true).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadImageSync, saveImageAtomicSync } from '../../src/card/image-file.js';
import { ReaderUnsealer } from '../../src/custody/sealed.js';
import { ReaderAgent } from '../../src/reader/agent.js';
import { AuditBaton } from '../../src/reader/baton.js';
import { CmsClient, enrol } from '../../src/reader/cms-client.js';
import { ReaderKeystore } from '../../src/reader/keystore.js';
import { runPcsc } from '../../src/reader/runtime.js';
import type { TxResult } from '../../src/reader/transactions.js';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { type CmsHarness, startCms } from '../cms/api-harness.js';
import { startStationCms } from './e2e-helpers.js';
import { VPCD, fileExists, requireComponent } from '../helpers/system.js';
import { CAMPUS_ROLES, makeCard, SealingKeySource, type TestCard } from './fixture.js';
import { lockSlot0, vpcdListening, waitFor } from './vpcd-slot.js';

const [VHOST, VPORT0] = [VPCD.split(':')[0] || '127.0.0.1', Number(VPCD.split(':')[1] || 35963)];
const PORT = VPORT0; // slot 0 (test/transport/pcsc-real.test.ts uses slot 1)
const READER = 'Virtual PCD 00 00';

const ok = requireComponent('pcscd', fileExists('/run/pcscd/pcscd.comm', 'pcscd socket')) && requireComponent('vpcd (slot 0)', await vpcdListening(VHOST, PORT));

describe.skipIf(!ok)('reader agent over PC/SC (pcscd + vpcd + card serve)', () => {
  let h: CmsHarness;
  let dir: string;
  let image: string;
  let serve: ChildProcess;
  let out = '';
  let card: TestCard;
  let release: (() => void) | undefined;

  beforeAll(async () => {
    release = await lockSlot0();
    h = await startCms();
    dir = mkdtempSync(join(tmpdir(), 'reader-pcsc-'));
    image = join(dir, 'card.json');
    card = await makeCard({ balance: 500 });
    saveImageAtomicSync(image, card.card.toImage());
    await serveImage(image);
  }, 330_000);

  async function serveImage(file: string): Promise<void> {
    if (serve && serve.exitCode === null) {
      serve.kill('SIGTERM');
      await waitFor(() => serve.exitCode !== null || serve.signalCode !== null, 10_000);
    }
    out = '';
    serve = spawn(process.execPath, ['--import', 'tsx', 'src/cli/dev.ts', 'card', 'serve', '--vpcd', `${VHOST}:${PORT}`, '--image', file], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
    serve.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    serve.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => /attached to vpcd/.test(out) || serve.exitCode !== null, 30_000);
    if (!/attached to vpcd/.test(out)) throw new Error(`card serve did not attach: ${out}`);
  }

  afterAll(async () => {
    if (serve && serve.exitCode === null) serve.kill('SIGTERM');
    await waitFor(() => serve?.exitCode !== null, 5_000);
    if (serve && serve.exitCode === null) serve.kill('SIGKILL');
    release?.();
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('waits for the card, runs the access check and a purse debit through pcsclite; the baton reaches the CMS', async () => {
    expect((await h.call('POST', '/v1/readers', { token: h.admin, body: { id: 'pcsc-door', name: 'PC/SC door' } })).status).toBe(201);
    const code = (await h.call('POST', '/v1/readers/pcsc-door/enrolment-codes', { token: h.admin, body: {} })).body.code as string;
    const url = `https://127.0.0.1:${h.server.port}`;
    const ks = ReaderKeystore.create(join(dir, 'reader'), new TextEncoder().encode('pcsc reader passphrase'), { N: 1 << 12, r: 8, p: 1 });
    const r = await enrol({ url, ca: h.cms.ca!.certificatePem, servername: 'localhost' }, await ks.csr('pcsc-door'), code);
    ks.saveCertificates(r.certificate, r.caCertificate);
    const cms = new CmsClient({ url, ca: r.caCertificate, servername: 'localhost' }, { key: ks.tlsKeyPem(), cert: r.certificate });
    const baton = AuditBaton.open(join(dir, 'reader'));
    const agent = new ReaderAgent({ readerId: 'pcsc-door', roles: CAMPUS_ROLES, baton, unsealer: new ReaderUnsealer('pcsc-door', ks.privateKey), keys: new SealingKeySource('pcsc-door', ks.publicJwk, () => [card], cms), cms });

    const results: (TxResult | Error)[] = [];
    expect(await runPcsc(agent, READER, { kind: 'access', zone: 1 }, (x) => results.push(x), { max: 1, timeoutMs: 20_000 })).toBe(1);
    expect(await runPcsc(agent, READER, { kind: 'purse', amount: 125 }, (x) => results.push(x), { max: 1, timeoutMs: 20_000 })).toBe(1);
    expect(results).toMatchObject([
      { op: 'access-check', result: 'granted', mode: 'online', uid: card.uid },
      { op: 'purse-debit', result: 'ok:125:375', value: 375 },
    ]);
    // the debit went through pcscd to the served card, which saved its image
    const saved = loadImageSync(image);
    const purse = saved.apps.find((a) => a.aid === 'CAFE01');
    expect(purse?.files.find((f) => f.fileNo === 1)?.value).toBe(375);

    await agent.sync();
    const stored = (await h.call('GET', '/v1/readers/pcsc-door/baton', { token: h.admin })).body.entries as { op: string; result: string }[];
    expect(stored.map((e) => [e.op, e.result])).toEqual([
      ['access-check', 'granted'],
      ['purse-debit', 'ok:125:375'],
    ]);
    agent.close();
    cms.close();
  }, 90_000);

  it('`desfire-cms reader run --pcsc` against the CMS (station-personalised card, key delivered online): access granted', async () => {
    const s = await startStationCms();
    try {
      const { card: c, uid } = await s.personalisedCard();
      const img = join(dir, 'station-card.json');
      saveImageAtomicSync(img, c.toImage());
      await serveImage(img);
      const door = await s.enrolled('pcsc-cli-door', [{ tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver', 'offline'] }]);
      const lines: string[] = [];
      const errs: string[] = [];
      const io: CliIO = { out: (l) => lines.push(l), err: (l) => errs.push(l), env: {}, cwd: process.cwd() };
      const rc = await main(['reader', 'run', '--dir', door.dir, '--cms', s.url, '--servername', 'localhost', '--passphrase-file', door.passFile, '--pcsc', READER, '--max', '1', '--timeout', '20', '--tx', 'access', '--zone', '3'], io);
      expect(errs).toEqual([]);
      expect(rc).toBe(0);
      expect(lines).toEqual([`access-check card ${uid}: granted (online, baton #1)`]);
    } finally {
      await s.close();
    }
  }, 120_000);
});

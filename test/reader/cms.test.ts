// The reader agent against the whole CMS over real HTTPS + mTLS: enrolment (keystore, CSR,
// one-time code), baton sync (idempotent; tampered/gap/fork/reorder → alerts), denylist, CMS
// stopped → offline until the TTL, revoked while offline → refused at first contact and wiped,
// kill -9 of a real reader process mid-sync → nothing lost or doubled.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/cms/api/server.js';
import { ReaderUnsealer } from '../../src/custody/sealed.js';
import { ReaderAgent } from '../../src/reader/agent.js';
import { AuditBaton, type BatonEntry, batonHash } from '../../src/reader/baton.js';
import { CmsClient, enrol } from '../../src/reader/cms-client.js';
import { ReaderKeystore } from '../../src/reader/keystore.js';
import { accessCheck } from '../../src/reader/transactions.js';
import { type CmsHarness, startCms } from '../cms/api-harness.js';
import { CAMPUS_ROLES, makeCard, SealingKeySource, type TestCard } from './fixture.js';

const PASS = new TextEncoder().encode('reader keystore passphrase');
const FAST_SCRYPT = { N: 1 << 12, r: 8, p: 1 };

let h: CmsHarness;
let server: RunningServer;
let url: string;
let caPem: string;
let cards: TestCard[];

async function enrolReader(id: string): Promise<{ ks: ReaderKeystore; cms: CmsClient; dir: string }> {
  expect((await h.call('POST', '/v1/readers', { token: h.admin, body: { id, name: `reader ${id}` } })).status).toBe(201);
  const code = (await h.call('POST', `/v1/readers/${id}/enrolment-codes`, { token: h.admin, body: {} })).body.code as string;
  const dir = mkdtempSync(join(tmpdir(), 'reader-'));
  const ks = ReaderKeystore.create(dir, PASS, FAST_SCRYPT);
  const r = await enrol({ url, ca: caPem, servername: 'localhost' }, await ks.csr(id), code);
  expect(r.readerId).toBe(id);
  ks.saveCertificates(r.certificate, r.caCertificate);
  const again = ReaderKeystore.open(dir, PASS);
  expect(again.readerId()).toBe(id);
  const c = again.certificates();
  return { ks: again, cms: new CmsClient({ url, ca: c.ca, servername: 'localhost' }, { key: again.tlsKeyPem(), cert: c.cert }), dir };
}

async function alerts(rule: string): Promise<{ rule: string; subject: string; message: string }[]> {
  return h.cms.db.db.selectFrom('audit_alerts').selectAll().where('rule', '=', rule).execute();
}

beforeAll(async () => {
  h = await startCms();
  server = h.server;
  url = `https://127.0.0.1:${server.port}`;
  caPem = h.cms.ca!.certificatePem;
  cards = [await makeCard({ balance: 100 }), await makeCard()];
}, 120_000);

afterAll(async () => {
  await server.close().catch(() => undefined);
  await h.cms.close();
});

describe('reader agent with the CMS (HTTPS + mTLS)', () => {
  it('enrolment: keystore file 0600 and encrypted; wrong passphrase refused; CSR + code → certificate; code single-use', async () => {
    const { ks, dir, cms } = await enrolReader('door-1');
    expect(statSync(join(dir, 'reader-key.json')).mode & 0o777).toBe(0o600);
    expect(() => ReaderKeystore.open(dir, new TextEncoder().encode('wrong passphrase!'))).toThrow(expect.objectContaining({ code: 'ERR_READER_KEYSTORE' }));
    const self = await cms.call<{ reader: { id: string; state: string } }>('GET', '/v1/readers/self');
    expect(self.reader).toMatchObject({ id: 'door-1', state: 'active' });
    // without a client certificate the reader routes are closed
    const anon = new CmsClient({ url, ca: caPem, servername: 'localhost' });
    await expect(anon.call('GET', '/v1/readers/self/sync')).rejects.toMatchObject({ code: 'ERR_READER_REVOKED' });
    anon.close();
    void ks;
    cms.close();
  });

  it('baton sync: every operation reaches the CMS once; a resend is idempotent; a tampered, gapped, forked or reordered baton raises an alert', async () => {
    const { ks, cms } = await enrolReader('door-2');
    const baton = AuditBaton.open(mkdtempSync(join(tmpdir(), 'baton-')));
    const agent = new ReaderAgent({ readerId: 'door-2', roles: CAMPUS_ROLES, baton, unsealer: new ReaderUnsealer('door-2', ks.privateKey), keys: new SealingKeySource('door-2', ks.publicJwk, () => cards, cms), cms });
    await accessCheck(agent, cards[0]!.transport);
    await accessCheck(agent, cards[1]!.transport);
    await agent.sync();
    expect(baton.acknowledged).toBe(2);
    let stored = (await h.call('GET', '/v1/readers/door-2/baton', { token: h.admin })).body.entries as BatonEntry[];
    expect(stored.map((e) => [e.seq, e.op, e.result, e.cardUid])).toEqual([
      [1, 'access-check', 'granted', cards[0]!.uid],
      [2, 'access-check', 'granted', cards[1]!.uid],
    ]);
    // resend (as after a crash before the ack): duplicates, nothing doubled
    const again = await cms.call<{ stored: number; duplicates: number; acked: number }>('POST', '/v1/readers/self/baton', { entries: baton.all() });
    expect(again).toMatchObject({ stored: 0, duplicates: 2, acked: 2 });

    // tampered: an entry whose content no longer matches its hash
    const e3 = baton.append({ time: Date.now(), readerId: 'door-2', cardUid: cards[0]!.uid, aid: 'A1C001', keyNo: 1, keyVersion: 1, op: 'access-check', result: 'denied:zone' });
    const forged = { ...e3, result: 'granted' };
    const t = await cms.raw('POST', '/v1/readers/self/baton', { entries: [forged] });
    expect(t.status).toBe(409);
    expect((t.body as { error: { code: string } }).error.code).toBe('ERR_BATON_TAMPERED');
    expect((await alerts('baton-tampered')).map((a) => a.subject)).toContain('reader:door-2');

    // fork: a re-hashed different entry at a stored seq
    const fork = { ...baton.all()[1]!, result: 'denied:blocked' };
    fork.hash = batonHash(fork.seq, fork, fork.prev);
    expect((await cms.raw('POST', '/v1/readers/self/baton', { entries: [fork] })).status).toBe(409);
    expect(await alerts('baton-fork')).toHaveLength(1);

    // gap: entry 4 without 3
    const e4 = baton.append({ time: Date.now(), readerId: 'door-2', cardUid: '', aid: '', keyNo: -1, keyVersion: -1, op: 'heartbeat', result: 'ok' });
    const g = await cms.raw('POST', '/v1/readers/self/baton', { entries: [e4] });
    expect((g.body as { error: { code: string } }).error.code).toBe('ERR_BATON_GAP');
    expect((await alerts('baton-gap'))[0]!.message).toMatch(/entries 3\.\.3 missing/);

    // reordering: 4 before 3
    const r = await cms.raw('POST', '/v1/readers/self/baton', { entries: [e4, e3] });
    expect((r.body as { error: { code: string } }).error.code).toBe('ERR_BATON_REORDER');
    expect(await alerts('baton-reorder')).toHaveLength(1);

    // the honest baton still syncs; nothing was stored by the refused batches
    await agent.sync();
    stored = (await h.call('GET', '/v1/readers/door-2/baton', { token: h.admin })).body.entries as BatonEntry[];
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(stored[2]!.result).toBe('denied:zone');
    // every accepted entry is in the tamper-evident audit log too, with the batch summary
    const audited = await h.cms.db.db.selectFrom('audit_entries').select(['operation', 'result', 'card_uid']).where('reader_id', '=', 'door-2').orderBy('idx').execute();
    expect(audited.filter((a) => a.operation.startsWith('reader.access-check') || a.operation === 'reader.heartbeat').map((a) => [a.operation, a.result])).toEqual([
      ['reader.access-check', 'granted'],
      ['reader.access-check', 'granted'],
      ['reader.access-check', 'denied:zone'],
      ['reader.heartbeat', 'ok'],
    ]);
    // the batch summaries cover 1..4 without gap or overlap (how the entries were batched depends on timing)
    const sums = await h.cms.db.db.selectFrom('audit_entries').select('details').where('reader_id', '=', 'door-2').where('operation', '=', 'reader.baton').orderBy('idx').execute();
    const ranges = sums.map((x) => JSON.parse(String(x.details)) as { seqFrom: number; seqTo: number });
    expect(ranges[0]!.seqFrom).toBe(1);
    expect(ranges.at(-1)!.seqTo).toBe(4);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]!.seqFrom).toBe(ranges[i - 1]!.seqTo + 1);
    // a retry of the same bad batch does not raise the alert again
    await cms.raw('POST', '/v1/readers/self/baton', { entries: [forged] });
    expect((await alerts('baton-tampered')).filter((a) => a.subject === 'reader:door-2')).toHaveLength(1);
    agent.close();
    cms.close();
  });

  it('connections: baton uploads go over their own keep-alive connection; an upload never takes the delivery connection (no handshake inside a transaction)', async () => {
    const { ks, cms } = await enrolReader('door-conn');
    let handshakes = 0;
    const onConnection = () => handshakes++;
    server.app.server.on('secureConnection', onConnection);
    try {
      const baton = AuditBaton.open(mkdtempSync(join(tmpdir(), 'baton-')), { fsync: 'never' });
      // the key source makes one CMS request per key (GET /sync) on the delivery connection
      const agent = new ReaderAgent({ readerId: 'door-conn', roles: CAMPUS_ROLES, baton, unsealer: new ReaderUnsealer('door-conn', ks.privateKey), keys: new SealingKeySource('door-conn', ks.publicJwk, () => cards, cms), cms });
      await accessCheck(agent, cards[0]!.transport);
      await agent.sync();
      expect(handshakes).toBe(2); // one connection for deliveries, one for uploads
      // an upload and a transaction at the same time, again and again: each on its warm connection
      for (let i = 0; i < 5; i++) {
        agent.record({ cardUid: cards[0]!.uid, aid: 'A1C001', keyNo: 1, keyVersion: 1, op: 'access-check', result: 'granted' });
        await Promise.all([agent.sync(), accessCheck(agent, cards[1]!.transport)]);
      }
      expect(handshakes).toBe(2);
      await agent.sync();
      expect([baton.acknowledged, baton.length]).toEqual([11, 11]);
      agent.close();
    } finally {
      server.app.server.off('secureConnection', onConnection);
      cms.close();
    }
  });

  it('denylist: synced on contact; a denied card is refused before any key is fetched', async () => {
    const { ks, cms } = await enrolReader('door-3');
    const baton = AuditBaton.open(mkdtempSync(join(tmpdir(), 'baton-')));
    const keys = new SealingKeySource('door-3', ks.publicJwk, () => cards, cms);
    const agent = new ReaderAgent({ readerId: 'door-3', roles: CAMPUS_ROLES, baton, unsealer: new ReaderUnsealer('door-3', ks.privateKey), keys, cms });
    expect((await h.call('PUT', `/v1/cards/denylist/${cards[1]!.uid}`, { token: h.admin, body: { reason: 'reported stolen' } })).status).toBe(200);
    await agent.sync();
    const calls = keys.calls;
    await expect(accessCheck(agent, cards[1]!.transport)).rejects.toMatchObject({ code: 'ERR_READER_DENYLISTED' });
    expect(keys.calls).toBe(calls);
    expect(baton.all().at(-1)).toMatchObject({ cardUid: cards[1]!.uid, result: 'refused:ERR_READER_DENYLISTED' });
    expect((await h.call('DELETE', `/v1/cards/denylist/${cards[1]!.uid}`, { token: h.admin })).status).toBe(200);
    await agent.sync();
    expect((await accessCheck(agent, cards[1]!.transport)).result).toBe('granted');
    agent.close();
    cms.close();
  });

  it('CMS stopped → offline until the TTL, then refused; revoked while offline → refused at first contact, cache wiped, agent stopped', async () => {
    const { ks, cms } = await enrolReader('door-4');
    const clock = { t: Date.now() };
    const baton = AuditBaton.open(mkdtempSync(join(tmpdir(), 'baton-')));
    const agent = new ReaderAgent({ readerId: 'door-4', roles: CAMPUS_ROLES, baton, unsealer: new ReaderUnsealer('door-4', ks.privateKey), keys: new SealingKeySource('door-4', ks.publicJwk, () => cards, cms), cms, now: () => clock.t });
    expect((await accessCheck(agent, cards[0]!.transport)).mode).toBe('online');
    await agent.sync();

    const port = server.port;
    await server.close();
    clock.t += 8 * 60_000;
    expect(await accessCheck(agent, cards[0]!.transport)).toMatchObject({ result: 'granted', mode: 'offline' });
    expect(await agent.sync()).toBeUndefined(); // offline: nothing acknowledged, nothing lost
    expect(baton.pending().map((e) => e.result)).toEqual(['granted']); // the offline operation waits for the next contact
    clock.t += 3 * 60_000;
    await expect(accessCheck(agent, cards[0]!.transport)).rejects.toMatchObject({ code: 'ERR_READER_OFFLINE_EXPIRED' });

    // back online: works again (cache refilled online)
    server = await startServer(h.cms.deps, { host: '127.0.0.1', port, ...(h.cms.tls ? { tls: h.cms.tls } : {}) });
    expect((await accessCheck(agent, cards[0]!.transport)).mode).toBe('online');
    expect(agent.cache.size).toBe(1);

    // stopped again; revoked while the reader is offline
    await server.close();
    clock.t += 60_000;
    expect((await accessCheck(agent, cards[0]!.transport)).mode).toBe('offline');
    await h.call('GET', '/healthz').catch(() => undefined);
    await h.cms.deps.domain!.readers.setState('door-4', 'revoked');
    server = await startServer(h.cms.deps, { host: '127.0.0.1', port, ...(h.cms.tls ? { tls: h.cms.tls } : {}) });
    await expect(accessCheck(agent, cards[0]!.transport)).rejects.toMatchObject({ code: 'ERR_READER_REVOKED' });
    expect(agent.cache.size).toBe(0);
    expect(agent.stopped).toMatch(/refuses this reader/);
    await expect(accessCheck(agent, cards[0]!.transport)).rejects.toMatchObject({ code: 'ERR_READER_STOPPED' });
    expect(baton.all().some((e) => e.op === 'revoked' && e.result === 'cache-wiped')).toBe(true);
    agent.close();
    cms.close();
  });

  it('kill -9 of a real reader process mid-sync and mid-append: nothing lost or doubled', async () => {
    const { ks } = await enrolReader('crash-1');
    const creds = mkdtempSync(join(tmpdir(), 'creds-'));
    const c = ks.certificates();
    writeFileSync(join(creds, 'ca.pem'), c.ca);
    writeFileSync(join(creds, 'cert.pem'), c.cert);
    writeFileSync(join(creds, 'key.pem'), ks.tlsKeyPem(), { mode: 0o600 });
    const dir = mkdtempSync(join(tmpdir(), 'baton-crash-'));
    const runChild = (count: number, mode: string, killWhen: (out: string) => boolean): Promise<string> =>
      new Promise((resolve, reject) => {
        const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'test/reader/crash-child.ts', dir, creds, url, String(count), mode], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (killWhen(out) && child.exitCode === null) child.kill('SIGKILL');
        });
        child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve(out) : reject(new Error(`child ended ${code} ${signal}: ${out} ${err}`))));
      });

    // 1. killed after the CMS stored the batch, before the acknowledgement was recorded
    const out1 = await runChild(5, 'sync', (o) => /STORED 5/.test(o));
    expect(out1).toMatch(/DONE 5/);
    // 2. killed while appending: every operation reported done survives
    const out2 = await runChild(5000, 'append', (o) => /DONE 20\n/.test(o));
    const reported = Math.max(...[...out2.matchAll(/DONE (\d+)/g)].map((m) => Number(m[1])));
    expect(reported).toBeGreaterThanOrEqual(20);

    const baton = AuditBaton.open(dir);
    expect(baton.acknowledged).toBe(0); // the ack never made it
    expect(baton.length).toBeGreaterThanOrEqual(reported);
    const cms = new CmsClient({ url, ca: c.ca, servername: 'localhost' }, { key: ks.tlsKeyPem(), cert: c.cert });
    const agent = new ReaderAgent({ readerId: 'crash-1', roles: [], baton, unsealer: new ReaderUnsealer('crash-1', ks.privateKey), keys: { fetch: () => Promise.reject(new Error('unused')) }, cms });
    const ans = await agent.sync();
    expect(ans!.acked).toBe(baton.length);
    const stored = (await h.call('GET', '/v1/readers/crash-1/baton?limit=5000', { token: h.admin })).body.entries as BatonEntry[];
    expect(stored.map((e) => e.seq)).toEqual(Array.from({ length: baton.length }, (_, i) => i + 1));
    expect(stored.map((e) => e.hash)).toEqual(baton.all().map((e) => e.hash));
    agent.close();
    cms.close();
  }, 120_000);
});

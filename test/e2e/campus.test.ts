// End to end with virtual cards over real HTTPS + mTLS: a station issues 3 cards and installs the
// campus layout; every key is distinct; each tenant's reader reads its own files and is refused on
// every other tenant's by the card and by the CMS; a replayed token is refused; a receipt with a
// bad signature changes nothing; a job with no receipt is reconciled by probing the card through
// remote mode; a layout that breaks an isolation rule is refused with the rule id.
// Runs on SQLite + memory sessions, and on PostgreSQL + Redis (skipped with a reason when absent,
// failing under CI=true).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { DesfireClient } from '../../src/core/client/index.js';
import { toHex } from '../../src/core/crypto/bytes.js';
import { CardStatusError } from '../../src/core/protocol/status.js';
import { ReaderUnsealer } from '../../src/custody/sealed.js';
import type { KeyBinding } from '../../src/custody/types.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import { type CmsClient, StationClient, readUid, relayRemote, remoteSession } from '../../src/reader/station/client.js';
import { signStationReceipt } from '../../src/reader/station/receipt.js';
import type { StationJob } from '../../src/reader/station/protocol.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { testSchema } from '../helpers/pg-schema.js';
import { PG_URL, REDIS_URL, requireComponent, tcpReachable } from '../helpers/system.js';
import { CAMPUS, CAMPUS_AIDS, type E2e, startE2e } from './harness.js';
import { createPrivateKey } from 'node:crypto';

const campus = parseLayout(CAMPUS, 'campus.yaml');
const PICC = { keySettings: { ...campus.picc.keySettings }, randomUid: campus.picc.randomUid };

/** Per tenant: the runtime reader's key, what it reads with it, and a read without it (plain, unauthenticated). */
const RUNTIME = [
  {
    id: 'door-1',
    aid: 'A1C001',
    keyNo: 1,
    read: async (c: DesfireClient) => toHex(await c.readData(1, 0, 32, { comm: 'full' })),
    unauthenticated: (c: DesfireClient) => c.readData(1, 0, 32, { comm: 'plain' }),
  },
  {
    id: 'till-1',
    aid: 'CAFE01',
    keyNo: 1,
    read: async (c: DesfireClient) => String(await c.getValue(1, { comm: 'full' })),
    unauthenticated: (c: DesfireClient) => c.getValue(1, { comm: 'plain' }),
  },
  {
    id: 'desk-1',
    aid: '11B001',
    keyNo: 1,
    read: async (c: DesfireClient) => toHex(await c.readRecords(1, 0, 0, { comm: 'mac', recordSize: 16 }).catch((e: unknown) => {
      // an empty record file answers BOUNDARY_ERROR: the key opened it, there is nothing yet
      if ((e as CardStatusError).status === 0xbe) return new Uint8Array(0);
      throw e;
    })),
    unauthenticated: (c: DesfireClient) => c.readRecords(1, 0, 0, { comm: 'plain', recordSize: 16 }),
  },
  {
    id: 'validator-1',
    aid: '7A0001',
    keyNo: 1,
    read: async (c: DesfireClient) => toHex(await c.readData(1, 0, 32, { comm: 'full' })),
    unauthenticated: (c: DesfireClient) => c.readData(1, 0, 32, { comm: 'plain' }),
  },
];

async function backends(): Promise<{ name: string; env?: Record<string, string> }[]> {
  const out: { name: string; env?: Record<string, string> }[] = [{ name: 'sqlite + memory sessions' }];
  const pg = await tcpReachable('127.0.0.1', 5432);
  const redis = await tcpReachable('127.0.0.1', 6379);
  const ok = requireComponent('PostgreSQL (e2e)', pg) && requireComponent('Redis (e2e)', redis);
  const suffix = randomBytes(4).toString('hex');
  if (ok)
    out.push({
      name: 'postgresql + redis',
      env: {
        DESFIRE_CMS_STORAGE: 'postgres',
        DESFIRE_CMS_POSTGRES_URL: PG_URL,
        DESFIRE_CMS_POSTGRES_SCHEMA: testSchema('e2e'),
        DESFIRE_CMS_SESSIONS: 'redis',
        DESFIRE_CMS_REDIS_URL: REDIS_URL,
        DESFIRE_CMS_REDIS_KEY_PREFIX: `e2e:${suffix}:`,
      },
    });
  return out;
}

const BACKENDS = await backends();

describe.each(BACKENDS)('campus end to end ($name)', ({ env }) => {
  let h: E2e;
  let stationCms: CmsClient;
  let station: StationClient;
  const cards: { card: VirtualCard; t: InProcessTransport; uid: string }[] = [];
  const keys = new Map<string, string>();
  const runtime = new Map<string, CmsClient>();
  const keyId = (b: KeyBinding) => `${b.uid}/${b.aid}/${b.keyNo}`;

  beforeAll(async () => {
    h = await startE2e(env ?? {});
    const up = await h.op('POST', '/v1/layouts', CAMPUS, 'application/yaml');
    expect(up.status).toBe(201);
    stationCms = await h.reader('station-1', CAMPUS_AIDS.map((aid, i) => ({ aid, keyNo: 0, operations: i === 0 ? ['install', 'issue'] : ['install'] })));
    station = new StationClient(stationCms, {
      readerId: 'station-1',
      onKey: (b, k) => {
        // a card's keys come once per personalise job; any later job of the card carries the same CMK
        const seen = keys.get(keyId(b));
        if (seen !== undefined) expect(toHex(k)).toBe(seen);
        keys.set(keyId(b), toHex(k));
      },
    });
    for (const r of RUNTIME) runtime.set(r.id, await h.reader(r.id, [{ aid: r.aid, keyNo: r.keyNo, operations: ['deliver'] }]));
  }, 120_000);

  afterAll(async () => {
    await h?.close();
  });

  it('issues 3 cards and installs the campus layout through the station', async () => {
    for (let i = 0; i < 3; i++) {
      const card = VirtualCard.create();
      const t = new InProcessTransport(card);
      const uid = await readUid(t);
      const p = await station.personalise(t, CAMPUS_AIDS, PICC);
      expect(p.uid).toBe(uid);
      expect(p.runs.map((r) => [r.ok, r.recorded])).toEqual(Array(5).fill([true, true]));
      cards.push({ card, t, uid });
      // the random UID is on: the field now shows another UID than the card's real one
      expect(await readUid(t)).not.toBe(uid);
      const c = await h.op('GET', `/v1/cards/${uid}`);
      expect(c.body.card.state).toBe('issued');
      expect(c.body.applications.map((a: { aid: string }) => a.aid).sort()).toEqual([...CAMPUS_AIDS].sort());
      await h.cms.deps.domain!.cards.transition(uid, 'active');
    }
    // ONE personalise job per card (issue + the 4 installations), one receipt each
    const jobs = await h.op('GET', '/v1/jobs?state=completed&limit=1000');
    expect(jobs.body.jobs).toHaveLength(3);
    expect(jobs.body.jobs.map((j: { kind: string }) => j.kind)).toEqual(Array(3).fill('personalise'));
    expect(jobs.body.jobs.map((j: { plan: { installs: { aid: string }[] } }) => j.plan.installs.map((i) => i.aid))).toEqual(Array(3).fill(CAMPUS_AIDS));
  }, 120_000);

  it('every key is distinct per card, AID and key number', () => {
    // 3 CMKs + 3 cards x (3 + 3 + 3 + 2) application keys
    expect(keys.size).toBe(3 + 3 * 11);
    expect(new Set(keys.values()).size).toBe(keys.size);
    for (const { uid } of cards) for (const aid of CAMPUS_AIDS) expect(keys.has(`${uid}/${aid}/0`)).toBe(true);
  });

  it("each tenant's reader reads its own files; the card and the CMS refuse it everywhere else", async () => {
    for (const { card, uid } of cards) {
      for (const r of RUNTIME) {
        const cms = runtime.get(r.id)!;
        const unsealer = new ReaderUnsealer(r.id, createPrivateKey(cms.conn.key));
        const d = await cms.call('POST', '/v1/keys/deliver', { uid, aid: r.aid, keyNo: r.keyNo });
        expect(d.status).toBe(200);
        const key = await unsealer.unseal(d.body.sealed, d.body.binding);
        expect(toHex(key)).toBe(keys.get(`${uid}/${r.aid}/${r.keyNo}`));
        const c = new DesfireClient(new InProcessTransport(card));
        await c.selectApplication(parseInt(r.aid, 16));
        await c.authenticate(r.keyNo, key, { method: 'ev2' });
        expect(toHex(await c.getCardUid()).toUpperCase()).toBe(uid); // random UID: the real one after authentication
        await r.read(c);
        for (const other of RUNTIME.filter((o) => o.aid !== r.aid)) {
          // the CMS refuses the other tenant's key (403, stable code)
          const refused = await cms.call('POST', '/v1/keys/deliver', { uid, aid: other.aid, keyNo: other.keyNo });
          expect([refused.status, refused.body.error.code]).toEqual([403, 'ERR_DELIVERY_FORBIDDEN']);
          // the card refuses its own key on the other AID (0xAE) and reading unauthenticated (0x9D)
          await c.selectApplication(parseInt(other.aid, 16));
          const e1 = await c.authenticate(other.keyNo, key, { method: 'ev2' }).catch((e: unknown) => e);
          expect(e1).toBeInstanceOf(CardStatusError);
          expect([0xae, 0x9d]).toContain((e1 as CardStatusError).status);
          const fresh = new DesfireClient(new InProcessTransport(card));
          await fresh.selectApplication(parseInt(other.aid, 16));
          const e3 = await other.unauthenticated(fresh).catch((e: unknown) => e);
          expect(e3).toBeInstanceOf(CardStatusError);
          expect([0xae, 0x9d]).toContain((e3 as CardStatusError).status);
        }
        unsealer.clear();
      }
    }
    const refusals = h.audit.events.filter((e) => e.op === 'key_delivery' && e.outcome === 'refused');
    expect(refusals.length).toBe(3 * 4 * 3);
    expect(refusals.every((e) => e.code === 'ERR_DELIVERY_FORBIDDEN')).toBe(true);
  }, 120_000);

  it('refuses a replayed token; a receipt with a bad signature changes nothing; no receipt → reconciled by probing', async () => {
    const { t, uid } = cards[0]!;
    const created = await stationCms.ok('POST', '/v1/station/jobs', { kind: 'delete', uid, aid: '7A0001' });
    const claim = await stationCms.call('POST', `/v1/station/jobs/${created.jobId}/claim`, { token: created.token });
    expect(claim.status).toBe(200);
    const replay = await stationCms.call('POST', `/v1/station/jobs/${created.jobId}/claim`, { token: created.token });
    expect([replay.status, replay.body.error.code]).toEqual([403, 'ERR_TOKEN_REPLAYED']);

    const job = claim.body.job as StationJob;
    const out = await station.executor.run(job, t);
    expect(out.ok).toBe(true);
    // a receipt signed by another key: refused, nothing recorded
    const forged = await signStationReceipt(out.receipt, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const bad = await stationCms.call('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: forged });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'ERR_RECEIPT_SIGNATURE']);
    expect((await h.op('GET', `/v1/jobs/${created.jobId}`)).body.state).toBe('claimed');
    expect((await h.op('GET', `/v1/cards/${uid}`)).body.applications.map((a: { aid: string }) => a.aid)).toContain('7A0001');

    // the real receipt never arrives: the outcome is unknown until the card is probed
    await h.station.jobs.markUnknown(created.jobId);
    const busy = await stationCms.call('POST', '/v1/station/jobs', { kind: 'delete', uid, aid: 'CAFE01' });
    expect([busy.status, busy.body.error.code]).toEqual([409, 'ERR_JOB_BUSY']);
    const probe = await relayRemote(stationCms, t, { op: 'reconcile', jobId: created.jobId });
    expect(probe.result).toMatchObject({ verdict: 'applied' });
    expect(probe.exchanges).toBeGreaterThan(2);
    expect((await h.op('GET', `/v1/jobs/${created.jobId}`)).body.state).toBe('reconciled');
    expect((await h.op('GET', `/v1/cards/${uid}`)).body.applications.map((a: { aid: string }) => a.aid)).not.toContain('7A0001');
    // and the transit key is no longer delivered for that card
    const gone = await runtime.get('validator-1')!.call('POST', '/v1/keys/deliver', { uid, aid: '7A0001', keyNo: 1 });
    expect([gone.status, gone.body.error.code]).toEqual([403, 'ERR_DELIVERY_NOT_INSTALLED']);
  }, 60_000);

  it('remote mode: the CMS authenticates and reads through a relaying reader, keys stay in the CMS', async () => {
    const { t, uid } = cards[1]!;
    const r = await relayRemote(runtime.get('door-1')!, t, { op: 'read', uid, aid: 'A1C001', keyNo: 1, fileNo: 1, offset: 0, length: 32 });
    expect(r.result).toEqual({ data: '00'.repeat(32) });
    const refused = await runtime.get('door-1')!.call('POST', '/v1/remote/sessions', { op: 'read', uid, aid: 'CAFE01', keyNo: 1, fileNo: 1 });
    expect([refused.status, refused.body.error.code]).toEqual([403, 'ERR_DELIVERY_FORBIDDEN']);
    // session key release: the CMS authenticates, the reader gets only the session and reads on its own
    const door = runtime.get('door-1')!;
    const unsealer = new ReaderUnsealer('door-1', createPrivateKey(door.conn.key));
    const session = await remoteSession(door, t, { uid, aid: 'A1C001', keyNo: 1 }, unsealer);
    const c = new DesfireClient(t);
    c.adoptSession(session);
    expect(toHex(await c.readData(1, 0, 32, { comm: 'full' }))).toBe('00'.repeat(32));
    expect(toHex(await c.getCardUid()).toUpperCase()).toBe(uid);
    const noSession = await runtime.get('till-1')!.call('POST', '/v1/remote/sessions', { op: 'session', uid, aid: 'A1C001', keyNo: 1 });
    expect([noSession.status, noSession.body.error.code]).toEqual([403, 'ERR_DELIVERY_FORBIDDEN']);
  }, 60_000);

  it('refuses a layout that breaks an isolation rule, with the rule id', async () => {
    const bad = readFileSync(new URL('../cms/layout-fixtures/ISO007-picc-free-create-delete.yaml', import.meta.url), 'utf8');
    const r = await h.op('POST', '/v1/layouts', bad, 'application/yaml');
    expect(r.status).toBe(422);
    expect(JSON.stringify(r.body)).toContain('ISO007');
    const issue = await stationCms.call('POST', '/v1/station/jobs', { kind: 'issue', uid: '04AABBCCDDEEFF', picc: { keySettings: { freeCreateDelete: true } } });
    expect(issue.status).toBe(400);
  });
});

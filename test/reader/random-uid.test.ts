// Random-UID cards at runtime, end to end through the CMS (HTTPS + mTLS, station jobs, virtual
// cards issued with random UID): the card answers a fresh random ID (08 xx xx xx) at every
// activation, which the CMS does not know; the reader authenticates with the AID's 'uid-read' key
// (one key per AID, from the master its 'offline-master' role on that key receives), runs
// GetCardUID, then asks the CMS for its role's key by the real UID. The uid-read key opens no file;
// without it, or without the role, the reader refuses; a delivery asked by the random ID is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { attachStation } from '../../src/cms/jobs/module.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import { DesfireClient } from '../../src/core/client/client.js';
import { ReaderUnsealer } from '../../src/custody/sealed.js';
import { type AgentRole, ReaderAgent, withKey } from '../../src/reader/agent.js';
import { AuditBaton } from '../../src/reader/baton.js';
import { CmsClient } from '../../src/reader/cms-client.js';
import { HttpKeySource } from '../../src/reader/http-keys.js';
import { HttpMasterSource } from '../../src/reader/masters.js';
import { CmsClient as StationHttp, StationClient } from '../../src/reader/station/index.js';
import { cardUid, isRandomId, readUid } from '../../src/reader/transactions.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { grantStandingConsent } from '../helpers/consent.js';
import { type StationCms, startStationCms } from './e2e-helpers.js';

const AID = 'B0B001';
const GATE = `version: 1
name: gate
picc:
  keySettings: { freeCreateDelete: false }
  randomUid: true
tenants:
  - id: gate
    name: Gate
    applications:
      - aid: "${AID}"
        name: gate
        keySettings: { changeKey: amk, freeCreateDelete: false }
        keys:
          - { no: 0, role: amk }
          - { no: 1, role: read }
          - { no: 2, role: uid-read }
        files:
          - no: 1
            type: std
            size: 16
            comm: full
            access: { read: read, write: never, readWrite: never, change: amk }
`;

let s: StationCms;
let issued = 0;
const cmsLog: string[] = [];
beforeAll(async () => {
  s = await startStationCms({ log: (l) => cmsLog.push(l) });
  await s.cms.deps.domain!.tenants.registerLayout(parseLayout(GATE, 'gate.yaml'));
  const { token } = await s.cms.deps.tokens.create({ label: 'random-uid issuer', roles: ['issuer_admin'], tenants: ['*'], createdBy: null });
  await grantStandingConsent(s.server.app, token, { aids: [AID] });
}, 60_000);
afterAll(async () => s?.close());

/** A card issued with random UID and the gate application installed through station jobs; active. */
async function randomUidCard(): Promise<{ card: VirtualCard; uid: string }> {
  issued++;
  const id = `gate-station-${issued}`;
  const st = await s.enrolled(id, [{ tenantId: 'gate', aid: AID, keyNo: 0, operations: ['issue', 'install'] }]);
  const c = st.ks.certificates();
  const http = new StationHttp({ host: '127.0.0.1', port: s.server.port, ca: c.ca, cert: c.cert, key: st.ks.tlsKeyPem(), servername: 'localhost' });
  const card = VirtualCard.create();
  try {
    const p = await new StationClient(http, { readerId: id, privateKey: st.ks.privateKey }).personalise(new InProcessTransport(card), [AID], { randomUid: true });
    expect(p.runs.every((r) => r.recorded)).toBe(true);
    await s.cms.deps.domain!.cards.transition(p.uid, 'active');
    card.reset();
    return { card, uid: p.uid };
  } finally {
    http.close();
  }
}

async function gateReader(id: string, roles: Omit<AgentRole, 'tenantId'>[]) {
  const r = await s.enrolled(id, roles.map((x) => ({ tenantId: 'gate', ...x })));
  const c = r.ks.certificates();
  const cms = new CmsClient({ url: s.url, ca: c.ca, servername: 'localhost' }, { key: r.ks.tlsKeyPem(), cert: c.cert });
  const agent = new ReaderAgent({
    readerId: id,
    roles: [],
    baton: AuditBaton.open(r.dir),
    unsealer: new ReaderUnsealer(id, r.ks.privateKey),
    keys: new HttpKeySource(cms),
    masters: new HttpMasterSource(cms, id, r.ks.privateKey),
    cms,
  });
  agent.setRoles((await cms.call<{ roles: AgentRole[] }>('GET', '/v1/readers/self')).roles);
  return { agent, close: () => (agent.close(), cms.close()) };
}

describe('random-UID cards at runtime', () => {
  it('random ID at anticollision → uid-read key + GetCardUID → the real UID → the role key delivered by the CMS reads the file', async () => {
    const a = await randomUidCard();
    const b = await randomUidCard();
    const { agent, close } = await gateReader('gate-door', [
      { aid: AID, keyNo: 1, operations: ['deliver'] },
      { aid: AID, keyNo: 2, operations: ['offline-master'] },
    ]);
    const logFrom = cmsLog.length;
    try {
      for (const { card, uid } of [a, b]) {
        const t = new InProcessTransport(card);
        const rf = await readUid(t);
        expect(isRandomId(rf)).toBe(true);
        expect(rf).not.toBe(uid);
        card.reset();
        expect(await readUid(t)).not.toBe(rf); // fresh at every activation
        const client = new DesfireClient(t);
        // the master is fetched on first use (then held): one uid-read key for every card of the AID
        const real = await cardUid(agent, t, client, AID, { keyNo: 2 });
        expect(real).toBe(uid);
        const k = await agent.obtainKey(real, AID, 1);
        expect(k.mode).toBe('online');
        await client.selectApplication(0xb0b001);
        await withKey(k, (key) => client.authenticate(1, key, { method: 'ev2' }).then(() => undefined));
        expect(await client.readData(1, 0, 16, { comm: 'full' })).toEqual(new Uint8Array(16));
        card.reset();
      }
      expect(agent.masters.size).toBe(1);
      // the role key is per card: a's key does not open b
      const ka = await agent.obtainKey(a.uid, AID, 1);
      const tb = new InProcessTransport(b.card);
      const cb = new DesfireClient(tb);
      await cb.selectApplication(0xb0b001);
      await expect(withKey(ka, (key) => cb.authenticate(1, key, { method: 'ev2' }).then(() => undefined))).rejects.toThrow();
      b.card.reset();

      // the uid-read key opens no file: authenticated with it, ReadData is refused by the card
      const m = agent.masters.derive('gate', AID, '', 2);
      await cb.selectApplication(0xb0b001);
      await cb.authenticate(2, m.key, { method: 'ev2' });
      m.key.fill(0);
      await expect(cb.readData(1, 0, 16, { comm: 'full' })).rejects.toMatchObject({ status: 0x9d });
      b.card.reset();

      // asking the CMS by the random ID gets nothing: no such card
      const rf = await readUid(tb);
      await expect(agent.obtainKey(rf, AID, 1)).rejects.toMatchObject({ code: 'ERR_READER_CMS' });
      // the CMS says why: a random ID is not a UID
      const svc = (await attachStation(s.cms)).delivery;
      await expect(svc.deliver({ actor: 'reader:gate-door', purpose: 'test', correlationId: 't' }, 'gate-door', { uid: rf, aid: AID, keyNo: 1 })).rejects.toMatchObject({ code: 'ERR_DELIVERY_CARD_STATE', message: expect.stringContaining('random ID') });
      b.card.reset();
      // privacy (why random UIDs exist): the runtime flow — master release, deliveries by the real
      // UID, refusals — logs at info level (lines were written) but never a card's real UID
      const lines = cmsLog.slice(logFrom).join('');
      expect(lines.length).toBeGreaterThan(0);
      for (const uid of [a.uid, b.uid]) expect(lines.toUpperCase()).not.toContain(uid);
    } finally {
      close();
    }
  }, 120_000);

  it('no uid-read key configured, or no role on it: refused before any key is asked for', async () => {
    const { card } = await randomUidCard();
    const { agent, close } = await gateReader('gate-door-2', [{ aid: AID, keyNo: 1, operations: ['deliver'] }]);
    try {
      const t = new InProcessTransport(card);
      await expect(cardUid(agent, t, new DesfireClient(t), AID, undefined)).rejects.toMatchObject({ code: 'ERR_READER_CARD' });
      card.reset();
      await expect(cardUid(agent, t, new DesfireClient(t), AID, { keyNo: 2 })).rejects.toMatchObject({ code: 'ERR_READER_NO_ROLE' });
      expect(agent.masters.size).toBe(0);
    } finally {
      close();
    }
  }, 120_000);
});

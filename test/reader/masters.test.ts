// Offline with diversification masters, against the whole CMS over HTTPS + mTLS: a reader whose
// role grants 'offline-master' receives the AN10922 master of its (AID, keyNo) sealed to it,
// audited by the CMS (custody 'seal_master' + a delivery event); with the CMS stopped it derives
// the key of a card it has NEVER seen online and grants access; past the TTL it refuses and says
// why; a restart holds no master; revocation wipes it. A role without the flag gets nothing (the
// CMS refuses, 403) and an unseen card is refused offline.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../../src/cms/api/server.js';
import { ReaderUnsealer } from '../../src/custody/sealed.js';
import { type AgentRole, ReaderAgent } from '../../src/reader/agent.js';
import { AuditBaton } from '../../src/reader/baton.js';
import { CmsClient } from '../../src/reader/cms-client.js';
import { HttpKeySource } from '../../src/reader/http-keys.js';
import { HttpMasterSource } from '../../src/reader/masters.js';
import { readerMetricsText } from '../../src/reader/metrics.js';
import { accessCheck } from '../../src/reader/transactions.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { type StationCms, startStationCms } from './e2e-helpers.js';

let s: StationCms;
beforeAll(async () => {
  s = await startStationCms();
}, 60_000);
afterAll(async () => s?.close());

async function agentFor(id: string, operations: string[], clock: { t: number }) {
  const r = await s.enrolled(id, [{ tenantId: 'access', aid: 'A1C001', keyNo: 1, operations }]);
  const c = r.ks.certificates();
  const cms = new CmsClient({ url: s.url, ca: c.ca, servername: 'localhost' }, { key: r.ks.tlsKeyPem(), cert: c.cert });
  const now = () => clock.t;
  const make = () =>
    new ReaderAgent({
      readerId: id,
      roles: [],
      baton: AuditBaton.open(r.dir),
      unsealer: new ReaderUnsealer(id, r.ks.privateKey, now),
      keys: new HttpKeySource(cms),
      masters: new HttpMasterSource(cms, id, r.ks.privateKey, now),
      cms,
      now,
    });
  const agent = make();
  agent.setRoles((await cms.call<{ roles: AgentRole[] }>('GET', '/v1/readers/self')).roles);
  return { agent, cms, make, ks: r.ks };
}

describe('offline diversification masters (role flag offline-master)', () => {
  it('master sealed to the reader and audited; CMS stopped → a never-seen card is granted until the TTL, then refused; restart and revocation hold nothing', async () => {
    const seen = await s.personalisedCard();
    const unseen = await s.personalisedCard();
    const clock = { t: Date.now() };
    const { agent, cms, make } = await agentFor('door-m', ['deliver', 'offline-master'], clock);
    expect(await agent.refreshMasters()).toBe(1);
    expect(agent.masters.size).toBe(1);
    expect(readerMetricsText(agent)).toContain('desfire_reader_offline_masters{reader="door-m"} 1\n');
    expect(await agent.refreshMasters()).toBe(0); // fresh: not asked again
    expect(agent.baton.all().map((e) => [e.op, e.aid, e.keyNo, e.keyVersion, e.result])).toEqual([['master-received', 'A1C001', 1, 1, 'ok']]);
    // the CMS audited the release: custody's seal_master (key name, version, reader) and the delivery
    const audit = await s.cms.deps.domain!.db.selectFrom('audit_entries' as never).selectAll().where('operation' as never, 'in', ['custody.seal_master', 'station.key_delivery'] as never).execute() as unknown as { operation: string; reader_id: string; result: string; details: string }[];
    const rel = audit.filter((e) => e.reader_id === 'door-m');
    expect(rel.map((e) => [e.operation, e.result])).toEqual(expect.arrayContaining([['custody.seal_master', 'ok'], ['station.key_delivery', 'ok']]));
    expect(rel.find((e) => e.operation === 'station.key_delivery')!.details).toContain('"master"');
    expect(rel.find((e) => e.operation === 'custody.seal_master')!.details).toContain('access.A1C001.1');
    // a compromise of this reader exposes the key of EVERY card of (A1C001, 1): the master opens them all
    const { token } = await s.cms.deps.tokens.create({ label: 'masters test issuer', roles: ['issuer_admin'], tenants: ['*'], createdBy: null });
    const ks = await s.server.app.inject({ method: 'GET', url: '/v1/compromise/readers/door-m/keys', headers: { authorization: `Bearer ${token}` } });
    expect(ks.statusCode).toBe(200);
    expect(JSON.stringify(ks.json())).toMatch(/"aid":"A1C001","keyNo":1,"version":1,[^}]*"allCards":true/);

    // online as usual for a card it sees
    expect(await accessCheck(agent, new InProcessTransport(seen.card), { zone: 1 })).toMatchObject({ result: 'granted', mode: 'online' });
    await agent.sync();

    // the CMS goes away
    const port = s.server.port;
    await s.server.close();
    clock.t += 4 * 60_000;
    unseen.card.reset();
    expect(await accessCheck(agent, new InProcessTransport(unseen.card), { zone: 3 })).toMatchObject({ result: 'granted', mode: 'offline', uid: unseen.uid });
    unseen.card.reset();
    expect(await accessCheck(agent, new InProcessTransport(unseen.card), { zone: 2 })).toMatchObject({ result: 'denied:zone', mode: 'offline' });
    // past the TTL (10 min by default): refused, and it says why
    clock.t += 7 * 60_000;
    unseen.card.reset();
    await expect(accessCheck(agent, new InProcessTransport(unseen.card), { zone: 3 })).rejects.toMatchObject({ code: 'ERR_READER_OFFLINE_EXPIRED', message: expect.stringMatching(/longer than the offline TTL/) });

    // back: a restarted agent holds no master until it asks again
    s.server = await startServer(s.cms.deps, { host: '127.0.0.1', port, ...(s.cms.tls ? { tls: s.cms.tls } : {}) });
    agent.close();
    clock.t = Date.now(); // the reader's clock agrees with the CMS's again (the sealed expiry is the CMS's)
    const again = make();
    again.setRoles((await cms.call<{ roles: AgentRole[] }>('GET', '/v1/readers/self')).roles);
    expect(again.masters.size).toBe(0);
    await again.sync(); // a contact: the master is asked for again (in the background)
    await again.refreshMasters();
    expect(again.masters.size).toBe(1);
    // the master's own validity ends too, even while the CMS answers nothing new
    clock.t += 10 * 60_000 + 1;
    again.masters.prune();
    expect(again.masters.size).toBe(0);
    clock.t = Date.now();
    expect(await again.refreshMasters(true)).toBe(1);

    // revoked: the next contact wipes the master and stops the agent
    await s.cms.deps.domain!.readers.setState('door-m', 'revoked');
    await expect(again.sync()).rejects.toMatchObject({ code: 'ERR_READER_REVOKED' });
    expect(again.masters.size).toBe(0);
    expect(readerMetricsText(again)).toContain('desfire_reader_offline_masters{reader="door-m"} 0\n');
    expect(again.stopped).toBeTruthy();
    again.close();
    cms.close();
  }, 180_000);

  it('without the flag: never asked for, the CMS refuses it (403, audited), an unseen card is refused offline', async () => {
    const unseen = await s.personalisedCard();
    const clock = { t: Date.now() };
    const { agent, cms, ks } = await agentFor('door-n', ['deliver', 'offline'], clock);
    expect(await agent.refreshMasters()).toBe(0);
    expect(agent.masters.size).toBe(0);
    // asked anyway (a modified agent): refused by the CMS
    await expect(new HttpMasterSource(cms, 'door-n', ks.privateKey).fetch({ tenant: 'access', aid: 'A1C001', keyNo: 1 })).rejects.toMatchObject({ code: 'ERR_READER_CMS', cmsCode: 'ERR_DELIVERY_FORBIDDEN', status: 403 });
    const audit = (await s.cms.deps.domain!.db.selectFrom('audit_entries' as never).selectAll().where('reader_id' as never, '=', 'door-n' as never).execute()) as unknown as { operation: string; result: string; details: string }[];
    expect(audit.some((e) => e.operation === 'station.key_delivery' && e.result === 'denied' && e.details.includes('master:ERR_DELIVERY_FORBIDDEN'))).toBe(true);
    expect(audit.some((e) => e.operation === 'custody.seal_master')).toBe(false);
    await agent.sync();
    const port = s.server.port;
    await s.server.close();
    try {
      await expect(accessCheck(agent, new InProcessTransport(unseen.card), { zone: 3 })).rejects.toMatchObject({ code: 'ERR_READER_OFFLINE_NO_KEY' });
    } finally {
      s.server = await startServer(s.cms.deps, { host: '127.0.0.1', port, ...(s.cms.tls ? { tls: s.cms.tls } : {}) });
    }
    agent.close();
    cms.close();
  }, 120_000);

  it('a key that is not diversified has no master: typed refusal', async () => {
    // campus: every key is diversified by default; the refusal is checked on the service directly
    const { MasterDelivery } = await import('../../src/cms/delivery/masters.js');
    const dm = s.cms.deps.domain!;
    const app = (await dm.tenants.application('A1C001'))!;
    const randomApp = { ...app, definition: { ...app.definition, keys: app.definition.keys.map((k) => ({ ...k, derivation: { method: 'random' as const } })) } };
    await dm.readers.register('door-r', 'door-r');
    await dm.readers.grantRole({ readerId: 'door-r', tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['offline-master'] });
    const events: { code?: string }[] = [];
    const svc = new MasterDelivery({ custody: s.cms.deps.custody!, readers: dm.readers, tenants: { application: async () => randomApp } as never, audit: { append: async (e) => void events.push(e) } });
    await expect(svc.deliverMaster({ actor: 'reader:door-r', purpose: 't', correlationId: 'c' }, 'door-r', { aid: 'A1C001', keyNo: 1 })).rejects.toMatchObject({ code: 'ERR_DELIVERY_NOT_DIVERSIFIED', statusCode: 422 });
    expect(events).toEqual([expect.objectContaining({ outcome: 'refused', code: 'master:ERR_DELIVERY_NOT_DIVERSIFIED' })]);
  });
});

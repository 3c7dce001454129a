// Key delivery keeps every check while its hot path is cached: the reader-certificate check is
// cached per certificate (and the DER per TLS 1.3 connection), but revocation and reader state
// are read on every request. A reader on its open keep-alive mTLS connection is refused on its
// very next request after a suspension, a certificate revocation, a reader revocation — also
// when the change is written straight to the database (as another CMS process on the same
// PostgreSQL would).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { SqlRevocationList } from '../../src/cms/domain/pki-stores.js';
import { type CmsClient, StationClient } from '../../src/reader/station/client.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { CAMPUS, type E2e, startE2e } from '../e2e/harness.js';
import { PG_URL, REDIS_URL, requireComponent, tcpReachable } from '../helpers/system.js';

/** SQLite + memory sessions, and PostgreSQL + Redis (own schema and key prefix) when reachable. */
async function backends(): Promise<{ name: string; env: Record<string, string> }[]> {
  const up = requireComponent('PostgreSQL (delivery)', await tcpReachable('127.0.0.1', 5432)) && requireComponent('Redis (delivery)', await tcpReachable('127.0.0.1', 6379));
  const tag = `drev_${randomBytes(4).toString('hex')}`;
  const pg = { DESFIRE_CMS_STORAGE: 'postgres', DESFIRE_CMS_POSTGRES_URL: PG_URL, DESFIRE_CMS_POSTGRES_SCHEMA: tag };
  const redis = { DESFIRE_CMS_SESSIONS: 'redis', DESFIRE_CMS_REDIS_URL: REDIS_URL, DESFIRE_CMS_REDIS_KEY_PREFIX: `${tag}:` };
  return [{ name: 'sqlite + memory sessions', env: {} }, ...(up ? [{ name: 'postgresql + redis', env: { ...pg, ...redis } }] : [])];
}

describe.each(await backends())('key delivery: revocation and suspension on an open connection ($name)', ({ env }) => {
  let h: E2e;
  let uid: string;

  beforeAll(async () => {
    h = await startE2e(env);
    expect((await h.op('POST', '/v1/layouts', CAMPUS, 'application/yaml')).status).toBe(201);
    const st = await h.reader('station-r', [{ aid: 'A1C001', keyNo: 0, operations: ['install', 'issue'] }]);
    const p = await new StationClient(st, { readerId: 'station-r' }).personalise(new InProcessTransport(VirtualCard.create()), ['A1C001']);
    uid = p.uid;
    await h.cms.deps.domain!.cards.transition(uid, 'active');
  }, 120_000);

  afterAll(async () => {
    await h?.close();
  });

  const deliver = (c: CmsClient) => c.call('POST', '/v1/keys/deliver', { uid, aid: 'A1C001', keyNo: 1 });
  const door = (id: string) => h.reader(id, [{ aid: 'A1C001', keyNo: 1, operations: ['deliver'] }]);

  it('suspend refuses the next request; resume restores it', async () => {
    const c = await door('door-s');
    for (let i = 0; i < 3; i++) expect((await deliver(c)).status).toBe(200); // cached path warmed
    expect((await h.op('POST', '/v1/readers/door-s/suspend', {})).status).toBe(200);
    const r = await deliver(c);
    expect([r.status, r.body.error.code]).toEqual([403, 'ERR_READER_NOT_ACTIVE']);
    expect((await h.op('POST', '/v1/readers/door-s/resume', {})).status).toBe(200);
    expect((await deliver(c)).status).toBe(200);
  }, 60_000);

  it('revoking the reader refuses the next request', async () => {
    const c = await door('door-v');
    for (let i = 0; i < 3; i++) expect((await deliver(c)).status).toBe(200);
    expect((await h.op('POST', '/v1/readers/door-v/revoke', {})).status).toBe(200);
    const r = await deliver(c);
    expect([r.status, r.body.error.code]).toEqual([403, 'ERR_READER_NOT_ACTIVE']);
  }, 60_000);

  it('revoking only the certificate refuses the next request (reader still active)', async () => {
    const c = await door('door-c');
    for (let i = 0; i < 3; i++) expect((await deliver(c)).status).toBe(200);
    const row = await h.cms.db.db.selectFrom('readers').select(['cert_serial', 'state']).where('id', '=', 'door-c').executeTakeFirstOrThrow();
    await new SqlRevocationList(h.cms.db.db).revoke(String(row.cert_serial).toUpperCase(), 'key compromise');
    expect(row.state).toBe('active');
    const r = await deliver(c);
    expect([r.status, r.body.error.code]).toEqual([403, 'ERR_READER_NOT_ACTIVE']);
    // audited as a refused request, as when the API's own re-check refused
    const refused = await h.cms.db.db.selectFrom('audit_entries').select(['actor', 'details']).where('operation', '=', 'api.refused').where('actor', '=', 'reader:door-c').execute();
    expect(refused.map((e) => String(e.details))).toEqual([expect.stringContaining('ERR_READER_NOT_ACTIVE')]);
    // the certificate stays refused on every later request, whatever it asks for
    const again = await c.call('POST', '/v1/keys/deliver', { uid: '04000000000000', aid: 'A1C001', keyNo: 1 });
    expect([again.status, again.body.error.code]).toEqual([403, 'ERR_READER_NOT_ACTIVE']);
  }, 60_000);

  it('a state change written by another process (straight to the database) refuses the next request', async () => {
    const c = await door('door-d');
    for (let i = 0; i < 3; i++) expect((await deliver(c)).status).toBe(200);
    await h.cms.db.db.updateTable('readers').set({ state: 'suspended' }).where('id', '=', 'door-d').execute();
    const r = await deliver(c);
    expect([r.status, r.body.error.code]).toEqual([403, 'ERR_READER_NOT_ACTIVE']);
    await h.cms.db.db.updateTable('readers').set({ state: 'active' }).where('id', '=', 'door-d').execute();
    expect((await deliver(c)).status).toBe(200);
  }, 60_000);
});

// Denylist delta sync against the whole CMS over HTTPS + mTLS: the reader sends the denylist
// version it holds (?denylist=<version>); the CMS answers "unchanged", the changes since, or (no
// version, unknown version) the whole list. A card denied between two contacts is refused at the
// reader after the next contact; an unchanged list is not sent again; a new (restarted) agent gets
// it all; a card denied by another writer than the denylist routes (direct SQL, as the compromise
// service does) reaches readers too (the change log is written by triggers); an old reader that
// sends no version keeps getting the whole list in `denylist`.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReaderUnsealer } from '../../src/custody/sealed.js';
import { ReaderAgent, type SyncAnswer } from '../../src/reader/agent.js';
import { AuditBaton } from '../../src/reader/baton.js';
import { CmsClient, enrol } from '../../src/reader/cms-client.js';
import { ReaderKeystore } from '../../src/reader/keystore.js';
import { accessCheck } from '../../src/reader/transactions.js';
import { type CmsHarness, startCms } from '../cms/api-harness.js';
import { CAMPUS_ROLES, makeCard, SealingKeySource, type TestCard } from './fixture.js';

const PASS = new TextEncoder().encode('reader keystore passphrase');
const FAST_SCRYPT = { N: 1 << 12, r: 8, p: 1 };
const DENIED = 10_000;

let h: CmsHarness;
let url: string;
let caPem: string;
let cards: TestCard[];

async function enrolReader(id: string): Promise<{ ks: ReaderKeystore; cms: CmsClient; client: () => CmsClient }> {
  expect((await h.call('POST', '/v1/readers', { token: h.admin, body: { id, name: `reader ${id}` } })).status).toBe(201);
  const code = (await h.call('POST', `/v1/readers/${id}/enrolment-codes`, { token: h.admin, body: {} })).body.code as string;
  const dir = mkdtempSync(join(tmpdir(), 'reader-'));
  const ks = ReaderKeystore.create(dir, PASS, FAST_SCRYPT);
  const r = await enrol({ url, ca: caPem, servername: 'localhost' }, await ks.csr(id), code);
  ks.saveCertificates(r.certificate, r.caCertificate);
  const c = ks.certificates();
  const client = () => new CmsClient({ url, ca: c.ca, servername: 'localhost' }, { key: ks.tlsKeyPem(), cert: c.cert });
  return { ks, cms: client(), client };
}

/** The agent's answers from the CMS, with their paths and sizes (JSON bytes). */
function recordAnswers(cms: CmsClient): { path: string; bytes: number; ans: SyncAnswer }[] {
  const seen: { path: string; bytes: number; ans: SyncAnswer }[] = [];
  const call = cms.call.bind(cms);
  cms.call = (async (method: string, path: string, body?: unknown, o?: object) => {
    const ans = (await call(method, path, body, o)) as SyncAnswer;
    if (path.startsWith('/v1/readers/self/')) seen.push({ path, bytes: Buffer.byteLength(JSON.stringify(ans)), ans });
    return ans;
  }) as typeof cms.call;
  return seen;
}

const uidOf = (i: number) => (0x04100000000000 + i).toString(16).toUpperCase().padStart(14, '0');

beforeAll(async () => {
  h = await startCms();
  url = `https://127.0.0.1:${h.server.port}`;
  caPem = h.cms.ca!.certificatePem;
  cards = [await makeCard(), await makeCard()];
  // a transit programme's denylist: 10,000 cards (inserted directly: the change log's triggers log them)
  for (let i = 0; i < DENIED; i += 1000) {
    const rows = Array.from({ length: Math.min(1000, DENIED - i) }, (_, j) => ({ uid: uidOf(i + j), reason: 'lost', created_by: 'test', created_at: Date.now() }));
    await h.cms.db.db.insertInto('card_denylist').values(rows).execute();
  }
}, 120_000);

afterAll(async () => {
  await h.server.close().catch(() => undefined);
  await h.cms.close();
});

describe('denylist delta sync', () => {
  it('a card denied between two contacts is refused after the next one; an unchanged list is not sent again; a restarted agent gets it all', async () => {
    const { ks, cms, client } = await enrolReader('gate-1');
    const seen = recordAnswers(cms);
    // the test key source (fixture: one GET /sync per key) on a client of its own: `seen` is the agent's contacts only
    const keyCms = client();
    const mk = () => new ReaderAgent({ readerId: 'gate-1', roles: CAMPUS_ROLES, baton: AuditBaton.open(mkdtempSync(join(tmpdir(), 'baton-'))), unsealer: new ReaderUnsealer('gate-1', ks.privateKey), keys: new SealingKeySource('gate-1', ks.publicJwk, () => cards, keyCms), cms });
    const agent = mk();
    // first contact: no version held -> the whole list
    await agent.sync();
    expect(seen[0]!.path).toBe('/v1/readers/self/sync');
    expect(seen[0]!.ans.denylist.length).toBe(DENIED);
    expect(seen[0]!.ans.denylistDelta).toBeUndefined();
    expect(seen[0]!.ans.denylistVersion).toMatch(/^[0-9]+-[0-9a-f]+$/);
    expect(agent.isDenied(uidOf(1234))).toBe(true);
    // a transaction (its baton upload carries the version too) and a contact: unchanged, nothing re-sent
    expect((await accessCheck(agent, cards[1]!.transport)).result).toBe('granted');
    await agent.sync();
    const unchanged = seen.slice(1);
    expect(unchanged.length).toBeGreaterThan(0);
    for (const s of unchanged) {
      expect(s.path).toContain(`?denylist=${seen[0]!.ans.denylistVersion}`);
      expect(s.ans.denylist).toEqual([]);
      expect(s.ans.denylistDelta).toEqual({ since: seen[0]!.ans.denylistVersion, add: [], remove: [] });
      expect(s.bytes).toBeLessThan(600);
    }
    expect(seen[0]!.bytes).toBeGreaterThan(DENIED * 17);
    // denied between two contacts: refused after the next one (which brings one card, not 10,001)
    expect((await h.call('PUT', `/v1/cards/denylist/${cards[1]!.uid}`, { token: h.admin, body: { reason: 'reported stolen' } })).status).toBe(200);
    const n = seen.length;
    await agent.sync();
    expect(seen[n]!.ans.denylistDelta).toMatchObject({ add: [cards[1]!.uid], remove: [] });
    expect(seen[n]!.ans.denylist).toEqual([]);
    await expect(accessCheck(agent, cards[1]!.transport)).rejects.toMatchObject({ code: 'ERR_READER_DENYLISTED' });
    expect(agent.isDenied(uidOf(1234))).toBe(true); // the rest of the list is still held
    // allowed again, another card denied by another writer (direct SQL, as the compromise service does): both at the next contact
    expect((await h.call('DELETE', `/v1/cards/denylist/${cards[1]!.uid}`, { token: h.admin })).status).toBe(200);
    await h.cms.db.db.insertInto('card_denylist').values({ uid: cards[0]!.uid, reason: 'clone suspected', created_by: 'compromise', created_at: Date.now() }).execute();
    await h.cms.db.db.deleteFrom('card_denylist').where('uid', '=', uidOf(1234)).execute();
    await agent.sync();
    expect(seen.at(-1)!.ans.denylistDelta).toMatchObject({ add: [cards[0]!.uid] });
    expect([...seen.at(-1)!.ans.denylistDelta!.remove].sort()).toEqual([cards[1]!.uid, uidOf(1234)].sort());
    expect((await accessCheck(agent, cards[1]!.transport)).result).toBe('granted');
    await expect(accessCheck(agent, cards[0]!.transport)).rejects.toMatchObject({ code: 'ERR_READER_DENYLISTED' });
    expect(agent.isDenied(uidOf(1234))).toBe(false);
    agent.close();
    // a restarted agent holds no version: the whole, current list
    const again = mk();
    const m = seen.length;
    await again.sync();
    expect(seen[m]!.path).toBe('/v1/readers/self/sync');
    expect(seen[m]!.ans.denylistDelta).toBeUndefined();
    expect(seen[m]!.ans.denylist.length).toBe(DENIED); // 10,000 - 1 + cards[0]
    expect(again.isDenied(cards[0]!.uid)).toBe(true);
    expect(again.isDenied(uidOf(1234))).toBe(false);
    again.close();
    cms.close();
    keyCms.close();
  }, 60_000);

  it('an old reader (no version) gets the whole list; an unknown version gets the whole list; a malformed one is refused', async () => {
    const { cms } = await enrolReader('gate-2');
    const old = await cms.call<SyncAnswer>('GET', '/v1/readers/self/sync');
    expect(old.denylist.length).toBe(DENIED);
    expect(old.denylistDelta).toBeUndefined();
    // a version of another history (a restored database): same number, another nonce -> the whole list
    const [v] = old.denylistVersion!.split('-');
    const other = await cms.call<SyncAnswer>('GET', `/v1/readers/self/sync?denylist=${v}-0123456789ab`);
    expect(other.denylist.length).toBe(DENIED);
    expect(other.denylistDelta).toBeUndefined();
    expect(other.denylistVersion).toBe(old.denylistVersion);
    const none = await cms.call<SyncAnswer>('GET', `/v1/readers/self/sync?denylist=999999999-abc`);
    expect(none.denylist.length).toBe(DENIED);
    await expect(cms.call('GET', '/v1/readers/self/sync?denylist=not-a-version')).rejects.toMatchObject({ status: 400 });
    cms.close();
  }, 60_000);
});

// Field rotation (issue #7): during a campaign's grace period a runtime reader that meets a card
// still on the old version upgrades it: POST /v1/readers/self/rotations (mTLS, role 'rotate',
// pending card of the running campaign) answers both keys sealed to the reader and a single-use
// token; the shared card step runs on the virtual card; the signed receipt makes the CMS record
// the item like its runner (done on the new version, or a retry / failure with the verified card
// version, card_keys following). A tear mid-ChangeKey (after the card applied it, and before) is
// reconciled; the token is single use; a reader without the role and a card that is not pending
// are refused.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { CompactSign } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VirtualCard } from '../../src/card/virtual-card.js';
import { DesfireClient } from '../../src/core/client/client.js';
import { CmsClient } from '../../src/reader/cms-client.js';
import { FieldRotator } from '../../src/reader/field-rotation.js';
import { TearingTransport } from '../cms/rotation-fixture.js';
import { startStationCms, type StationCms } from './e2e-helpers.js';

const AID = 'A1C001';

describe('field rotation by a runtime reader', () => {
  let s: StationCms;
  let admin: string;
  const cards: { card: VirtualCard; uid: string }[] = [];
  let campaignId: string;
  let from: number;
  let to: number;
  let door: { cms: CmsClient; rotator: FieldRotator; key: KeyObject };

  const api = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const r = await s.server.app.inject({ method, url, headers: { authorization: `Bearer ${admin}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
    return { status: r.statusCode, body: r.json() as Record<string, unknown> };
  };
  const reader = async (id: string, operations: string[]) => {
    const e = await s.enrolled(id, [{ tenantId: 'access', aid: AID, keyNo: 0, operations }]);
    const c = e.ks.certificates();
    const cms = new CmsClient({ url: s.url, ca: c.ca, servername: 'localhost' }, { key: e.ks.tlsKeyPem(), cert: c.cert });
    return { cms, key: e.ks.privateKey, rotator: new FieldRotator({ cms, readerId: id, privateKey: e.ks.privateKey }) };
  };
  const cardVersion = async (card: VirtualCard): Promise<number> => {
    const dc = new DesfireClient(new TearingTransport(card));
    await dc.selectApplication(0xa1c001);
    return dc.getKeyVersion(0);
  };
  const item = async (uid: string) =>
    s.cms.db!.db.selectFrom('rotation_items').select(['state', 'card_version', 'attempts']).where('campaign_id', '=', campaignId).where('uid', '=', uid).executeTakeFirstOrThrow();
  const mapped = async (uid: string) => Number((await s.cms.db!.db.selectFrom('card_keys').select('key_version').where('uid', '=', uid).where('aid', '=', AID).where('key_no', '=', 0).executeTakeFirstOrThrow()).key_version);

  beforeAll(async () => {
    s = await startStationCms();
    admin = s.cms.bootstrapToken ?? (await s.cms.deps.tokens.create({ label: 'field test', roles: ['issuer_admin'], tenants: ['*'], createdBy: null })).token;
    for (let i = 0; i < 3; i++) cards.push(await s.personalisedCard());
    from = await mapped(cards[0]!.uid);
    const c = await api('POST', '/v1/rotation/campaigns', { tenantId: 'access', aid: AID, keyNo: 0, fromVersion: from, target: { kind: 'all' }, batchSize: 10 });
    expect(c.status).toBe(201);
    campaignId = c.body.id as string;
    to = c.body.toVersion as number;
    expect((await api('POST', `/v1/rotation/campaigns/${campaignId}/start`)).status).toBe(200);
    door = await reader('door-1', ['deliver', 'rotate']);
  }, 240_000);
  afterAll(async () => {
    door?.cms.close();
    await s?.close();
  });

  it('upgrades a card met on the old version; the item is done, card_keys follows; the token is single use', async () => {
    const { card, uid } = cards[0]!;
    expect(await cardVersion(card)).toBe(from);
    // the runtime hook: nothing to do for a card on the current version
    expect(await door.rotator.upgradeIfPrevious(new TearingTransport(card), { uid, aid: AID, keyNo: 0, cardVersion: to })).toBeUndefined();
    const out = (await door.rotator.upgradeIfPrevious(new TearingTransport(card), { uid, aid: AID, keyNo: 0, cardVersion: from }))!;
    expect(out).toMatchObject({ state: 'done', cardVersion: to, card: { ok: true, cardVersion: to } });
    expect(await cardVersion(card)).toBe(to);
    expect(await item(uid)).toMatchObject({ state: 'done', card_version: to });
    expect(await mapped(uid)).toBe(to);
    // the operation is over: no token opens it again
    const replay = await door.cms.raw('POST', `/v1/readers/self/rotations/${out.operationId}/receipt`, { token: 'x'.repeat(43), receipt: 'a.b.c' });
    expect(replay.status).toBe(409);
    expect((replay.body as { error: { code: string } }).error.code).toBe('ERR_ROTATION_FIELD_TOKEN');
    // the card is no longer pending
    const again = await door.cms.raw('POST', '/v1/readers/self/rotations', { uid, aid: AID, keyNo: 0, cardVersion: from });
    expect(again.status).toBe(409);
    expect((again.body as { error: { code: string } }).error.code).toBe('ERR_ROTATION_FIELD_NOT_PENDING');
    expect(await door.rotator.upgradeIfPrevious(new TearingTransport(card), { uid, aid: AID, keyNo: 0, cardVersion: from })).toBeUndefined();
    const progress = await api('GET', `/v1/rotation/campaigns/${campaignId}`);
    expect((progress.body.totals as { done: number }).done).toBe(1);
  }, 60_000);

  it('a tear after the card applied ChangeKey is reconciled: verified on the new version, done', async () => {
    const { card, uid } = cards[1]!;
    const t = new TearingTransport(card, 'after-once');
    const out = await door.rotator.upgrade(t, { uid, aid: AID, keyNo: 0, cardVersion: from });
    expect(t.changeKeysProcessed).toBe(1);
    expect(out).toMatchObject({ state: 'done', cardVersion: to });
    expect(await cardVersion(card)).toBe(to);
    expect(await mapped(uid)).toBe(to);
  }, 60_000);

  it('a tear before the card applied ChangeKey: reported on its verified old version, left pending for a retry, then upgraded', async () => {
    const { card, uid } = cards[2]!;
    const t = new TearingTransport(card, 'before-once');
    const out = await door.rotator.upgrade(t, { uid, aid: AID, keyNo: 0, cardVersion: from });
    expect(t.changeKeysProcessed).toBe(0);
    expect(out).toMatchObject({ state: 'pending', cardVersion: from, card: { ok: false, cardVersion: from } });
    expect(await cardVersion(card)).toBe(from);
    expect(await item(uid)).toMatchObject({ state: 'pending', card_version: from, attempts: 1 });
    expect(await mapped(uid)).toBe(from);
    // by hand: one live operation per card, receipts only from this reader's key, the token used once
    const g = await door.cms.call<{ operationId: string; token: string; campaignId: string }>('POST', '/v1/readers/self/rotations', { uid, aid: AID, keyNo: 0, cardVersion: from });
    const busy = await door.cms.raw('POST', '/v1/readers/self/rotations', { uid, aid: AID, keyNo: 0, cardVersion: from });
    expect((busy.body as { error: { code: string } }).error.code).toBe('ERR_ROTATION_CONFLICT');
    const receipt = (key: KeyObject) =>
      new CompactSign(new TextEncoder().encode(JSON.stringify({ jobId: g.operationId, jti: g.campaignId, uid, results: [{ op: 'RotateKey', status: 0xff, aid: AID, keyNo: 0, keyVersion: from, code: 'ERR_PCSC_NO_CARD' }], at: 1 })))
        .setProtectedHeader({ alg: 'ES256', typ: 'desfire-receipt+jws' })
        .sign(key);
    const forged = await door.cms.raw('POST', `/v1/readers/self/rotations/${g.operationId}/receipt`, { token: g.token, receipt: await receipt(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey) });
    expect(forged.status).toBe(400);
    expect((forged.body as { error: { code: string } }).error.code).toBe('ERR_ROTATION_FIELD_RECEIPT');
    const genuine = await receipt(door.key);
    expect(await door.cms.call('POST', `/v1/readers/self/rotations/${g.operationId}/receipt`, { token: g.token, receipt: genuine })).toMatchObject({ state: 'pending', cardVersion: from });
    const twice = await door.cms.raw('POST', `/v1/readers/self/rotations/${g.operationId}/receipt`, { token: g.token, receipt: genuine });
    expect((twice.body as { error: { code: string } }).error.code).toBe('ERR_ROTATION_FIELD_TOKEN');
    expect(await item(uid)).toMatchObject({ state: 'pending', card_version: from, attempts: 2 });
    // met again later: upgraded
    const second = await door.rotator.upgrade(new TearingTransport(card), { uid, aid: AID, keyNo: 0, cardVersion: from });
    expect(second).toMatchObject({ state: 'done', cardVersion: to });
    expect(await item(uid)).toMatchObject({ state: 'done', card_version: to, attempts: 3 });
  }, 60_000);

  it("refuses a reader without the 'rotate' role, and a receipt signed by another reader", async () => {
    const other = await reader('door-2', ['deliver']);
    try {
      const r = await other.cms.raw('POST', '/v1/readers/self/rotations', { uid: cards[0]!.uid, aid: AID, keyNo: 0, cardVersion: to });
      expect(r.status).toBe(403);
      expect((r.body as { error: { code: string } }).error.code).toBe('ERR_ROTATION_FIELD_FORBIDDEN');
      const bad = await other.cms.raw('POST', '/v1/readers/self/rotations', { uid: 'zz', aid: AID, keyNo: 0, cardVersion: 1 });
      expect(bad.status).toBe(400);
    } finally {
      other.cms.close();
    }
  }, 60_000);
});

// The agent's runtime against in-process virtual cards: the three campus transactions, offline
// with the expiring cache (injected clock), denylist, clone check, token replay, key wiping.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { generateReaderKeyPair, ReaderUnsealer } from '../../src/custody/sealed.js';
import { type KeyDelivery, type OnlineKeySource, ReaderAgent } from '../../src/reader/agent.js';
import { AuditBaton } from '../../src/reader/baton.js';
import type { CmsClient } from '../../src/reader/cms-client.js';
import { ReaderError } from '../../src/reader/errors.js';
import { OfflineKeyCache } from '../../src/reader/key-cache.js';
import { accessCheck, decide, libraryLoan, purseDebit } from '../../src/reader/transactions.js';
import { CAMPUS_ROLES, makeCard, SealingKeySource, type TestCard } from './fixture.js';

class Switchable implements OnlineKeySource {
  down = false;
  constructor(readonly inner: OnlineKeySource) {}
  fetch(r: Parameters<OnlineKeySource['fetch']>[0]): Promise<KeyDelivery> {
    if (this.down) return Promise.reject(new ReaderError('ERR_READER_CMS_UNREACHABLE', 'the CMS is unreachable (ECONNREFUSED)'));
    return this.inner.fetch(r);
  }
}

let cards: TestCard[] = [];
beforeAll(async () => {
  cards = [await makeCard({ balance: 1000 }), await makeCard({ balance: 50, credential: { zones: 0x0002 } })];
}, 60_000);

function setup() {
  const clock = { t: Date.now() };
  const kp = generateReaderKeyPair();
  const src = new Switchable(new SealingKeySource('door-1', kp.publicKey, () => cards));
  const baton = AuditBaton.open(mkdtempSync(join(tmpdir(), 'agent-')));
  const agent = new ReaderAgent({ readerId: 'door-1', roles: CAMPUS_ROLES, baton, unsealer: new ReaderUnsealer('door-1', kp.privateKey), keys: src, now: () => clock.t });
  return { clock, src, baton, agent };
}

describe('reader agent runtime (virtual cards)', () => {
  it('access check online: granted in zone 0, denied in a zone the credential lacks; every result in the baton', async () => {
    const { agent, baton } = setup();
    const a = await accessCheck(agent, cards[0]!.transport, { zone: 0 });
    expect(a).toMatchObject({ result: 'granted', ok: true, mode: 'online', uid: cards[0]!.uid });
    const b = await accessCheck(agent, cards[1]!.transport, { zone: 0 });
    expect(b.result).toBe('denied:zone');
    expect(baton.all().map((e) => [e.op, e.result, e.keyNo, e.keyVersion, e.aid])).toEqual([
      ['access-check', 'granted', 1, 1, 'A1C001'],
      ['access-check', 'denied:zone', 1, 1, 'A1C001'],
    ]);
    agent.close();
  });

  it('purse debit with commit; insufficient balance refused without debiting', async () => {
    const { agent } = setup();
    const r = await purseDebit(agent, cards[1]!.transport, 30);
    expect(r).toMatchObject({ ok: true, value: 20 });
    const r2 = await purseDebit(agent, cards[1]!.transport, 30);
    expect(r2).toMatchObject({ ok: false, result: 'denied:insufficient:20' });
    agent.close();
  });

  it('library loan appends records with a growing sequence; an older copy of the card is flagged as a clone', async () => {
    const { agent, baton } = setup();
    const item = new TextEncoder().encode('BOOK0001');
    const before = cards[0]!.card.toImage();
    expect((await libraryLoan(agent, cards[0]!.transport, item)).value).toBe(1);
    expect((await libraryLoan(agent, cards[0]!.transport, item)).value).toBe(2);
    // a clone made before the loans: same UID and keys, older record file
    const { VirtualCard } = await import('../../src/card/virtual-card.js');
    const { InProcessTransport } = await import('../../src/transport/in-process.js');
    const clone = new InProcessTransport(VirtualCard.fromImage(before));
    const c = await libraryLoan(agent, clone, item);
    expect(c).toMatchObject({ ok: false, result: 'clone-suspected:loan-seq:0' });
    expect(baton.all().at(-1)!.result).toBe('clone-suspected:loan-seq:0');
    agent.close();
  });

  it('offline: works from the cache until the TTL, then refuses and says why; a card never seen online is refused', async () => {
    const { agent, src, clock } = setup();
    await accessCheck(agent, cards[0]!.transport);
    src.down = true;
    clock.t += 9 * 60_000;
    expect(await accessCheck(agent, cards[0]!.transport)).toMatchObject({ result: 'granted', mode: 'offline' });
    await expect(accessCheck(agent, cards[1]!.transport)).rejects.toMatchObject({ code: 'ERR_READER_OFFLINE_NO_KEY' });
    clock.t += 2 * 60_000;
    const err = (await accessCheck(agent, cards[0]!.transport).catch((e: unknown) => e)) as ReaderError;
    expect(err).toMatchObject({ code: 'ERR_READER_OFFLINE_EXPIRED' });
    expect(err.message).toMatch(/offline for 660 s, longer than the offline TTL \(600 s\)/);
    expect(agent.cache.size).toBe(0);
    expect(agent.baton.all().at(-1)!.result).toBe('refused:ERR_READER_OFFLINE_EXPIRED');
    src.down = false;
    expect((await accessCheck(agent, cards[0]!.transport)).mode).toBe('online');
    agent.close();
  });

  it('offline TTL is configurable 5..15 minutes only; a fresh agent (restart) has no cache', () => {
    expect(() => new OfflineKeyCache(4 * 60_000)).toThrow(expect.objectContaining({ code: 'ERR_READER_CONFIG' }));
    expect(() => new OfflineKeyCache(16 * 60_000)).toThrow(expect.objectContaining({ code: 'ERR_READER_CONFIG' }));
    expect(new OfflineKeyCache(5 * 60_000).ttlMs).toBe(300_000);
    const { agent, src } = setup();
    src.down = true;
    return expect(accessCheck(agent, cards[0]!.transport)).rejects.toMatchObject({ code: 'ERR_READER_OFFLINE_EXPIRED', message: expect.stringMatching(/not been reached since start/) });
  });

  it("offline use needs the role's 'offline' operation: without it nothing is cached and offline is refused", async () => {
    const { agent, src } = setup();
    agent.setRoles(CAMPUS_ROLES.map((r) => ({ ...r, operations: ['deliver'] })));
    expect((await accessCheck(agent, cards[0]!.transport)).mode).toBe('online');
    expect(agent.cache.size).toBe(0);
    src.down = true;
    await expect(accessCheck(agent, cards[0]!.transport)).rejects.toMatchObject({ code: 'ERR_READER_OFFLINE_NO_KEY', message: expect.stringMatching(/does not allow offline use/) });
    agent.close();
  });

  it('roles: a key outside the reader roles is refused before the card is used', async () => {
    const { agent } = setup();
    agent.setRoles(CAMPUS_ROLES.filter((r) => r.aid !== 'CAFE01'));
    await expect(purseDebit(agent, cards[0]!.transport, 1)).rejects.toMatchObject({ code: 'ERR_READER_NO_ROLE' });
    agent.close();
  });

  it('revocation wipes the cache and stops the agent', async () => {
    const { agent } = setup();
    await accessCheck(agent, cards[0]!.transport);
    expect(agent.cache.size).toBe(1);
    agent.revoke('test');
    expect(agent.cache.size).toBe(0);
    await expect(accessCheck(agent, cards[0]!.transport)).rejects.toMatchObject({ code: 'ERR_READER_STOPPED' });
    expect(agent.baton.all().at(-1)).toMatchObject({ op: 'revoked', result: 'cache-wiped' });
  });

  it('operation tokens: accepted once, replay and expiry refused', () => {
    const { agent, clock } = setup();
    agent.consumeToken('jti-1', clock.t + 60_000);
    expect(() => agent.consumeToken('jti-1', clock.t + 60_000)).toThrow(expect.objectContaining({ code: 'ERR_READER_REPLAY' }));
    expect(() => agent.consumeToken('jti-2', clock.t - 1)).toThrow(expect.objectContaining({ code: 'ERR_READER_TOKEN' }));
    agent.close();
  });

  it('decide() is pure: validity window, block flag, zones', () => {
    const now = 1_700_000_000_000;
    const c = { version: 1, blocked: false, zones: 0b101, validFrom: 1_699_999_000, validUntil: 1_700_001_000, holder: new Uint8Array(16) };
    expect(decide(c, 0, now)).toBe('granted');
    expect(decide(c, 1, now)).toBe('denied:zone');
    expect(decide({ ...c, blocked: true }, 0, now)).toBe('denied:blocked');
    expect(decide(c, 0, 1_700_001_000_000)).toBe('denied:expired');
    expect(decide(c, 0, 1_699_998_000_000)).toBe('denied:not-yet-valid');
    expect(decide(undefined, 0, now)).toBe('denied:bad-credential');
  });
});

describe('reader agent: baton durability before upload', () => {
  it('group commit: sync() makes every entry durable before it uploads any (never an entry a power loss could still take)', async () => {
    const kp = generateReaderKeyPair();
    const baton = AuditBaton.open(mkdtempSync(join(tmpdir(), 'agent-')), { fsync: 'group', groupMs: 10_000 });
    const seen: { durable: number; length: number; sent: number }[] = [];
    const cms = {
      call: (_m: string, path: string, body?: { entries: { seq: number }[] }) => {
        const sent = body?.entries.length ?? 0;
        seen.push({ durable: baton.durable, length: baton.length, sent });
        const acked = path.endsWith('/baton') ? body!.entries[sent - 1]!.seq : baton.acknowledged;
        return Promise.resolve({ readerId: 'door-1', state: 'active', denylist: [], serverTime: Date.now(), acked, hash: '' });
      },
    } as unknown as CmsClient;
    const agent = new ReaderAgent({ readerId: 'door-1', roles: CAMPUS_ROLES, baton, unsealer: new ReaderUnsealer('door-1', kp.privateKey), keys: new SealingKeySource('door-1', kp.publicKey, () => cards), cms });
    await accessCheck(agent, cards[0]!.transport);
    await accessCheck(agent, cards[1]!.transport);
    expect(baton.durable).toBe(0); // written, not yet flushed (window 10 s)
    await agent.sync();
    expect(seen).toEqual([{ durable: 2, length: 2, sent: 2 }]);
    expect(baton.acknowledged).toBe(2);
    agent.close();
  });

  it('an upload waits while a key delivery is in flight (never in front of it at the CMS) and carries only entries already durable', async () => {
    const kp = generateReaderKeyPair();
    const baton = AuditBaton.open(mkdtempSync(join(tmpdir(), 'agent-')), { fsync: 'group', groupMs: 10_000 });
    const inner = new SealingKeySource('door-1', kp.publicKey, () => cards);
    // deliveries answer only when the test releases them
    const held: (() => void)[] = [];
    let inFlight = 0;
    const keys: OnlineKeySource = {
      async fetch(r) {
        inFlight++;
        try {
          const d = await inner.fetch(r);
          await new Promise<void>((res) => held.push(res));
          return d;
        } finally {
          inFlight--;
        }
      },
    };
    const calls: { sent: number[]; durable: number; deliveriesInFlight: number }[] = [];
    const cms = {
      call: (_m: string, path: string, body?: { entries: { seq: number }[] }) => {
        calls.push({ sent: body?.entries.map((e) => e.seq) ?? [], durable: baton.durable, deliveriesInFlight: inFlight });
        const acked = path.endsWith('/baton') ? body!.entries[body!.entries.length - 1]!.seq : baton.acknowledged;
        return Promise.resolve({ readerId: 'door-1', state: 'active', denylist: [], serverTime: Date.now(), acked, hash: '' });
      },
    } as unknown as CmsClient;
    const agent = new ReaderAgent({ readerId: 'door-1', roles: CAMPUS_ROLES, baton, unsealer: new ReaderUnsealer('door-1', kp.privateKey), keys, cms, syncMaxDelayMs: 5000 });
    const op = (result: string) => agent.record({ cardUid: cards[0]!.uid, aid: 'A1C001', keyNo: 1, keyVersion: 1, op: 'access-check', result });
    op('granted');
    op('granted');
    const tx = accessCheck(agent, cards[0]!.transport); // its delivery is now in flight
    await vi.waitFor(() => expect(inFlight).toBe(1));
    const synced = agent.sync();
    await vi.waitFor(() => expect(baton.durable).toBe(2)); // flushed first ...
    op('denied:zone'); // ... an entry written after the flush: not durable yet
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toEqual([]); // ... but nothing sent while the delivery is in flight
    held.shift()!();
    await synced;
    await tx;
    // sent after the delivery answered, and only what was durable (entry 3 waits for the next upload)
    expect(calls).toEqual([{ sent: [1, 2], durable: 2, deliveriesInFlight: 0 }]);
    expect(baton.acknowledged).toBe(2);
    await agent.sync();
    expect(calls.slice(1)).toEqual([{ sent: [3, 4], durable: 4, deliveriesInFlight: 0 }]);
    // a delivery that never answers does not hold the upload back for longer than syncMaxDelayMs
    const agent2 = new ReaderAgent({ readerId: 'door-1', roles: CAMPUS_ROLES, baton, unsealer: new ReaderUnsealer('door-1', kp.privateKey), keys, cms, syncMaxDelayMs: 100 });
    void agent2.obtainKey(cards[0]!.uid, 'A1C001', 1).catch(() => undefined);
    await vi.waitFor(() => expect(inFlight).toBe(1));
    agent2.record({ cardUid: cards[0]!.uid, aid: 'A1C001', keyNo: 1, keyVersion: 1, op: 'access-check', result: 'granted' });
    const t0 = Date.now();
    await agent2.sync();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(95);
    expect(calls.at(-1)).toEqual({ sent: [5], durable: 5, deliveriesInFlight: 1 });
    held.shift()!();
    agent.close();
  });
});

describe('reader agent: background sync timing', () => {
  it('uploads once operations pause for syncDelayMs, and at the latest syncMaxDelayMs after the first waiting entry while they keep coming', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const kp = generateReaderKeyPair();
      const baton = AuditBaton.open(mkdtempSync(join(tmpdir(), 'agent-')), { fsync: 'never' });
      const uploads: { at: number; seqs: number[] }[] = [];
      const cms = {
        call: (_m: string, path: string, body?: { entries: { seq: number }[] }) => {
          if (body) uploads.push({ at: Date.now(), seqs: body.entries.map((e) => e.seq) });
          const acked = path.endsWith('/baton') ? body!.entries[body!.entries.length - 1]!.seq : baton.acknowledged;
          return Promise.resolve({ readerId: 'door-1', state: 'active', denylist: [], serverTime: Date.now(), acked, hash: '' });
        },
      } as unknown as CmsClient;
      const agent = new ReaderAgent({ readerId: 'door-1', roles: CAMPUS_ROLES, baton, unsealer: new ReaderUnsealer('door-1', kp.privateKey), keys: new SealingKeySource('door-1', kp.publicKey, () => cards), cms, syncDelayMs: 200, syncMaxDelayMs: 1000 });
      const op = () => {
        agent.record({ cardUid: '04A1B2C3D4E5F6', aid: 'A1C001', keyNo: 1, keyVersion: 1, op: 'access-check', result: 'granted' });
        agent.scheduleSync();
      };
      const t0 = Date.now();
      // a door reader: two cards 100 ms apart, then quiet -> one upload 200 ms after the second
      op();
      await vi.advanceTimersByTimeAsync(100);
      op();
      await vi.advanceTimersByTimeAsync(199);
      expect(uploads).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(uploads).toEqual([{ at: t0 + 300, seqs: [1, 2] }]);
      // a busy reader: an operation every 50 ms for 3 s -> an upload every second, none lost
      const t1 = Date.now();
      for (let i = 0; i < 60; i++) {
        op();
        await vi.advanceTimersByTimeAsync(50);
      }
      expect(uploads.slice(1).map((u) => u.at - t1)).toEqual([1000, 2000, 3000]);
      await vi.advanceTimersByTimeAsync(200);
      expect(uploads.flatMap((u) => u.seqs)).toEqual(Array.from({ length: 62 }, (_, i) => i + 1));
      expect(baton.acknowledged).toBe(62);
      agent.close();
    } finally {
      vi.useRealTimers();
    }
  });
});

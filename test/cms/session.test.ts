// One session-store suite, run against the in-memory store and a real Redis. For Redis, two
// store instances stand for two CMS processes sharing one Redis.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemorySessionStore, SessionStoreError, openSessionStore, type SessionStore } from '../../src/cms/session/index.js';
import type { RedisSessionStore } from '../../src/cms/session/redis.js';
import { REDIS_URL, requireComponent, tcpReachable } from '../helpers/system.js';

const ru = new URL(REDIS_URL);
const redisOk = requireComponent('Redis', await tcpReachable(ru.hostname, Number(ru.port || 6379)));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const kind of ['memory', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisOk)(`session store: ${kind}`, () => {
    let a: SessionStore;
    let b: SessionStore; // "another process"
    const prefix = `test:${randomBytes(6).toString('hex')}:`;
    beforeAll(async () => {
      if (kind === 'memory') {
        a = b = await openSessionStore({ kind: 'memory' });
      } else {
        a = await openSessionStore({ kind: 'redis', url: REDIS_URL, prefix });
        b = await openSessionStore({ kind: 'redis', url: REDIS_URL, prefix });
      }
    });
    afterAll(async () => {
      if (kind === 'redis') await (a as RedisSessionStore).clearPrefix();
      await a?.close();
      if (b !== a) await b?.close();
    });

    it('consumeOnce: true the first time, false on replay, in every process', async () => {
      expect(await a.consumeOnce('tok-1', 60_000)).toBe(true);
      expect(await a.consumeOnce('tok-1', 60_000)).toBe(false);
      expect(await b.consumeOnce('tok-1', 60_000)).toBe(false);
      expect(await b.consumeOnce('tok-2', 60_000)).toBe(true);
      expect(await a.consumeOnce('tok-2', 60_000)).toBe(false);
    });

    it('consumeOnce under concurrency: exactly one winner across processes', async () => {
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).consumeOnce('race', 60_000)));
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('consumeOnce records expire after their TTL', async () => {
      expect(await a.consumeOnce('short', 30)).toBe(true);
      await sleep(150);
      expect(await b.consumeOnce('short', 30)).toBe(true);
    });

    it('values: set, get, take once, delete, expire', async () => {
      await a.setValue('v1', 'hello', 60_000);
      expect(await b.getValue('v1')).toBe('hello');
      const takers = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).takeValue('v1')));
      expect(takers.filter((x) => x === 'hello')).toHaveLength(1);
      expect(await a.getValue('v1')).toBeUndefined();
      await a.setValue('v2', 'x', 60_000);
      await b.deleteValue('v2');
      expect(await a.getValue('v2')).toBeUndefined();
      await a.setValue('v3', 'y', 30);
      await sleep(150);
      expect(await b.getValue('v3')).toBeUndefined();
    });

    for (const mode of ['fixed', 'sliding'] as const) {
      it(`rate limit (${mode}): counts shared hits, refuses over the limit, reopens after the window`, async () => {
        const key = `rl-${mode}`;
        const r1 = await a.hit(key, 3, 60_000, mode);
        expect(r1).toEqual({ allowed: true, remaining: 2, resetMs: 0 });
        expect((await b.hit(key, 3, 60_000, mode)).remaining).toBe(1);
        const r3 = await a.hit(key, 3, 60_000, mode);
        expect(r3.allowed).toBe(true);
        expect(r3.remaining).toBe(0);
        expect(r3.resetMs).toBeGreaterThan(0);
        expect(r3.resetMs).toBeLessThanOrEqual(60_000);
        const r4 = await b.hit(key, 3, 60_000, mode);
        expect(r4.allowed).toBe(false);
        expect(r4.remaining).toBe(0);
        expect(r4.resetMs).toBeGreaterThan(0);
        // another key, and the same key with another limit, are independent
        expect((await a.hit(key + '-other', 3, 60_000, mode)).allowed).toBe(true);
        // a short window reopens
        const sk = `short-${mode}`;
        expect((await a.hit(sk, 1, 50, mode)).allowed).toBe(true);
        expect((await b.hit(sk, 1, 50, mode)).allowed).toBe(false);
        await sleep(200);
        expect((await b.hit(sk, 1, 50, mode)).allowed).toBe(true);
      });

      it(`rate limit (${mode}): concurrent hits from two processes never exceed the limit`, async () => {
        const res = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).hit(`conc-${mode}`, 10, 60_000, mode)));
        expect(res.filter((r) => r.allowed)).toHaveLength(10);
      });
    }

    it('rate limit (fixed): hits made in one turn are each counted as alone, in the order made', async () => {
      // the same sequence of hits, one by one and all in one turn (one script call on Redis), on fresh keys
      const seq: [string, number][] = [['x', 3], ['y', 1], ['x', 3], ['x', 3], ['z', 2], ['y', 1], ['x', 3], ['x', 3], ['z', 2], ['z', 2]];
      const shape = (r: { allowed: boolean; remaining: number; resetMs: number }) => [r.allowed, r.remaining, r.remaining === 0 ? r.resetMs > 0 && r.resetMs <= 60_000 : r.resetMs === 0];
      const alone = [];
      for (const [k, limit] of seq) alone.push(shape(await a.hit(`turn-alone-${k}`, limit, 60_000)));
      const counted: string[] = [];
      const client = kind === 'redis' ? (a as unknown as { r: { sendCommand(c: { name: string }): unknown } }).r : undefined;
      const orig = client?.sendCommand;
      if (client) {
        client.sendCommand = function (this: unknown, c: { name: string }, ...rest: unknown[]) {
          counted.push(c.name);
          return (orig as (...x: unknown[]) => unknown).call(this, c, ...rest);
        };
      }
      let together;
      try {
        together = (await Promise.all(seq.map(([k, limit]) => a.hit(`turn-together-${k}`, limit, 60_000)))).map(shape);
      } finally {
        if (client) client.sendCommand = orig!;
      }
      expect(together).toEqual(alone);
      expect(alone.map((r) => r[0])).toEqual([true, true, true, true, true, false, false, false, true, false]);
      if (kind === 'redis') expect(counted.filter((n) => n === 'evalsha' || n === 'eval')).toHaveLength(1);
    });

    it.skipIf(kind !== 'redis')('rate limit (fixed): an unusable counter fails its own hit only, in a turn with others', async () => {
      const r = (a as unknown as { r: { set(k: string, v: string): Promise<unknown> } }).r;
      await r.set(`${prefix}rl:f:5:60000:broken`, 'not a counter');
      const out = await Promise.allSettled([a.hit('ok-1', 5, 60_000), a.hit('broken', 5, 60_000), a.hit('ok-1', 5, 60_000)]);
      expect(out.map((o) => (o.status === 'fulfilled' ? o.value.remaining : (o.reason as SessionStoreError).code))).toEqual([4, 'ERR_SESSION_UNAVAILABLE', 3]);
    });

    it('sets (denylist): add, test, remove, expire', async () => {
      await a.addToSet('revoked-readers', 'r-1');
      await a.addToSet('revoked:readers', 'x'); // names with separators do not collide
      expect(await b.isInSet('revoked-readers', 'r-1')).toBe(true);
      expect(await b.isInSet('revoked-readers', 'r-2')).toBe(false);
      expect(await b.isInSet('revoked', 'readers:x')).toBe(false);
      await b.removeFromSet('revoked-readers', 'r-1');
      expect(await a.isInSet('revoked-readers', 'r-1')).toBe(false);
      await a.addToSet('blocked-tokens', 't-1', 30);
      expect(await b.isInSet('blocked-tokens', 't-1')).toBe(true);
      await sleep(150);
      expect(await b.isInSet('blocked-tokens', 't-1')).toBe(false);
    });

    it('bad input is refused with ERR_SESSION_INPUT and changes nothing', async () => {
      await expect(a.consumeOnce('', 1000)).rejects.toMatchObject({ code: 'ERR_SESSION_INPUT' });
      await expect(a.consumeOnce('bad-ttl', 0)).rejects.toBeInstanceOf(SessionStoreError);
      await expect(a.consumeOnce('bad-ttl', 1.5)).rejects.toMatchObject({ code: 'ERR_SESSION_INPUT' });
      expect(await a.consumeOnce('bad-ttl', 60_000)).toBe(true); // the refused calls did not consume it
      await expect(a.hit('k', 0, 1000)).rejects.toMatchObject({ code: 'ERR_SESSION_INPUT' });
      await expect(a.hit('k', 1, 1000, 'weird' as never)).rejects.toMatchObject({ code: 'ERR_SESSION_INPUT' });
      await expect(a.setValue('k', 'v', -1)).rejects.toMatchObject({ code: 'ERR_SESSION_INPUT' });
      await expect(a.addToSet('s', 'x'.repeat(10_000))).rejects.toMatchObject({ code: 'ERR_SESSION_INPUT' });
      expect(await a.getValue('k')).toBeUndefined();
    });
  });
}

describe('session store configuration', () => {
  it('defaults to memory', async () => {
    const s = await openSessionStore();
    expect(s.kind).toBe('memory');
    expect(s).toBeInstanceOf(MemorySessionStore);
    await s.close();
  });
  it('rejects bad configurations and reports an unreachable Redis', async () => {
    await expect(openSessionStore({ kind: 'nope' } as never)).rejects.toMatchObject({ code: 'ERR_SESSION_CONFIG' });
    await expect(openSessionStore({ kind: 'redis', url: 'http://x' })).rejects.toMatchObject({ code: 'ERR_SESSION_CONFIG' });
    await expect(openSessionStore({ kind: 'redis', url: 'redis://127.0.0.1:1' })).rejects.toMatchObject({ code: 'ERR_SESSION_UNAVAILABLE' });
  });
  it('memory store: fixed window resets exactly at the window boundary (injected clock)', async () => {
    let t = 1000;
    const s = new MemorySessionStore({ now: () => t });
    expect((await s.hit('k', 2, 100)).remaining).toBe(1);
    t = 1050;
    const r = await s.hit('k', 2, 100);
    expect(r).toEqual({ allowed: true, remaining: 0, resetMs: 50 });
    expect((await s.hit('k', 2, 100)).allowed).toBe(false);
    t = 1100;
    expect((await s.hit('k', 2, 100)).allowed).toBe(true);
    // sliding: a hit leaves the window windowMs after it was made
    t = 5000;
    await s.hit('s', 2, 100, 'sliding');
    t = 5060;
    await s.hit('s', 2, 100, 'sliding');
    t = 5099;
    expect((await s.hit('s', 2, 100, 'sliding')).resetMs).toBe(1);
    t = 5100;
    expect((await s.hit('s', 2, 100, 'sliding')).allowed).toBe(true);
    t = 5101;
    expect((await s.hit('s', 2, 100, 'sliding')).allowed).toBe(false);
  });
});

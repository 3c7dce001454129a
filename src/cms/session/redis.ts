// Redis session store: many CMS processes share tokens, values, limits and sets. Every
// operation is one atomic Redis command or one Lua script (SET NX PX, GETDEL, INCR/ZSET
// scripts that read the server's clock, so processes with skewed clocks agree).
import { randomUUID } from 'node:crypto';
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import { Coalescer } from '../delivery/batch.js';
import {
  type RateLimitMode,
  type RateLimitResult,
  type SessionStore,
  SessionStoreError,
  checkKey,
  checkLimit,
  checkTtl,
} from './types.js';

// Fixed-window hits on KEYS[1..n] (ARGV: limit, window for each key, in order), each counted as
// alone, one after another; the answer is {allowed, remaining, resetMs} per key, flattened. The
// hits of one event-loop turn go out as ONE script call (see hit()); a single hit is n = 1. A key
// whose INCR fails (not a counter) answers {-1, 0, 0}: that hit alone fails, the others count.
const FIXED = `
local out = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local limit = tonumber(ARGV[2 * i - 1])
  local win = tonumber(ARGV[2 * i])
  local c = redis.pcall('INCR', key)
  local n = #out
  if type(c) == 'table' then
    out[n + 1] = -1; out[n + 2] = 0; out[n + 3] = 0
  else
    if c == 1 then redis.call('PEXPIRE', key, win) end
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then redis.call('PEXPIRE', key, win); ttl = win end
    if c > limit then
      redis.call('DECR', key)
      out[n + 1] = 0; out[n + 2] = 0; out[n + 3] = ttl
    elseif c == limit then
      out[n + 1] = 1; out[n + 2] = 0; out[n + 3] = ttl
    else
      out[n + 1] = 1; out[n + 2] = limit - c; out[n + 3] = 0
    end
  end
end
return out
`;

const SLIDING = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local win = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, 0, tonumber(first[2]) + win - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], win)
local rem = limit - n - 1
if rem == 0 then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, 0, tonumber(first[2]) + win - now}
end
return {1, rem, 0}
`;

type Scripted = RedisClient & {
  /** numberOfKeys, the keys, then (limit, windowMs) per key. */
  rlFixed(n: number, ...keysThenArgs: (string | number)[]): Promise<number[]>;
  rlSliding(key: string, limit: number, windowMs: number, member: string): Promise<[number, number, number]>;
};

export interface RedisSessionOptions {
  url: string;
  /** Prefix of every key (default 'desfire:'); tests use one per run. */
  prefix?: string;
}

export class RedisSessionStore implements SessionStore {
  readonly kind = 'redis' as const;
  /**
   * The fixed-window hits of one event-loop turn (the rate limits of the requests parsed together)
   * in ONE script call: one command to encode, send, run and answer instead of one each (ioredis'
   * auto-pipelining already sent them in one write, but still as N commands). Each hit is counted
   * exactly as alone, in the order made; a failed call fails every hit of it (unavailable).
   */
  private readonly fixedHits: Coalescer<[string, number, number], [number, number, number]>;

  private constructor(
    private readonly r: Scripted,
    private readonly prefix: string,
  ) {
    this.fixedHits = new Coalescer(async (hits) => {
      const args: (string | number)[] = hits.map((h) => h[0]);
      for (const h of hits) args.push(h[1], h[2]);
      const flat = await this.r.rlFixed(hits.length, ...args);
      if (!Array.isArray(flat) || flat.length !== 3 * hits.length) throw new Error('rate-limit script: unexpected answer');
      return hits.map((_, i): [number, number, number] => [flat[3 * i]!, flat[3 * i + 1]!, flat[3 * i + 2]!]);
    }, 256);
  }

  static async open(options: RedisSessionOptions): Promise<RedisSessionStore> {
    if (typeof options.url !== 'string' || !/^rediss?:\/\//.test(options.url)) {
      throw new SessionStoreError('ERR_SESSION_CONFIG', 'redis: url must be a redis:// or rediss:// URL');
    }
    const prefix = options.prefix ?? 'desfire:';
    if (typeof prefix !== 'string' || prefix.length > 128) throw new SessionStoreError('ERR_SESSION_CONFIG', 'redis: prefix must be a short string');
    let Redis: typeof import('ioredis').Redis; // eslint-disable-line @typescript-eslint/consistent-type-imports
    try {
      Redis = (await import('ioredis')).Redis;
    } catch (e) {
      throw new SessionStoreError('ERR_SESSION_UNAVAILABLE', 'redis: the ioredis driver is not installed', { cause: e });
    }
    // enableAutoPipelining: the commands issued in one event-loop tick (e.g. the rate-limit hits of
    // many readers' requests parsed together) leave in one socket write; each is still its own
    // atomic command or script, answered in order. noDelay (ioredis' default) stays on.
    const opts: RedisOptions = { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true, connectTimeout: 5000, enableAutoPipelining: true };
    const r = new Redis(options.url, opts) as Scripted;
    r.on('error', () => {
      /* reconnects by itself; commands fail with ERR_SESSION_UNAVAILABLE meanwhile */
    });
    r.defineCommand('rlFixed', { lua: FIXED }); // the number of keys is the first argument
    r.defineCommand('rlSliding', { numberOfKeys: 1, lua: SLIDING });
    try {
      await r.connect();
      await r.ping();
    } catch (e) {
      r.disconnect();
      throw new SessionStoreError('ERR_SESSION_UNAVAILABLE', `redis: cannot connect: ${(e as Error).message}`, { cause: e });
    }
    return new RedisSessionStore(r, prefix);
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw new SessionStoreError('ERR_SESSION_UNAVAILABLE', `redis: ${(e as Error).message}`, { cause: e });
    }
  }

  async consumeOnce(id: string, ttlMs: number): Promise<boolean> {
    checkKey('id', id);
    checkTtl(ttlMs);
    const res = await this.call(() => this.r.set(this.prefix + 'once:' + id, '1', 'PX', ttlMs, 'NX'));
    return res === 'OK';
  }

  async setValue(key: string, value: string, ttlMs: number): Promise<void> {
    checkKey('key', key);
    checkTtl(ttlMs);
    if (typeof value !== 'string') checkKey('value', value);
    await this.call(() => this.r.set(this.prefix + 'val:' + key, value, 'PX', ttlMs));
  }

  async getValue(key: string): Promise<string | undefined> {
    checkKey('key', key);
    return (await this.call(() => this.r.get(this.prefix + 'val:' + key))) ?? undefined;
  }

  async takeValue(key: string): Promise<string | undefined> {
    checkKey('key', key);
    return (await this.call(() => this.r.getdel(this.prefix + 'val:' + key))) ?? undefined;
  }

  async deleteValue(key: string): Promise<void> {
    checkKey('key', key);
    await this.call(() => this.r.del(this.prefix + 'val:' + key));
  }

  async hit(key: string, limit: number, windowMs: number, mode: RateLimitMode = 'fixed'): Promise<RateLimitResult> {
    checkKey('key', key);
    checkLimit(limit, windowMs, mode);
    const k = `${this.prefix}rl:${mode === 'fixed' ? 'f' : 's'}:${limit}:${windowMs}:${key}`;
    const res = await this.call(() => (mode === 'fixed' ? this.fixedHits.load([k, limit, windowMs]) : this.r.rlSliding(k, limit, windowMs, randomUUID())));
    if (!res || res[0] === -1) throw new SessionStoreError('ERR_SESSION_UNAVAILABLE', 'redis: the rate-limit counter is unusable');
    const [ok, remaining, resetMs] = res;
    return { allowed: ok === 1, remaining: Number(remaining), resetMs: Math.max(0, Number(resetMs)) };
  }

  private setKey(set: string, member: string): string {
    return `${this.prefix}set:${set.length}:${set}:${member}`;
  }

  async addToSet(set: string, member: string, ttlMs?: number): Promise<void> {
    checkKey('set', set);
    checkKey('member', member);
    if (ttlMs !== undefined) checkTtl(ttlMs);
    const k = this.setKey(set, member);
    await this.call(() => (ttlMs === undefined ? this.r.set(k, '1') : this.r.set(k, '1', 'PX', ttlMs)));
  }

  async removeFromSet(set: string, member: string): Promise<void> {
    checkKey('set', set);
    checkKey('member', member);
    await this.call(() => this.r.del(this.setKey(set, member)));
  }

  async isInSet(set: string, member: string): Promise<boolean> {
    checkKey('set', set);
    checkKey('member', member);
    return (await this.call(() => this.r.exists(this.setKey(set, member)))) === 1;
  }

  /** Delete every key under this store's prefix (tests). */
  async clearPrefix(): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.call(() => this.r.scan(cursor, 'MATCH', this.prefix + '*', 'COUNT', 500));
      if (keys.length) await this.call(() => this.r.del(...keys));
      cursor = next;
    } while (cursor !== '0');
  }

  async close(): Promise<void> {
    try {
      await this.r.quit();
    } catch {
      this.r.disconnect();
    }
  }
}

// Redis session store: many CMS processes share tokens, values, limits and sets. Every
// operation is one atomic Redis command or one Lua script (SET NX PX, GETDEL, INCR/ZSET
// scripts that read the server's clock, so processes with skewed clocks agree).
import { randomUUID } from 'node:crypto';
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import {
  type RateLimitMode,
  type RateLimitResult,
  type SessionStore,
  SessionStoreError,
  checkKey,
  checkLimit,
  checkTtl,
} from './types.js';

const FIXED = `
local c = redis.call('INCR', KEYS[1])
local win = tonumber(ARGV[2])
if c == 1 then redis.call('PEXPIRE', KEYS[1], win) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], win); ttl = win end
local limit = tonumber(ARGV[1])
if c > limit then redis.call('DECR', KEYS[1]); return {0, 0, ttl} end
if c == limit then return {1, 0, ttl} end
return {1, limit - c, 0}
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
  rlFixed(key: string, limit: number, windowMs: number): Promise<[number, number, number]>;
  rlSliding(key: string, limit: number, windowMs: number, member: string): Promise<[number, number, number]>;
};

export interface RedisSessionOptions {
  url: string;
  /** Prefix of every key (default 'desfire:'); tests use one per run. */
  prefix?: string;
}

export class RedisSessionStore implements SessionStore {
  readonly kind = 'redis' as const;
  private constructor(
    private readonly r: Scripted,
    private readonly prefix: string,
  ) {}

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
    r.defineCommand('rlFixed', { numberOfKeys: 1, lua: FIXED });
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
    const [ok, remaining, resetMs] = await this.call(() =>
      mode === 'fixed' ? this.r.rlFixed(k, limit, windowMs) : this.r.rlSliding(k, limit, windowMs, randomUUID()),
    );
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

// In-memory session store: one process (the embedded default). Expired records are removed
// lazily on access and by an occasional sweep (no timers, so it never keeps a process alive).
import {
  type RateLimitMode,
  type RateLimitResult,
  type SessionStore,
  checkKey,
  checkLimit,
  checkTtl,
} from './types.js';

interface Rec {
  value: string;
  expires: number; // ms epoch; Infinity = never
}

export interface MemorySessionOptions {
  /** Clock (ms); tests inject one. */
  now?: () => number;
}

export class MemorySessionStore implements SessionStore {
  readonly kind = 'memory' as const;
  private readonly values = new Map<string, Rec>();
  private readonly windows = new Map<string, { start: number; count: number; expires: number }>();
  private readonly logs = new Map<string, { hits: number[]; expires: number }>();
  private readonly sets = new Map<string, Rec>();
  private readonly now: () => number;
  private ops = 0;

  constructor(options: MemorySessionOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  private tick(): number {
    const t = this.now();
    if (++this.ops % 1024 === 0) this.sweep(t);
    return t;
  }

  private sweep(t: number): void {
    for (const m of [this.values, this.windows, this.logs, this.sets] as Map<string, { expires: number }>[]) {
      for (const [k, v] of m) if (v.expires <= t) m.delete(k);
    }
  }

  private live(key: string, t: number): Rec | undefined {
    const r = this.values.get(key);
    if (r && r.expires <= t) {
      this.values.delete(key);
      return undefined;
    }
    return r;
  }

  async consumeOnce(id: string, ttlMs: number): Promise<boolean> {
    checkKey('id', id);
    checkTtl(ttlMs);
    const t = this.tick();
    const k = 'once\0' + id;
    if (this.live(k, t)) return false;
    this.values.set(k, { value: '1', expires: t + ttlMs });
    return true;
  }

  async setValue(key: string, value: string, ttlMs: number): Promise<void> {
    checkKey('key', key);
    checkTtl(ttlMs);
    if (typeof value !== 'string') checkKey('value', value);
    this.values.set('val\0' + key, { value, expires: this.tick() + ttlMs });
  }

  async getValue(key: string): Promise<string | undefined> {
    checkKey('key', key);
    return this.live('val\0' + key, this.tick())?.value;
  }

  async takeValue(key: string): Promise<string | undefined> {
    checkKey('key', key);
    const r = this.live('val\0' + key, this.tick());
    this.values.delete('val\0' + key);
    return r?.value;
  }

  async deleteValue(key: string): Promise<void> {
    checkKey('key', key);
    this.values.delete('val\0' + key);
  }

  async hit(key: string, limit: number, windowMs: number, mode: RateLimitMode = 'fixed'): Promise<RateLimitResult> {
    checkKey('key', key);
    checkLimit(limit, windowMs, mode);
    const t = this.tick();
    const k = `${limit}\0${windowMs}\0${key}`;
    if (mode === 'fixed') {
      let w = this.windows.get(k);
      if (!w || w.expires <= t) {
        w = { start: t, count: 0, expires: t + windowMs };
        this.windows.set(k, w);
      }
      if (w.count >= limit) return { allowed: false, remaining: 0, resetMs: w.expires - t };
      w.count++;
      const remaining = limit - w.count;
      return { allowed: true, remaining, resetMs: remaining > 0 ? 0 : w.expires - t };
    }
    let log = this.logs.get(k);
    if (!log) {
      log = { hits: [], expires: 0 };
      this.logs.set(k, log);
    }
    const from = t - windowMs;
    let drop = 0;
    while (drop < log.hits.length && log.hits[drop]! <= from) drop++;
    if (drop) log.hits.splice(0, drop);
    if (log.hits.length >= limit) return { allowed: false, remaining: 0, resetMs: log.hits[0]! + windowMs - t };
    log.hits.push(t);
    log.expires = t + windowMs;
    const remaining = limit - log.hits.length;
    return { allowed: true, remaining, resetMs: remaining > 0 ? 0 : log.hits[0]! + windowMs - t };
  }

  async addToSet(set: string, member: string, ttlMs?: number): Promise<void> {
    checkKey('set', set);
    checkKey('member', member);
    if (ttlMs !== undefined) checkTtl(ttlMs);
    const t = this.tick();
    this.sets.set(set + '\0' + member, { value: '1', expires: ttlMs === undefined ? Infinity : t + ttlMs });
  }

  async removeFromSet(set: string, member: string): Promise<void> {
    checkKey('set', set);
    checkKey('member', member);
    this.sets.delete(set + '\0' + member);
  }

  async isInSet(set: string, member: string): Promise<boolean> {
    checkKey('set', set);
    checkKey('member', member);
    const k = set + '\0' + member;
    const r = this.sets.get(k);
    if (!r) return false;
    if (r.expires <= this.tick()) {
      this.sets.delete(k);
      return false;
    }
    return true;
  }

  async close(): Promise<void> {
    this.values.clear();
    this.windows.clear();
    this.logs.clear();
    this.sets.clear();
  }
}

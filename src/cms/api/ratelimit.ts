// A process-local fixed-window rate limiter, used only when no session store is wired (tests of
// the API alone). The server uses the session store's `hit` (memory or Redis, shared across
// processes).
import type { RateLimiter } from './ports.js';

export class LocalRateLimiter implements RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();
  constructor(private readonly now: () => number = Date.now) {}

  async hit(key: string, limit: number, windowMs: number) {
    const t = this.now();
    let w = this.windows.get(key);
    if (!w || t - w.start >= windowMs) {
      w = { start: t, count: 0 };
      this.windows.set(key, w);
      if (this.windows.size > 100_000) for (const [k, v] of this.windows) if (t - v.start >= windowMs) this.windows.delete(k);
    }
    w.count++;
    return { allowed: w.count <= limit, remaining: Math.max(0, limit - w.count), resetMs: w.start + windowMs - t };
  }
}

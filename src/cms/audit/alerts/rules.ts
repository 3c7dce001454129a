// The alert rules: a pure, synchronous state machine over committed entries (in index order).
// Time is the entries' own time, so replaying a log raises the same alerts.
import { releasedKeys } from '../custody-event.js';
import type { AuditEntry, Json } from '../entry.js';
import type { AlertConfig, AlertRule } from './types.js';

export interface RawAlert {
  rule: AlertRule;
  severity: 'warning' | 'critical';
  subject: string;
  message: string;
  details: Record<string, Json>;
  entryIdx: number;
  time: number;
}

class SlidingCounter {
  private readonly hits = new Map<string, number[]>();
  hit(key: string, t: number, windowMs: number): number {
    let a = this.hits.get(key);
    if (!a) this.hits.set(key, (a = []));
    a.push(t);
    let drop = 0;
    while (drop < a.length && a[drop]! <= t - windowMs) drop++;
    if (drop) a.splice(0, drop);
    return a.length;
  }
}

interface RateState {
  windowStart: number;
  count: number;
  baseline?: number;
  fired: boolean;
}

export class AlertRules {
  private readonly authCard = new SlidingCounter();
  private readonly authReader = new SlidingCounter();
  private readonly rates = new Map<string, RateState>();
  private readonly learned = new Map<string, Set<string>>();
  private readonly batons = new Map<string, number>();
  private readonly lastFired = new Map<string, number>();

  constructor(private readonly cfg: AlertConfig) {}

  /** The alerts this entry raises (after cooldown). */
  observe(e: AuditEntry): RawAlert[] {
    const out: RawAlert[] = [];
    const raise = (a: Omit<RawAlert, 'entryIdx' | 'time'>) => {
      const k = `${a.rule}\0${a.subject}`;
      const last = this.lastFired.get(k);
      if (last !== undefined && e.time - last < this.cfg.cooldownMs) return;
      this.lastFired.set(k, e.time);
      out.push({ ...a, entryIdx: e.index, time: e.time });
    };
    this.failedAuth(e, raise);
    this.massRelease(e, raise);
    this.address(e, raise);
    this.baton(e, raise);
    this.revoked(e, raise);
    return out;
  }

  private failedAuth(e: AuditEntry, raise: (a: Omit<RawAlert, 'entryIdx' | 'time'>) => void): void {
    const c = this.cfg.failedAuth;
    if (!e.operation.toLowerCase().includes(c.match.toLowerCase())) return;
    if (e.result === 'ok' || e.result === 'requested') return;
    if (e.cardUid) {
      const n = this.authCard.hit(e.cardUid, e.time, c.windowMs);
      if (n >= c.perCard) {
        raise({ rule: 'failed-auth-card', severity: 'warning', subject: `card:${e.cardUid}`, message: `${n} failed authentications on card ${e.cardUid} within ${c.windowMs} ms`, details: { count: n, cardUid: e.cardUid } });
      }
    }
    if (e.readerId) {
      const n = this.authReader.hit(e.readerId, e.time, c.windowMs);
      if (n >= c.perReader) {
        raise({ rule: 'failed-auth-reader', severity: 'warning', subject: `reader:${e.readerId}`, message: `${n} failed authentications at reader ${e.readerId} within ${c.windowMs} ms`, details: { count: n, readerId: e.readerId } });
      }
    }
  }

  private massRelease(e: AuditEntry, raise: (a: Omit<RawAlert, 'entryIdx' | 'time'>) => void): void {
    const c = this.cfg.massRelease;
    if (!c.operations.includes(e.operation) || e.result !== 'ok') return;
    const who = e.readerId ? `reader:${e.readerId}` : e.actor ? `actor:${e.actor}` : undefined;
    if (!who) return;
    let s = this.rates.get(who);
    if (!s) this.rates.set(who, (s = { windowStart: e.time, count: 0, fired: false }));
    while (e.time >= s.windowStart + c.windowMs) {
      // close the window: fold its count into the baseline (EWMA); idle windows count as 0
      s.baseline = s.baseline === undefined ? s.count : 0.7 * s.baseline + 0.3 * s.count;
      s.windowStart += c.windowMs;
      s.count = 0;
      s.fired = false;
      if (e.time - s.windowStart > 100 * c.windowMs) s.windowStart = e.time - ((e.time - s.windowStart) % c.windowMs);
    }
    s.count += releasedKeys(e).length; // a station job's seal batch counts every key it released
    const limit = Math.max(c.minCount, c.factor * (s.baseline ?? 0));
    if (!s.fired && s.count > limit) {
      s.fired = true;
      raise({
        rule: 'mass-key-release',
        severity: 'critical',
        subject: who,
        message: `${s.count} key releases by ${who} in one ${c.windowMs} ms window (baseline ${(s.baseline ?? 0).toFixed(1)})`,
        details: { count: s.count, baseline: Math.round((s.baseline ?? 0) * 10) / 10, windowMs: c.windowMs },
      });
    }
  }

  private address(e: AuditEntry, raise: (a: Omit<RawAlert, 'entryIdx' | 'time'>) => void): void {
    const addr = e.details.address;
    if (!e.readerId || typeof addr !== 'string') return;
    const allowed = this.cfg.address.expected[e.readerId];
    const ok = (list: Iterable<string>) => {
      for (const p of list) if (addr === p || ((p.endsWith('.') || p.endsWith(':')) && addr.startsWith(p))) return true;
      return false;
    };
    if (allowed) {
      if (!ok(allowed)) {
        raise({ rule: 'unexpected-address', severity: 'critical', subject: `reader:${e.readerId}`, message: `reader ${e.readerId} called from ${addr}, not an expected address`, details: { address: addr, expected: allowed } });
      }
      return;
    }
    if (!this.cfg.address.learn) return;
    const seen = this.learned.get(e.readerId);
    if (!seen) {
      this.learned.set(e.readerId, new Set([addr]));
      return;
    }
    if (!seen.has(addr)) {
      raise({ rule: 'unexpected-address', severity: 'warning', subject: `reader:${e.readerId}`, message: `reader ${e.readerId} called from a new address ${addr}`, details: { address: addr, known: [...seen] } });
      seen.add(addr);
    }
  }

  private baton(e: AuditEntry, raise: (a: Omit<RawAlert, 'entryIdx' | 'time'>) => void): void {
    if (e.operation !== this.cfg.baton.operation || !e.readerId) return;
    const from = e.details.seqFrom;
    const to = e.details.seqTo;
    if (typeof from !== 'number' || typeof to !== 'number') return;
    const last = this.batons.get(e.readerId);
    if (last !== undefined && from !== last + 1) {
      raise({
        rule: 'baton-gap',
        severity: 'critical',
        subject: `reader:${e.readerId}`,
        message: from > last + 1 ? `reader ${e.readerId} baton skipped ${last + 1}..${from - 1}` : `reader ${e.readerId} baton repeated from ${from} (last ${last})`,
        details: { expected: last + 1, got: from },
      });
    }
    this.batons.set(e.readerId, Math.max(to, last ?? -1));
  }

  private revoked(e: AuditEntry, raise: (a: Omit<RawAlert, 'entryIdx' | 'time'>) => void): void {
    const codes = this.cfg.revoked.codes;
    const code = e.details.code ?? e.details.reason;
    if (!e.readerId || typeof code !== 'string' || !codes.includes(code)) return;
    raise({ rule: 'revoked-reader', severity: 'critical', subject: `reader:${e.readerId}`, message: `attempt by revoked reader ${e.readerId}: ${e.operation}`, details: { operation: e.operation, code } });
  }
}

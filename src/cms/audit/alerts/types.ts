// Alerts raised over the audit stream: rule ids, configuration (every threshold configurable),
// and the alert record.
import type { Json } from '../entry.js';

export type AlertRule =
  | 'failed-auth-card' // repeated failed authentication on one card
  | 'failed-auth-reader' // repeated failed authentication at one reader
  | 'mass-key-release' // key releases by a reader/operator far above its baseline
  | 'unexpected-address' // a reader calling from an address it is not expected at
  | 'baton-gap' // a reader's audit baton skipped (or replayed) sequence numbers
  | 'revoked-reader'; // an attempt by a revoked reader

export interface Alert {
  id: string;
  time: number;
  rule: AlertRule;
  severity: 'warning' | 'critical';
  subject: string;
  message: string;
  details: Record<string, Json>;
  entryIdx: number | null;
}

export interface AlertConfig {
  failedAuth: {
    /** Operations that are authentications (substring match, case-insensitive). */
    match: string;
    windowMs: number;
    perCard: number;
    perReader: number;
  };
  massRelease: {
    operations: string[];
    windowMs: number;
    /** Alert when a window's count exceeds factor x the subject's baseline (EWMA of past windows)... */
    factor: number;
    /** ...and at least this many. */
    minCount: number;
  };
  address: {
    /** Allowed addresses (exact, or a prefix ending in '.' or ':') per reader id. */
    expected: Record<string, string[]>;
    /** For readers not in `expected`: remember the first address and alert on any other. */
    learn: boolean;
  };
  baton: { operation: string };
  revoked: {
    /** Error codes / reasons that mean "this reader is revoked". */
    codes: string[];
  };
  /** No repeat of the same (rule, subject) alert within this time. */
  cooldownMs: number;
}

export const DEFAULT_ALERT_CONFIG: AlertConfig = {
  failedAuth: { match: 'auth', windowMs: 5 * 60_000, perCard: 5, perReader: 20 },
  massRelease: { operations: ['key.release', 'key.deliver', 'custody.seal', 'custody.seal_batch', 'custody.seal_master', 'custody.export_for_card'], windowMs: 60_000, factor: 5, minCount: 100 },
  address: { expected: {}, learn: true },
  baton: { operation: 'reader.baton' },
  revoked: { codes: ['ERR_READER_REVOKED', 'reader_revoked', 'revoked'] },
  cooldownMs: 5 * 60_000,
};

/** Merge a partial configuration over the defaults (one level deep). */
export function alertConfig(partial: { [K in keyof AlertConfig]?: Partial<AlertConfig[K]> | AlertConfig[K] } = {}): AlertConfig {
  const d = DEFAULT_ALERT_CONFIG;
  return {
    failedAuth: { ...d.failedAuth, ...(partial.failedAuth as object) },
    massRelease: { ...d.massRelease, ...(partial.massRelease as object) },
    address: { ...d.address, ...(partial.address as object) },
    baton: { ...d.baton, ...(partial.baton as object) },
    revoked: { ...d.revoked, ...(partial.revoked as object) },
    cooldownMs: (partial.cooldownMs as number | undefined) ?? d.cooldownMs,
  };
}

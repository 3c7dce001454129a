// The one thing rotation needs from the audit log: record an entry (durable when it resolves).
import type { AuditInput } from '../audit/entry.js';

export interface AuditRecorder {
  record(input: AuditInput): Promise<unknown>;
}

/** A recorder that drops everything (benchmarks, unit tests of pure planning). */
export const NO_AUDIT: AuditRecorder = { record: async () => undefined };

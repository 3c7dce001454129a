// Retention: export, then prune entry bodies by age. Leaf hashes and checkpoints are never
// deleted, so the tree, every checkpoint and every proof stay computable and verifiable; the
// pruned bodies live on in the export (which verifies on its own against the same
// checkpoints). Only entries covered by a signed checkpoint are pruned.
import { AuditError } from './entry.js';
import type { AuditLog } from './log.js';
import type { AuditStore } from './store.js';

export interface PruneResult {
  pruned: number;
  /** Bodies below this index may now be absent. */
  before: number;
}

/**
 * Prune bodies older than `olderThan` (ms epoch) among the entries covered by the latest
 * checkpoint. Call after a verified export of at least that range.
 */
export async function pruneOlderThan(log: AuditLog, store: AuditStore, olderThan: number): Promise<PruneResult> {
  if (!Number.isSafeInteger(olderThan) || olderThan < 0) throw new AuditError('ERR_AUDIT_INPUT', 'olderThan must be a time in ms');
  const cp = await log.latestCheckpoint();
  if (!cp) return { pruned: 0, before: 0 };
  const pruned = await store.pruneBodies(cp.size, olderThan);
  return { pruned, before: cp.size };
}

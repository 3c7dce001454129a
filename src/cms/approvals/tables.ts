// Tables of the operations under approval (engineer A). Migration: ./migrations/0070_approvals.ts.

/**
 * A deleted tenant (a tombstone: the id is never reused). Its rows are gone unless cards still held
 * its applications at deletion: then they stay, hidden, until the scheduled removals are done.
 */
export interface TenantDeletionTable {
  tenant_id: string;
  /** The consumed tenant_deletion approval. */
  approval_id: string;
  deleted_by: string;
  /** Cards that still held one of its applications (their removal was scheduled). */
  cards_pending: number;
  deleted_at: number;
}

export interface ApprovalTables {
  tenant_deletions: TenantDeletionTable;
}

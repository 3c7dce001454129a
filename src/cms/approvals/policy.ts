// Which operations need M-of-N approvals, from whom (role), and for how long a request is valid.
import type { Role } from '../api/tokens/service.js';

export const APPROVAL_KINDS = ['kek_rotation', 'rotation_campaign', 'key_export', 'tenant_deletion', 'vault_unseal'] as const;
export type ApprovalKind = (typeof APPROVAL_KINDS)[number];

export interface KindPolicy {
  /** M: distinct approvers needed (the requester never counts). */
  required: number;
  /** Role an approver must hold (an operator token role: issuer_admin, tenant_admin, auditor). */
  role: Role;
  /** Lifetime of a request in ms (it expires unapproved or unused after this). */
  ttlMs: number;
}

export interface ApprovalPolicy {
  kinds: Record<ApprovalKind, KindPolicy>;
  /** Rotation campaigns over this many cards need a 'rotation_campaign' approval. */
  campaignCardThreshold: number;
}

const DAY = 24 * 3600 * 1000;

export const DEFAULT_APPROVAL_POLICY: ApprovalPolicy = {
  kinds: {
    kek_rotation: { required: 2, role: 'issuer_admin', ttlMs: DAY },
    rotation_campaign: { required: 2, role: 'issuer_admin', ttlMs: DAY },
    key_export: { required: 2, role: 'issuer_admin', ttlMs: 3600 * 1000 },
    tenant_deletion: { required: 2, role: 'issuer_admin', ttlMs: DAY },
    vault_unseal: { required: 2, role: 'issuer_admin', ttlMs: 3600 * 1000 },
  },
  campaignCardThreshold: 1000,
};

export function isApprovalKind(v: unknown): v is ApprovalKind {
  return typeof v === 'string' && (APPROVAL_KINDS as readonly string[]).includes(v);
}

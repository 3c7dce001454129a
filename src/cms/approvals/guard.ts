// What an approval of each operation kind must name, and the check that an approval is for
// exactly the operation at hand. A request for key_export, tenant_deletion or vault_unseal names
// its target (validated when requested, so approvers see exactly what they approve); the
// operation consumes it only if every target field is equal — an approval for another key,
// recipient, tenant or vault is ERR_APPROVAL_MISMATCH and is not consumed.
import type { Json } from '../audit/entry.js';
import { RotationError } from '../rotation/errors.js';
import type { ApprovalKind } from './policy.js';
import type { ApprovalRequest, ApprovalService } from './service.js';

const KEY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const THUMBPRINT_RE = /^[A-Za-z0-9_-]{43}$/;
const TENANT_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const VAULT_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** The target fields each kind's payload must carry (string values, checked by pattern). */
export const APPROVAL_TARGETS: Partial<Record<ApprovalKind, Record<string, { re: RegExp; what: string }>>> = {
  key_export: { key: { re: KEY_NAME_RE, what: 'a custody key name' }, recipient: { re: THUMBPRINT_RE, what: "the recipient public key's RFC 7638 thumbprint (SHA-256, base64url)" } },
  tenant_deletion: { tenantId: { re: TENANT_RE, what: 'a tenant id' } },
  vault_unseal: { vaultId: { re: VAULT_RE, what: "the vault's id (GET /v1/custody/status)" } },
};

/** Refuse (ERR_ROTATION_BAD_INPUT, nothing stored) a payload that does not name its kind's target. */
export function checkApprovalPayload(kind: ApprovalKind, payload: Record<string, Json>): void {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'payload must be an object');
  const t = APPROVAL_TARGETS[kind];
  if (!t) return;
  for (const [field, { re, what }] of Object.entries(t)) {
    const v = payload[field];
    if (typeof v !== 'string' || !re.test(v)) throw new RotationError('ERR_ROTATION_BAD_INPUT', `a ${kind} approval must name ${field}: ${what}`);
  }
}

/**
 * Consume approval `approvalId` for the operation on `target` (every field equal). A missing id is
 * ERR_APPROVAL_REQUIRED; see ApprovalService.consume for the rest (mismatch, expired, not yet
 * approved, already used).
 */
export async function consumeFor(approvals: ApprovalService, kind: ApprovalKind, approvalId: string | undefined, actor: string, target: Record<string, string>): Promise<ApprovalRequest> {
  requireApprovalId(kind, approvalId, target);
  return approvals.consume(approvalId, kind, actor, (p) => Object.entries(target).every(([k, v]) => p[k] === v));
}

/** ERR_APPROVAL_REQUIRED unless an approval id is given (checked first, before anything else). */
export function requireApprovalId(kind: ApprovalKind, approvalId: string | undefined, target: Record<string, string>): asserts approvalId is string {
  if (typeof approvalId !== 'string' || approvalId.length === 0) {
    throw new RotationError('ERR_APPROVAL_REQUIRED', `this operation needs an approved ${kind} request naming ${Object.entries(target).map(([k, v]) => `${k}=${v}`).join(', ')} (give approvalId)`);
  }
}

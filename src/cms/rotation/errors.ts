// Errors of rotation campaigns, approvals, KEK rewrap and compromise workflows: stable codes.
export type RotationErrorCode =
  | 'ERR_ROTATION_BAD_INPUT' // malformed request: nothing changed
  | 'ERR_ROTATION_NOT_FOUND'
  | 'ERR_ROTATION_STATE' // the campaign is not in a state that allows the operation
  | 'ERR_ROTATION_CONFLICT' // another campaign for the same key is open, or a concurrent change
  | 'ERR_ROTATION_GRACE_OVER' // rollback after the grace period
  | 'ERR_ROTATION_OUTSIDE_WINDOW'
  | 'ERR_ROTATION_RETIRE' // the version is retired in the CMS but custody failed to disable it: retry
  | 'ERR_ROTATION_FIELD_FORBIDDEN' // field rotation: the reader has no 'rotate' role for this key
  | 'ERR_ROTATION_FIELD_NOT_PENDING' // field rotation: the card is not a pending item of a running campaign on that version
  | 'ERR_ROTATION_FIELD_TOKEN' // field rotation: unknown, expired, used or another reader's operation token
  | 'ERR_ROTATION_FIELD_RECEIPT' // field rotation: the receipt is malformed, not signed by the reader, or for another operation
  | 'ERR_APPROVAL_REQUIRED' // the operation waits for its M-of-N approvals
  | 'ERR_APPROVAL_NOT_FOUND'
  | 'ERR_APPROVAL_SELF' // the requester cannot approve
  | 'ERR_APPROVAL_ROLE' // the approver lacks the role
  | 'ERR_APPROVAL_DUPLICATE' // one vote per approver
  | 'ERR_APPROVAL_EXPIRED'
  | 'ERR_APPROVAL_STATE' // rejected, consumed, or not yet approved
  | 'ERR_APPROVAL_MISMATCH' // the approval is for another operation
  | 'ERR_KEK_BAD_INPUT'
  | 'ERR_KEK_RUN_STATE'
  | 'ERR_COMPROMISE_BAD_INPUT';

export class RotationError extends Error {
  readonly code: RotationErrorCode;
  constructor(code: RotationErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'RotationError';
  }
}

/** HTTP status for each code (used by the API routes). */
export function rotationErrorStatus(code: RotationErrorCode): number {
  switch (code) {
    case 'ERR_ROTATION_NOT_FOUND':
    case 'ERR_APPROVAL_NOT_FOUND':
      return 404;
    case 'ERR_APPROVAL_SELF':
    case 'ERR_APPROVAL_ROLE':
      return 403;
    case 'ERR_ROTATION_BAD_INPUT':
    case 'ERR_KEK_BAD_INPUT':
    case 'ERR_COMPROMISE_BAD_INPUT':
      return 400;
    case 'ERR_APPROVAL_REQUIRED':
      return 428;
    case 'ERR_ROTATION_RETIRE':
      return 502;
    case 'ERR_ROTATION_FIELD_FORBIDDEN':
      return 403;
    case 'ERR_ROTATION_FIELD_RECEIPT':
      return 400;
    default:
      return 409;
  }
}

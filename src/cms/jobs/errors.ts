// Typed errors of station jobs, key delivery and remote mode, each with a stable code and the HTTP
// status the API answers with. Messages name jobs, cards, AIDs and key numbers, never key bytes.
export type JobErrorCode =
  | 'ERR_JOB_BAD_INPUT'
  | 'ERR_JOB_NOT_FOUND'
  | 'ERR_JOB_FORBIDDEN'
  | 'ERR_JOB_STATE'
  | 'ERR_JOB_BUSY'
  | 'ERR_JOB_CARD_STATE'
  | 'ERR_JOB_EXPIRED'
  | 'ERR_JOB_RECEIPT_MISMATCH'
  | 'ERR_JOB_UNSUPPORTED'
  | 'ERR_JOB_PROBE_FAILED'
  | 'ERR_DELIVERY_FORBIDDEN'
  | 'ERR_DELIVERY_CARD_STATE'
  | 'ERR_DELIVERY_NOT_INSTALLED'
  | 'ERR_DELIVERY_READER_STATE'
  | 'ERR_DELIVERY_NOT_DIVERSIFIED'
  | 'ERR_DELIVERY_NOT_EXTRACTABLE'
  | 'ERR_DELIVERY_NO_MASTER'
  | 'ERR_REMOTE_NOT_FOUND'
  | 'ERR_REMOTE_STATE'
  | 'ERR_REMOTE_TIMEOUT'
  | 'ERR_REMOTE_BAD_INPUT';

const STATUS: Record<JobErrorCode, number> = {
  ERR_JOB_BAD_INPUT: 400,
  ERR_JOB_NOT_FOUND: 404,
  ERR_JOB_FORBIDDEN: 403,
  ERR_JOB_STATE: 409,
  ERR_JOB_BUSY: 409,
  ERR_JOB_CARD_STATE: 409,
  ERR_JOB_EXPIRED: 410,
  ERR_JOB_RECEIPT_MISMATCH: 400,
  ERR_JOB_UNSUPPORTED: 422,
  ERR_JOB_PROBE_FAILED: 502,
  ERR_DELIVERY_FORBIDDEN: 403,
  ERR_DELIVERY_CARD_STATE: 403,
  ERR_DELIVERY_NOT_INSTALLED: 403,
  ERR_DELIVERY_READER_STATE: 403,
  ERR_DELIVERY_NOT_DIVERSIFIED: 422,
  ERR_DELIVERY_NOT_EXTRACTABLE: 422,
  ERR_DELIVERY_NO_MASTER: 404,
  ERR_REMOTE_NOT_FOUND: 404,
  ERR_REMOTE_STATE: 409,
  ERR_REMOTE_TIMEOUT: 504,
  ERR_REMOTE_BAD_INPUT: 400,
};

export class JobError extends Error {
  readonly code: JobErrorCode;
  readonly statusCode: number;
  readonly details?: unknown;
  constructor(code: JobErrorCode, message: string, details?: unknown) {
    super(message);
    this.code = code;
    this.statusCode = STATUS[code];
    this.name = 'JobError';
    if (details !== undefined) this.details = details;
  }
}

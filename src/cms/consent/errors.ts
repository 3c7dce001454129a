// Typed errors of tenant consent and authorisation, each with a stable code. The API maps them by
// name (src/cms/api/errors.ts): *_DENIED / *_FORBIDDEN → 403, *_NOT_FOUND → 404, *_STATE → 409,
// *_INVALID → 400. Messages name tenants, AIDs, cards and ids, never key material.
export type ConsentErrorCode =
  /** No valid authorisation covers the operation (the policy check's refusal). */
  | 'ERR_CONSENT_DENIED'
  /** The caller may not act for this tenant / application. */
  | 'ERR_CONSENT_FORBIDDEN'
  | 'ERR_CONSENT_NOT_FOUND'
  /** The request/authorisation/consent is not in a state that allows it (already decided, revoked…). */
  | 'ERR_CONSENT_STATE'
  | 'ERR_CONSENT_INVALID';

export class ConsentError extends Error {
  readonly code: ConsentErrorCode;
  readonly details?: Record<string, unknown>;
  constructor(code: ConsentErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.name = 'ConsentError';
    if (details) this.details = details;
  }
}

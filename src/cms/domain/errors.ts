// Typed errors of the CMS domain. Stable codes; bad input changes no state.
export type DomainErrorCode =
  | 'ERR_DOMAIN_BAD_INPUT'
  | 'ERR_DOMAIN_NOT_FOUND'
  | 'ERR_DOMAIN_CONFLICT' // already exists / owned by another tenant
  | 'ERR_DOMAIN_TRANSITION' // lifecycle transition not allowed
  | 'ERR_DOMAIN_STATE' // the operation needs another state (e.g. install on a revoked card)
  | 'ERR_DOMAIN_LAYOUT_FINDINGS' // layout refused by the isolation linter
  | 'ERR_DOMAIN_FORBIDDEN'; // a reader's roles do not grant the operation

export class DomainError extends Error {
  readonly code: DomainErrorCode;
  /** Extra machine-readable detail (e.g. the lint rule ids). */
  readonly details?: Record<string, unknown>;
  constructor(code: DomainErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.name = 'DomainError';
    if (details) this.details = details;
  }
}

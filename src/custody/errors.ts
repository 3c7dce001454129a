// Custody errors. Every error has a stable string `code` (never renamed); messages name keys,
// versions and bindings but never contain key bytes.

export class CustodyError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

export const CUSTODY_CODES = {
  UNKNOWN_KEY: 'ERR_CUSTODY_UNKNOWN_KEY',
  KEY_EXISTS: 'ERR_CUSTODY_KEY_EXISTS',
  VERSION: 'ERR_CUSTODY_VERSION',
  TAMPERED: 'ERR_CUSTODY_TAMPERED',
  AAD_MISMATCH: 'ERR_CUSTODY_AAD_MISMATCH',
  SEALED: 'ERR_CUSTODY_SEALED',
  AUDIT: 'ERR_CUSTODY_AUDIT',
  INPUT: 'ERR_CUSTODY_INPUT',
  WRONG_PURPOSE: 'ERR_CUSTODY_WRONG_PURPOSE',
  UNSUPPORTED: 'ERR_CUSTODY_UNSUPPORTED',
  BACKEND: 'ERR_CUSTODY_BACKEND',
  CONFLICT: 'ERR_CUSTODY_CONFLICT',
  NOT_INITIALIZED: 'ERR_CUSTODY_NOT_INITIALIZED',
  ALREADY_INITIALIZED: 'ERR_CUSTODY_ALREADY_INITIALIZED',
  UNSEAL_FAILED: 'ERR_CUSTODY_UNSEAL_FAILED',
  BAD_SHARE: 'ERR_CUSTODY_BAD_SHARE',
} as const;

export type CustodyCode = (typeof CUSTODY_CODES)[keyof typeof CUSTODY_CODES];

/** The named key (or the requested version of it) does not exist. */
export class UnknownKeyError extends CustodyError {
  constructor(name: string) {
    super(CUSTODY_CODES.UNKNOWN_KEY, `unknown key '${name}'`);
  }
}

export class KeyExistsError extends CustodyError {
  constructor(name: string) {
    super(CUSTODY_CODES.KEY_EXISTS, `key '${name}' already exists`);
  }
}

/** A version that does not exist, is disabled or destroyed, or is below the key's minimum. */
export class KeyVersionError extends CustodyError {
  constructor(message: string) {
    super(CUSTODY_CODES.VERSION, message);
  }
}

/** A blob, store row or manifest failed its authentication: modified, swapped, deleted or rolled back. */
export class TamperedError extends CustodyError {
  constructor(message: string) {
    super(CUSTODY_CODES.TAMPERED, message);
  }
}

/** A blob was presented with associated data (tenant, AID, UID, keyNo, version) other than its own. */
export class AadMismatchError extends CustodyError {
  constructor(message = 'associated data does not match the wrapped blob') {
    super(CUSTODY_CODES.AAD_MISMATCH, message);
  }
}

export class SealedError extends CustodyError {
  constructor(message = 'the vault is sealed') {
    super(CUSTODY_CODES.SEALED, message);
  }
}

/** The audit sink did not take the event: the operation was refused and nothing released. */
export class AuditRefusedError extends CustodyError {
  constructor(message: string) {
    super(CUSTODY_CODES.AUDIT, message);
  }
}

export class CustodyInputError extends CustodyError {
  constructor(message: string) {
    super(CUSTODY_CODES.INPUT, message);
  }
}

/** E.g. asking a wrapping key to diversify, or a diversification master to wrap. */
export class WrongPurposeError extends CustodyError {
  constructor(message: string) {
    super(CUSTODY_CODES.WRONG_PURPOSE, message);
  }
}

export class UnsupportedError extends CustodyError {
  constructor(message: string) {
    super(CUSTODY_CODES.UNSUPPORTED, message);
  }
}

/** The backend (token, Vault server, database) failed. */
export class BackendError extends CustodyError {
  constructor(message: string) {
    super(CUSTODY_CODES.BACKEND, message);
  }
}

/** A concurrent writer changed the store; reload and retry. */
export class ConflictError extends CustodyError {
  constructor(message: string) {
    super(CUSTODY_CODES.CONFLICT, message);
  }
}

export class NotInitializedError extends CustodyError {
  constructor(message = 'the vault is not initialised') {
    super(CUSTODY_CODES.NOT_INITIALIZED, message);
  }
}

export class AlreadyInitializedError extends CustodyError {
  constructor(message = 'the vault is already initialised') {
    super(CUSTODY_CODES.ALREADY_INITIALIZED, message);
  }
}

/** Wrong passphrase, or shares that do not reconstruct the root key. */
export class UnsealFailedError extends CustodyError {
  constructor(message: string) {
    super(CUSTODY_CODES.UNSEAL_FAILED, message);
  }
}

export class BadShareError extends CustodyError {
  constructor(message: string) {
    super(CUSTODY_CODES.BAD_SHARE, message);
  }
}

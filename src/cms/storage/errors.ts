// Storage errors: one class, stable string codes. Messages name what failed, never row contents
// that could hold secrets.
export type StorageErrorCode =
  | 'ERR_STORAGE_CONFIG' // bad openDatabase options
  | 'ERR_STORAGE_UNAVAILABLE' // driver missing, file not writable, server unreachable
  | 'ERR_STORAGE_MIGRATION'; // a migration failed (the database is left at the last good one)

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'StorageError';
  }
}

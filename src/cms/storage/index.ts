// Public surface of the storage layer.
export type { Database, DialectKind } from './database.js';
export { StorageError, type StorageErrorCode } from './errors.js';
export { openDatabase, type DatabaseConfig, type DatabaseHandle, type OpenOptions } from './open.js';
export { migrateToLatest, appliedMigrations, StaticMigrationProvider } from './migrate.js';
export { withTransaction, withWriterLock, lockWriters, getSetting, setSetting, type Tx } from './tx.js';
export { dialectOf, types as columnTypes } from './dialect.js';
export { walSyncerOf, type WalSyncer } from './wal-sync.js';
export { leaseWalCheckpointer, walRestartGate, type CheckpointerLease, type CheckpointerOptions } from './checkpointer.js';

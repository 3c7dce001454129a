// Public surface of src/custody. Backends are exported from their own modules (embedded.ts,
// pkcs11.ts, vault-transit.ts) so that importing the interface loads no driver.
export * from './types.js';
export * from './errors.js';
export * from './audit.js';
export * from './sealed.js';
export { Sealer } from './seal.js';
export { Custody } from './custody.js';
export type { CustodyEngine } from './engine.js';

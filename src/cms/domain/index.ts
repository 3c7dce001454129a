// The CMS domain: tenants and applications, cards (lifecycle, CardUID <-> AID <-> key versions),
// readers (state, certificate, roles), and SQL stores for the PKI.
export * from './errors.js';
export * from './lifecycle.js';
export type { Db } from './db.js';
export * from './tenants.js';
export * from './cards.js';
export * from './readers.js';
export * from './pki-stores.js';
export * from './enrolment.js';
export type { DomainTables } from './tables.js';

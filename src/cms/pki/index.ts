// The CMS PKI: its own CA, reader enrolment, certificate checks, revocation, tokens, receipts.
export * from './errors.js';
export * from './keystore.js';
export * from './ca.js';
export * from './enrolment.js';
export * from './enrol.js';
export * from './verify.js';
export * from './revocation.js';
export * from './tokens.js';
export * from './receipts.js';

// The station: executes CMS station jobs (issue, install, delete) on a card and signs receipts.
export * from './protocol.js';
export * from './receipt.js';
export * from './executor.js';
export * from './client.js';
export * from './reconcile.js';

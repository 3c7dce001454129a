export * from './options.js';
export * from './client.js';

export * from './commands.js';
export * from './status.js';
export * from './errors.js';
export * from './apdu.js';
export * from './chaining.js';
export * from './commModes.js';
export * from './codecs/index.js';

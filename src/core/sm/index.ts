export * from './types.js';
export * from './padding.js';
export * from './d40.js';
export * from './ev1.js';
export * from './ev2.js';
export * from './changekey.js';
export * from './lrp.js';
export * from './tmac.js';

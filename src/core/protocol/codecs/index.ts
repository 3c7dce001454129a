export * from './reader.js';
export * from './keySettings.js';
export * from './access.js';
export * from './application.js';
export * from './fileSettings.js';
export * from './version.js';
export * from './misc.js';
export * from './tmac.js';

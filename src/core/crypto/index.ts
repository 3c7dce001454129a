export * from './bytes.js';
export * from './crc.js';
export * from './cipher.js';
export * from './cmac.js';
export * from './an10922.js';
export * from './hkdf.js';
export * from './keyversion.js';
export * from './lrp.js';

// Public exports of the core: pure protocol and crypto for MIFARE DESFire EV1/EV2/EV3.
//   errors      DesfireError and its families (IntegrityError, FrameError, ...)
//   transport   the one Transport interface every client speaks through
//   crypto      ciphers, CMAC, CRCs, AN10922, HKDF, key versions, byte helpers
//   protocol    command codes, status table (CardStatusError), ISO 7816-4 wrapping, AF chaining,
//               comm-mode table, codecs for every command's parameters and answers
//   sm / auth   secure messaging sessions (D40, EV1, EV2), authentication, ChangeKey cryptograms
//   client      DesfireClient
export * from './errors.js';
export type { Transport } from './transport.js';
export * from './crypto/index.js';
export * from './protocol/index.js';
export * from './sm/index.js';
export * from './auth/index.js';
export * from './client/index.js';

// Typed errors of the reader agent. Messages never carry key bytes.
export type ReaderErrorCode =
  | 'ERR_READER_CONFIG' // bad agent configuration (TTL out of 5..15 min, missing role, ...)
  | 'ERR_READER_KEYSTORE' // keystore missing, wrong passphrase, modified, wrong permissions
  | 'ERR_READER_NOT_ENROLLED' // no certificate yet
  | 'ERR_READER_ENROL' // enrolment refused by the CMS
  | 'ERR_READER_CMS_UNREACHABLE' // network failure talking to the CMS (offline mode applies)
  | 'ERR_READER_CMS' // the CMS answered with an error
  | 'ERR_READER_REVOKED' // the CMS no longer accepts this reader: cache wiped, agent stopped
  | 'ERR_READER_STOPPED' // the agent was stopped (revoked, or closed)
  | 'ERR_READER_NO_ROLE' // the reader has no role for that (tenant, AID, keyNo)
  | 'ERR_READER_OFFLINE_EXPIRED' // offline and the cache is past its TTL
  | 'ERR_READER_OFFLINE_NO_KEY' // offline and no cached key for this card
  | 'ERR_READER_DENYLISTED' // the card is on the CMS denylist
  | 'ERR_READER_CLONE_SUSPECTED' // a card-side counter went backwards
  | 'ERR_READER_REPLAY' // an operation token or nonce seen before
  | 'ERR_READER_TOKEN' // an operation token that does not verify
  | 'ERR_READER_CARD' // the card refused or answered badly
  | 'ERR_BATON_CORRUPT' // the local audit baton does not verify
  | 'ERR_BATON_IO'; // the baton could not be written/fsync'd (the operation is not reported done)

export class ReaderError extends Error {
  readonly code: ReaderErrorCode;
  constructor(code: ReaderErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'ReaderError';
  }
}

// Typed errors of the CMS PKI (CA, reader enrolment, certificates, operation tokens, receipts).
// Stable codes; messages never carry key material or enrolment codes.

export type PkiErrorCode =
  | 'ERR_PKI_CA_MISSING' // no CA stored yet
  | 'ERR_PKI_CA_KEY' // the stored CA key could not be unwrapped (wrong protector key or tampered blob)
  | 'ERR_PKI_CSR_INVALID' // not a parseable PKCS#10 request
  | 'ERR_PKI_CSR_SIGNATURE' // the CSR's self-signature does not verify
  | 'ERR_PKI_KEY_ALGORITHM' // not an ECDSA P-256 key
  | 'ERR_PKI_ENROLMENT_CODE' // unknown, expired or already used enrolment code (deliberately one code)
  | 'ERR_PKI_BAD_INPUT' // malformed argument (reader id, ttl, ...)
  | 'ERR_PKI_CERT_INVALID' // not a parseable certificate
  | 'ERR_PKI_CERT_UNTRUSTED' // not issued by this CMS CA / bad signature / not a reader certificate
  | 'ERR_PKI_CERT_EXPIRED' // outside its validity period
  | 'ERR_PKI_CERT_REVOKED' // on the revocation list
  | 'ERR_PKI_READER_STATE' // the reader is unknown, suspended or revoked
  | 'ERR_TOKEN_INVALID' // bad signature, wrong audience/issuer/job, malformed
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_REPLAYED' // jti already consumed
  | 'ERR_RECEIPT_SIGNATURE' // the receipt's signature does not verify with the reader's certificate
  | 'ERR_RECEIPT_INVALID' // malformed receipt
  | 'ERR_RECEIPT_MISMATCH'; // well signed, but for another job/token

export class PkiError extends Error {
  readonly code: PkiErrorCode;
  constructor(code: PkiErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'PkiError';
  }
}

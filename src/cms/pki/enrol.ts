// Reader enrolment by CSR. The reader proves possession of its P-256 key (CSR signature) and
// presents a one-time code; the CMS sets everything in the certificate itself: subject, random
// serial, short validity, the reader id (CN and SAN URI), clientAuth only. Nothing in the CSR's
// subject or requested extensions is copied.
import { x509 } from './x509.js';
import { READER_URI_PREFIX, type CertificateAuthority } from './ca.js';
import { hashEnrolmentCode, type EnrolmentCodeStore } from './enrolment.js';
import { PkiError } from './errors.js';
import type { EcKeyAlgorithm } from './webcrypto.js';

export const DEFAULT_READER_CERT_DAYS = 30;
export const MAX_READER_CERT_DAYS = 90;
const MAX_CSR_CHARS = 16_384;

export interface EnrolmentResult {
  readerId: string;
  certificatePem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** Parse and check a CSR: P-256 ECDSA key, valid self-signature. Returns its public key. */
export async function checkCsr(csrPem: string): Promise<x509.PublicKey> {
  if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR_CHARS) throw new PkiError('ERR_PKI_CSR_INVALID', 'CSR missing or too large');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new PkiError('ERR_PKI_CSR_INVALID', 'not a PKCS#10 certificate request');
  }
  const alg = csr.publicKey.algorithm as EcKeyAlgorithm;
  if (alg.name !== 'ECDSA' && alg.name !== 'ECDH') throw new PkiError('ERR_PKI_KEY_ALGORITHM', `key algorithm ${alg.name} refused: P-256 only`);
  if (alg.namedCurve !== 'P-256') throw new PkiError('ERR_PKI_KEY_ALGORITHM', `curve ${String(alg.namedCurve)} refused: P-256 only`);
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new PkiError('ERR_PKI_CSR_SIGNATURE', 'CSR signature does not verify');
  return csr.publicKey;
}

/**
 * Enrol a reader: check the CSR, consume the code (single use; only after the CSR checks out, so a
 * malformed request does not burn it), issue the certificate. The code decides the reader id.
 */
export async function enrolReader(
  ca: CertificateAuthority,
  codes: EnrolmentCodeStore,
  req: { csrPem: string; code: string; now?: Date; validityDays?: number },
): Promise<EnrolmentResult> {
  const days = req.validityDays ?? DEFAULT_READER_CERT_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_READER_CERT_DAYS)
    throw new PkiError('ERR_PKI_BAD_INPUT', `validity must be 1..${MAX_READER_CERT_DAYS} days`);
  if (typeof req.code !== 'string' || req.code.length === 0 || req.code.length > 64)
    throw new PkiError('ERR_PKI_ENROLMENT_CODE', 'enrolment code unknown, expired or already used');
  const publicKey = await checkCsr(req.csrPem);
  const now = req.now ?? new Date();
  const rec = await codes.consume(hashEnrolmentCode(req.code), now.getTime());
  if (!rec) throw new PkiError('ERR_PKI_ENROLMENT_CODE', 'enrolment code unknown, expired or already used');
  const notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now.getTime() + days * 86_400_000);
  const cert = await ca.issue({
    subject: `CN=${rec.readerId}, OU=readers, O=desfire-cms`,
    publicKey,
    notBefore,
    notAfter,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: READER_URI_PREFIX + rec.readerId }], false),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  });
  return { readerId: rec.readerId, certificatePem: cert.toString('pem'), serial: cert.serialNumber, notBefore, notAfter };
}

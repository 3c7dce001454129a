// Client-certificate verification for mTLS: the TLS layer checks the chain to ca.certificatePem;
// this maps the presented certificate to a reader id and checks it again (signature, validity,
// reader EKU and SAN) plus what TLS cannot know: revocation and the reader's state.
import { x509 } from './x509.js';
import { READER_URI_PREFIX, type CertificateAuthority } from './ca.js';
import { READER_ID_RE } from './enrolment.js';
import { PkiError } from './errors.js';
import type { RevocationList } from './revocation.js';

export type ReaderState = 'active' | 'suspended' | 'revoked';

export interface ReaderCertificateChecks {
  revocations: RevocationList;
  /** The reader's state in the CMS, undefined when unknown. */
  readerState(readerId: string): Promise<ReaderState | undefined>;
  now?: Date;
}

export interface VerifiedReader {
  readerId: string;
  serial: string;
  notAfter: Date;
}

function parse(cert: string | Uint8Array | x509.X509Certificate): x509.X509Certificate {
  if (cert instanceof x509.X509Certificate) return cert;
  try {
    return new x509.X509Certificate(typeof cert === 'string' ? cert : Uint8Array.from(cert));
  } catch {
    throw new PkiError('ERR_PKI_CERT_INVALID', 'not an X.509 certificate');
  }
}

/** The reader id a certificate names (SAN URI urn:desfire-cms:reader:<id>), without trusting it. */
export function readerIdOf(cert: x509.X509Certificate): string | undefined {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = san?.names.items.filter((n) => n.type === 'url').map((n) => n.value) ?? [];
  const ids = uris.filter((u) => u.startsWith(READER_URI_PREFIX)).map((u) => u.slice(READER_URI_PREFIX.length));
  if (ids.length !== 1 || !READER_ID_RE.test(ids[0]!)) return undefined;
  return ids[0];
}

export async function verifyReaderCertificate(
  ca: CertificateAuthority,
  presented: string | Uint8Array | x509.X509Certificate,
  checks: ReaderCertificateChecks,
): Promise<VerifiedReader> {
  const cert = parse(presented);
  const now = checks.now ?? new Date();
  if (cert.issuer !== ca.certificate.subject) throw new PkiError('ERR_PKI_CERT_UNTRUSTED', 'certificate not issued by this CMS CA');
  let sigOk = false;
  try {
    sigOk = await cert.verify({ publicKey: ca.certificate.publicKey, signatureOnly: true });
  } catch {
    sigOk = false;
  }
  if (!sigOk) throw new PkiError('ERR_PKI_CERT_UNTRUSTED', 'certificate signature does not verify with the CMS CA');
  if (now < cert.notBefore || now > cert.notAfter) throw new PkiError('ERR_PKI_CERT_EXPIRED', 'certificate outside its validity period');
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  if (bc?.ca || !eku?.usages.includes(x509.ExtendedKeyUsage.clientAuth))
    throw new PkiError('ERR_PKI_CERT_UNTRUSTED', 'not a reader (client) certificate');
  const readerId = readerIdOf(cert);
  if (!readerId) throw new PkiError('ERR_PKI_CERT_UNTRUSTED', 'certificate names no reader');
  if (await checks.revocations.isRevoked(cert.serialNumber)) throw new PkiError('ERR_PKI_CERT_REVOKED', 'certificate revoked');
  const state = await checks.readerState(readerId);
  if (state !== 'active') throw new PkiError('ERR_PKI_READER_STATE', `reader ${readerId} is ${state ?? 'unknown'}`);
  return { readerId, serial: cert.serialNumber, notAfter: cert.notAfter };
}

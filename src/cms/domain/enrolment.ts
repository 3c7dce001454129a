// Reader enrolment as the CMS runs it: an operator creates a one-time code for a registered,
// non-revoked reader; the reader presents it with its CSR; the CMS issues the certificate and
// attaches it to the reader (revoking the one it replaces).
import type { CertificateAuthority } from '../pki/ca.js';
import { createEnrolmentCode } from '../pki/enrolment.js';
import { enrolReader, type EnrolmentResult } from '../pki/enrol.js';
import { DomainError } from './errors.js';
import { ReaderRepository } from './readers.js';
import { SqlEnrolmentCodeStore } from './pki-stores.js';
import type { Db } from './db.js';

export async function createReaderEnrolmentCode(
  db: Db,
  req: { readerId: string; createdBy: string; ttlMs?: number; now?: number },
): Promise<{ code: string; expiresAt: number }> {
  const reader = await new ReaderRepository(db).require(req.readerId);
  if (reader.state === 'revoked') throw new DomainError('ERR_DOMAIN_STATE', `reader ${reader.id} is revoked`);
  return createEnrolmentCode(new SqlEnrolmentCodeStore(db), req);
}

export async function completeReaderEnrolment(
  db: Db,
  ca: CertificateAuthority,
  req: { csrPem: string; code: string; now?: Date; validityDays?: number },
): Promise<EnrolmentResult> {
  const result = await enrolReader(ca, new SqlEnrolmentCodeStore(db), req);
  await new ReaderRepository(db).attachCertificate(
    result.readerId,
    { serial: result.serial, pem: result.certificatePem, notAfter: result.notAfter.getTime() },
    (req.now ?? new Date()).getTime(),
  );
  return result;
}

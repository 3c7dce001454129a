// A reader's sealing recipient: the P-256 public key of its current certificate (the same key
// that authenticates it over mTLS and signs its receipts), as the JWK custody seals to.
import { createPublicKey } from 'node:crypto';
import type { JWK } from 'jose';
import type { ReaderRecipient } from '../../custody/sealed.js';
import type { ReaderRepository } from '../domain/index.js';
import { JobError } from './errors.js';

export class RecipientCache {
  private readonly cache = new Map<string, { pem: string; recipient: ReaderRecipient }>();

  constructor(private readonly readers: ReaderRepository) {}

  /** The reader's certificate PEM and recipient; ERR_JOB_FORBIDDEN when it has no certificate. */
  async of(readerId: string): Promise<{ pem: string; recipient: ReaderRecipient }> {
    return this.fromPem(readerId, await this.readers.certificatePem(readerId));
  }

  /** The same, from a certificate PEM the caller already read with the reader's row. */
  fromPem(readerId: string, pem: string | null | undefined): { pem: string; recipient: ReaderRecipient } {
    if (!pem) throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId} has no certificate`);
    const hit = this.cache.get(readerId);
    if (hit && hit.pem === pem) return hit;
    const jwk = createPublicKey(pem).export({ format: 'jwk' }) as JWK;
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId}'s certificate key is not P-256`);
    const entry = { pem, recipient: { readerId, publicKey: { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! } } };
    this.cache.set(readerId, entry);
    return entry;
  }
}

// The CMS's own certificate authority (ECDSA P-256). Created once and stored with its private key
// wrapped (keystore.ts); opened at start-up into a non-extractable CryptoKey. It issues short-lived
// reader certificates (enrol.ts), verifies presented client certificates (verify.ts) and signs CRLs.
import { x509 } from './x509.js';
import { randomBytes } from 'node:crypto';
import { PkiError } from './errors.js';
import type { CryptoKey, CryptoKeyPair, EcKeyGenParams, EcdsaParams } from './webcrypto.js';
import { unwrapSigningKey, wrapPrivateKey, type CaKeyProtector, type CaKeyStore } from './keystore.js';


export const EC_P256: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
export const ECDSA_SHA256: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
export const CA_KEY_NAME = 'ca';
export const READER_URI_PREFIX = 'urn:desfire-cms:reader:';

/** Serial numbers: 16 random bytes, positive (high bit clear), never zero-led to a shorter DER. */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

export interface CreateCaOptions {
  /** Subject common name; default "desfire-cms CA". */
  commonName?: string;
  /** Validity in days; default 3650. */
  validityDays?: number;
  now?: Date;
}

export class CertificateAuthority {
  private constructor(
    readonly certificate: x509.X509Certificate,
    private readonly privateKey: CryptoKey,
  ) {}

  /** The CA certificate as PEM (the trust anchor for mTLS `ca` and for readers). */
  get certificatePem(): string {
    return this.certificate.toString('pem');
  }

  /**
   * Open the stored CA, or create and store it if there is none. Under a race (two processes) the
   * first stored CA wins and both open it. A stored CA that the protector cannot unwrap is an error,
   * never silently replaced.
   */
  static async openOrCreate(store: CaKeyStore, protector: CaKeyProtector, opts: CreateCaOptions = {}): Promise<CertificateAuthority> {
    const existing = await CertificateAuthority.open(store, protector).catch((e: unknown) => {
      if (e instanceof PkiError && e.code === 'ERR_PKI_CA_MISSING') return undefined;
      throw e;
    });
    if (existing) return existing;
    const now = opts.now ?? new Date();
    const keys = (await crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: [{ CN: [opts.commonName ?? 'desfire-cms CA'] }, { O: ['desfire-cms'] }],
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + (opts.validityDays ?? 3650) * 86_400_000),
      keys,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const wrapped = await wrapPrivateKey(protector, CA_KEY_NAME, keys.privateKey);
    const stored = await store.saveIfAbsent(CA_KEY_NAME, {
      publicPem: cert.toString('pem'),
      wrappedPrivateKey: wrapped,
      createdAt: now.toISOString(),
    });
    if (!stored) return CertificateAuthority.open(store, protector);
    // Re-import non-extractable so this process never holds an exportable CA key.
    return CertificateAuthority.open(store, protector);
  }

  static async open(store: CaKeyStore, protector: CaKeyProtector): Promise<CertificateAuthority> {
    const rec = await store.load(CA_KEY_NAME);
    if (!rec) throw new PkiError('ERR_PKI_CA_MISSING', 'no CA has been created');
    const cert = new x509.X509Certificate(rec.publicPem);
    const key = await unwrapSigningKey(protector, CA_KEY_NAME, rec, EC_P256, ['sign']);
    // The key must be the certificate's: sign and verify one probe.
    const probe = new TextEncoder().encode('desfire-cms ca probe');
    const sig = await crypto.subtle.sign(ECDSA_SHA256, key, probe);
    const pub = await cert.publicKey.export(EC_P256, ['verify']);
    if (!(await crypto.subtle.verify(ECDSA_SHA256, pub, sig, probe)))
      throw new PkiError('ERR_PKI_CA_KEY', 'stored CA key does not match the CA certificate');
    return new CertificateAuthority(cert, key);
  }

  /** Sign a certificate for `publicKey` (used by enrolReader). */
  async issue(params: {
    subject: string;
    publicKey: x509.PublicKey;
    notBefore: Date;
    notAfter: Date;
    extensions: x509.Extension[];
  }): Promise<x509.X509Certificate> {
    return x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: params.subject,
      issuer: this.certificate.subject,
      notBefore: params.notBefore,
      notAfter: params.notAfter,
      publicKey: params.publicKey,
      signingKey: this.privateKey,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        ...params.extensions,
        await x509.AuthorityKeyIdentifierExtension.create(this.certificate, false),
      ],
    });
  }

  /** A CRL (PEM) over the given revoked serials. */
  async crl(
    entries: { serial: string; revokedAt: Date }[],
    opts: { thisUpdate?: Date; nextUpdate?: Date } = {},
  ): Promise<string> {
    const thisUpdate = opts.thisUpdate ?? new Date();
    const crl = await x509.X509CrlGenerator.create({
      issuer: this.certificate.subject,
      thisUpdate,
      nextUpdate: opts.nextUpdate ?? new Date(thisUpdate.getTime() + 86_400_000),
      entries: entries.map((e) => ({ serialNumber: e.serial, revocationDate: e.revokedAt, reason: x509.X509CrlReason.keyCompromise })),
      signingAlgorithm: ECDSA_SHA256,
      signingKey: this.privateKey,
    });
    return crl.toString('pem');
  }
}

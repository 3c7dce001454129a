// The reader's local keystore: its P-256 private key in an encrypted file (0600), its certificate
// and the CMS CA certificate next to it.
//
//   <dir>/reader-key.json  { v: 1, kdf: { alg: 'scrypt', N, r, p, salt }, iv, ct, tag }
//                          AES-256-GCM over the PKCS#8 DER, key = scrypt(passphrase, salt);
//                          AAD = the header fields, so parameters cannot be swapped
//   <dir>/reader-cert.pem  the client certificate from enrolment (public)
//   <dir>/ca.pem           the CMS CA certificate (public; trust anchor for the server)
//
// The passphrase comes from a file or the environment (never argv). The file is refused when its
// permissions let anyone but the owner read it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, scryptSync, webcrypto } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { JWK } from 'jose';
import { wipe } from '../core/crypto/bytes.js';
import { ReaderError } from './errors.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export const KEY_FILE = 'reader-key.json';
export const CERT_FILE = 'reader-cert.pem';
export const CA_FILE = 'ca.pem';

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** Default scrypt cost (2^15, r 8, p 1: ~32 MiB, tens of ms once per start). */
export const DEFAULT_SCRYPT: ScryptParams = { N: 1 << 15, r: 8, p: 1 };

interface KeyFile {
  v: 1;
  kdf: { alg: 'scrypt'; N: number; r: number; p: number; salt: string };
  iv: string;
  ct: string;
  tag: string;
}

function kek(passphrase: Uint8Array, salt: Buffer, k: ScryptParams): Buffer {
  if (passphrase.length < 8) throw new ReaderError('ERR_READER_KEYSTORE', 'keystore passphrase must be at least 8 bytes');
  return scryptSync(passphrase, salt, 32, { N: k.N, r: k.r, p: k.p, maxmem: 256 * k.N * k.r + 1024 * 1024 });
}

function aad(f: Pick<KeyFile, 'v' | 'kdf'>): Buffer {
  return Buffer.from(JSON.stringify([f.v, f.kdf.alg, f.kdf.N, f.kdf.r, f.kdf.p, f.kdf.salt]), 'utf8');
}

function writeAtomic(file: string, data: string, mode: number): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

/** The stored client certificate and CA of a keystore directory (ERR_READER_NOT_ENROLLED when absent). */
export function readCertificates(dir: string): { cert: string; ca: string } {
  const c = join(dir, CERT_FILE);
  const a = join(dir, CA_FILE);
  if (!existsSync(c) || !existsSync(a)) throw new ReaderError('ERR_READER_NOT_ENROLLED', `no certificate in ${dir} (run: desfire-cms reader enrol)`);
  return { cert: readFileSync(c, 'utf8'), ca: readFileSync(a, 'utf8') };
}

/** The reader id a certificate names (CN). */
export function readerIdOf(certPem: string): string {
  const m = /CN=([^,]+)/.exec(new x509.X509Certificate(certPem).subject);
  if (!m) throw new ReaderError('ERR_READER_NOT_ENROLLED', 'certificate names no reader');
  return m[1]!;
}

export class ReaderKeystore {
  private constructor(
    readonly dir: string,
    readonly privateKey: KeyObject,
  ) {}

  /** The public key as a P-256 JWK (what sealed deliveries are encrypted to). */
  get publicJwk(): JWK {
    const j = createPublicKey(this.privateKey).export({ format: 'jwk' }) as JWK;
    return { kty: 'EC', crv: 'P-256', x: j.x!, y: j.y! };
  }

  static exists(dir: string): boolean {
    return existsSync(join(dir, KEY_FILE));
  }

  /** Generate a P-256 key and write it encrypted (0600). Refuses to overwrite an existing keystore. */
  static create(dir: string, passphrase: Uint8Array, params: ScryptParams = DEFAULT_SCRYPT): ReaderKeystore {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, KEY_FILE);
    if (existsSync(file)) throw new ReaderError('ERR_READER_KEYSTORE', `a keystore already exists in ${dir}`);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const der = privateKey.export({ format: 'der', type: 'pkcs8' });
    const salt = randomBytes(16);
    const head: Pick<KeyFile, 'v' | 'kdf'> = { v: 1, kdf: { alg: 'scrypt', N: params.N, r: params.r, p: params.p, salt: salt.toString('base64') } };
    const k = kek(passphrase, salt, params);
    try {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', k, iv);
      c.setAAD(aad(head));
      const ct = Buffer.concat([c.update(der), c.final()]);
      const f: KeyFile = { ...head, iv: iv.toString('base64'), ct: ct.toString('base64'), tag: c.getAuthTag().toString('base64') };
      writeAtomic(file, JSON.stringify(f, null, 2) + '\n', 0o600);
    } finally {
      wipe(k);
      wipe(der);
    }
    return new ReaderKeystore(dir, privateKey);
  }

  /** Decrypt the keystore (refused when readable by group/others, modified, or the passphrase is wrong). */
  static open(dir: string, passphrase: Uint8Array): ReaderKeystore {
    const file = join(dir, KEY_FILE);
    if (!existsSync(file)) throw new ReaderError('ERR_READER_NOT_ENROLLED', `no keystore in ${dir} (run: desfire-cms reader enrol)`);
    const st = statSync(file);
    if ((st.mode & 0o077) !== 0) throw new ReaderError('ERR_READER_KEYSTORE', `${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    let f: KeyFile;
    try {
      f = JSON.parse(readFileSync(file, 'utf8')) as KeyFile;
    } catch {
      throw new ReaderError('ERR_READER_KEYSTORE', 'keystore is not valid JSON');
    }
    if (f?.v !== 1 || f.kdf?.alg !== 'scrypt' || ![f.kdf.N, f.kdf.r, f.kdf.p].every((n) => Number.isSafeInteger(n) && n > 0) || f.kdf.N > 1 << 20)
      throw new ReaderError('ERR_READER_KEYSTORE', 'unsupported keystore format');
    const k = kek(passphrase, Buffer.from(f.kdf.salt, 'base64'), f.kdf);
    let der: Buffer;
    try {
      const d = createDecipheriv('aes-256-gcm', k, Buffer.from(f.iv, 'base64'));
      d.setAAD(aad(f));
      d.setAuthTag(Buffer.from(f.tag, 'base64'));
      der = Buffer.concat([d.update(Buffer.from(f.ct, 'base64')), d.final()]);
    } catch {
      throw new ReaderError('ERR_READER_KEYSTORE', 'keystore does not decrypt (wrong passphrase or modified file)');
    } finally {
      wipe(k);
    }
    try {
      return new ReaderKeystore(dir, createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
    } finally {
      wipe(der);
    }
  }

  /** A PKCS#10 CSR (ECDSA P-256 / SHA-256) for `readerId`, PEM. */
  async csr(readerId: string): Promise<string> {
    const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
    const pkcs8 = this.privateKey.export({ format: 'der', type: 'pkcs8' });
    try {
      const priv = await webcrypto.subtle.importKey('pkcs8', pkcs8, alg, false, ['sign']);
      const pub = await webcrypto.subtle.importKey('spki', createPublicKey(this.privateKey).export({ format: 'der', type: 'spki' }), alg, true, ['verify']);
      const req = await x509.Pkcs10CertificateRequestGenerator.create({
        name: `CN=${readerId}`,
        keys: { privateKey: priv, publicKey: pub } as webcrypto.CryptoKeyPair as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      });
      return req.toString('pem');
    } finally {
      wipe(pkcs8);
    }
  }

  saveCertificates(certPem: string, caPem: string): void {
    writeFileSync(join(this.dir, CERT_FILE), certPem, { mode: 0o644 });
    writeFileSync(join(this.dir, CA_FILE), caPem, { mode: 0o644 });
  }

  /** The stored client certificate and CA (ERR_READER_NOT_ENROLLED when absent). */
  certificates(): { cert: string; ca: string } {
    return readCertificates(this.dir);
  }

  /** The reader id named by the stored certificate (CN). */
  readerId(): string {
    return readerIdOf(this.certificates().cert);
  }

  /** PEM of the private key, for the TLS client only (kept in memory). */
  tlsKeyPem(): string {
    return this.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  }

  /** TLS client key options (the PKCS#11 keystore's variant keeps the key in the token). */
  tlsOptions(): { key: string } {
    return { key: this.tlsKeyPem() };
  }

  /** What sealed deliveries are opened with. */
  get unsealKey(): KeyObject {
    return this.privateKey;
  }

  /** Nothing to release (the PKCS#11 keystore closes its token session). */
  close(): void {}
}

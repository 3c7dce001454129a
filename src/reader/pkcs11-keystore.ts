// The reader key in a PKCS#11 token (`--keystore pkcs11:token=LABEL[;module=PATH][;object=LABEL]`):
// a P-256 key pair generated INSIDE the token, private half CKA_SENSITIVE, CKA_EXTRACTABLE false
// (it never exists outside the token), usable for CKM_ECDSA (signing) and CKM_ECDH1_DERIVE.
//
// What the token does, and what it protects:
// - the CSR is signed in the token (C_Sign CKM_ECDSA over SHA-256);
// - mTLS client authentication: the TLS handshake signature is made in the token, through
//   OpenSSL's PKCS#11 engine (libengine-pkcs11-openssl, `privateKeyEngine` +
//   `privateKeyIdentifier` = an RFC 7512 URI): Node never holds the key;
// - sealed deliveries (card keys, session keys, offline masters) are ECDH-ES+A256KW JWEs to the
//   certificate key: the ECDH step runs in the token (CKM_ECDH1_DERIVE, CKD_NULL); the shared
//   secret Z (per ephemeral sender key, i.e. per delivery or per session) comes out as a
//   session-only generic secret and the KDF / key unwrap / AES-GCM run in the process.
// So a copy of the reader's directory, or of its process memory, does not give the reader key:
// an attacker needs the token and its PIN. What the token does NOT protect: the card keys,
// session keys and masters once unsealed (process memory, as with the file keystore), and the
// PIN itself (read from a file or the environment, held in memory, and passed to the engine).
//
// <dir>/reader-key.json  { v: 1, kind: 'pkcs11', module, token, object, id }: where the key is
// (no secret; 0600 like the file keystore). Certificates as in keystore.ts.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, createPublicKey, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JWK } from 'jose';
import type * as Pkcs11Types from 'pkcs11js';
import type { EcdhAgreement } from '../custody/ecdh-es.js';
import { loadPkcs11Module } from '../custody/pkcs11.js';
import { ReaderError } from './errors.js';
import { CA_FILE, CERT_FILE, KEY_FILE, readCertificates, readerIdOf } from './keystore.js';

type P11 = typeof Pkcs11Types;
type Handle = Buffer;

/** Default PKCS#11 module (SoftHSM2 as Debian installs it). */
export const DEFAULT_PKCS11_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
/** OpenSSL's PKCS#11 engine (Debian: libengine-pkcs11-openssl). */
export const DEFAULT_PKCS11_ENGINE = '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so';
const P256_OID_DER = Buffer.from('06082a8648ce3d030107', 'hex');

export interface Pkcs11KeystoreSpec {
  module: string;
  token: string;
  /** Label of the key pair in the token (default 'desfire-cms-reader'). */
  object: string;
}

interface KeyRef {
  v: 1;
  kind: 'pkcs11';
  module: string;
  token: string;
  object: string;
  /** CKA_ID (hex) of the key pair. */
  id: string;
}

/** Parse `pkcs11:token=LABEL;module=PATH;object=LABEL` (module and object optional). */
export function parsePkcs11Spec(spec: string): Pkcs11KeystoreSpec {
  if (!spec.startsWith('pkcs11:')) throw new ReaderError('ERR_READER_CONFIG', "a token keystore is 'pkcs11:token=LABEL[;module=PATH][;object=LABEL]'");
  const out: Record<string, string> = {};
  for (const part of spec.slice(7).split(';')) {
    if (!part) continue;
    const i = part.indexOf('=');
    const k = i < 0 ? part : part.slice(0, i);
    const v = i < 0 ? '' : decodeURIComponent(part.slice(i + 1));
    if (!['token', 'module', 'object'].includes(k)) throw new ReaderError('ERR_READER_CONFIG', `unknown keystore attribute '${k}' (token, module, object)`);
    if (!v) throw new ReaderError('ERR_READER_CONFIG', `keystore attribute '${k}' is empty`);
    out[k] = v;
  }
  if (!out.token) throw new ReaderError('ERR_READER_CONFIG', 'the keystore needs token=LABEL');
  for (const v of [out.token, out.object ?? '']) if (!/^[A-Za-z0-9 ._-]{0,32}$/.test(v)) throw new ReaderError('ERR_READER_CONFIG', 'token and object labels are 1..32 of [A-Za-z0-9 ._-]');
  return { token: out.token, module: out.module ?? DEFAULT_PKCS11_MODULE, object: out.object ?? 'desfire-cms-reader' };
}

async function load(module: string): Promise<{ mod: P11; p: Pkcs11Types.PKCS11 }> {
  try {
    const l = await loadPkcs11Module(module);
    return { mod: l.mod, p: l.pkcs11 };
  } catch (e) {
    throw new ReaderError('ERR_READER_KEYSTORE', (e as Error).message.split('\n')[0]!);
  }
}

type X509Crypto = Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[1];
type Bytes = ArrayBuffer | ArrayBufferView;
const view = (d: Bytes) => (d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength));

/** A WebCrypto facade for @peculiar/x509 whose `sign` is the token's (raw r || s, WebCrypto's ECDSA format). */
function shimCrypto(sign: (data: Uint8Array) => Uint8Array): X509Crypto {
  const subtle = {
    sign: async (_alg: unknown, _key: unknown, data: Bytes) => {
      const sig = sign(view(data));
      return sig.buffer.slice(sig.byteOffset, sig.byteOffset + sig.byteLength);
    },
    exportKey: (format: 'spki', key: webcrypto.CryptoKey) => webcrypto.subtle.exportKey(format, key),
    digest: (alg: string, data: Bytes) => webcrypto.subtle.digest(alg, view(data)),
  };
  return { subtle, getRandomValues: webcrypto.getRandomValues.bind(webcrypto), randomUUID: webcrypto.randomUUID.bind(webcrypto) } as unknown as X509Crypto;
}

export class Pkcs11ReaderKeystore implements EcdhAgreement {
  private constructor(
    readonly dir: string,
    private readonly ref: KeyRef,
    private readonly l: { mod: P11; p: Pkcs11Types.PKCS11 },
    private session: Handle | undefined,
    private readonly priv: Handle,
    readonly publicJwk: JWK,
    private readonly pin: string,
    private readonly engine: string,
  ) {}

  static exists(dir: string): boolean {
    if (!existsSync(join(dir, KEY_FILE))) return false;
    try {
      return (JSON.parse(readFileSync(join(dir, KEY_FILE), 'utf8')) as { kind?: string }).kind === 'pkcs11';
    } catch {
      return false;
    }
  }

  private static async session(spec: Pkcs11KeystoreSpec, pin: Uint8Array): Promise<{ l: { mod: P11; p: Pkcs11Types.PKCS11 }; s: Handle; pinText: string }> {
    if (pin.length < 4) throw new ReaderError('ERR_READER_KEYSTORE', 'token PIN must be at least 4 characters');
    const l = await load(spec.module);
    const { p, mod } = l;
    const slot = p.C_GetSlotList(true).find((x) => p.C_GetTokenInfo(x).label.trim() === spec.token);
    if (!slot) throw new ReaderError('ERR_READER_KEYSTORE', `no PKCS#11 token labelled '${spec.token}' in ${spec.module}`);
    const s = p.C_OpenSession(slot, mod.CKF_RW_SESSION | mod.CKF_SERIAL_SESSION);
    const pinText = Buffer.from(pin).toString('utf8');
    try {
      p.C_Login(s, mod.CKU_USER, pinText);
    } catch (e) {
      if (!String((e as Error).message).includes('CKR_USER_ALREADY_LOGGED_IN')) {
        p.C_CloseSession(s);
        throw new ReaderError('ERR_READER_KEYSTORE', 'token login failed (wrong PIN?)');
      }
    }
    return { l, s, pinText };
  }

  private static find(l: { mod: P11; p: Pkcs11Types.PKCS11 }, s: Handle, cls: number, object: string, id: Buffer): Handle | undefined {
    const { p, mod } = l;
    p.C_FindObjectsInit(s, [
      { type: mod.CKA_CLASS, value: cls },
      { type: mod.CKA_LABEL, value: object },
      { type: mod.CKA_ID, value: id },
    ]);
    try {
      return p.C_FindObjects(s, 1)[0];
    } finally {
      p.C_FindObjectsFinal(s);
    }
  }

  private static publicJwkOf(l: { mod: P11; p: Pkcs11Types.PKCS11 }, s: Handle, pub: Handle): JWK {
    const raw = l.p.C_GetAttributeValue(s, pub, [{ type: l.mod.CKA_EC_POINT }])[0]!.value as Buffer;
    // CKA_EC_POINT is a DER OCTET STRING around the uncompressed point 04 || x || y
    const point = raw.length === 67 && raw[0] === 0x04 && raw[1] === 0x41 ? raw.subarray(2) : raw;
    if (point.length !== 65 || point[0] !== 0x04) throw new ReaderError('ERR_READER_KEYSTORE', 'the token key is not an uncompressed P-256 point');
    return { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') };
  }

  /** Generate the key pair in the token (non-extractable) and record where it is. Refuses an existing keystore. */
  static async create(dir: string, spec: Pkcs11KeystoreSpec, pin: Uint8Array, engine = DEFAULT_PKCS11_ENGINE): Promise<Pkcs11ReaderKeystore> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (existsSync(join(dir, KEY_FILE))) throw new ReaderError('ERR_READER_KEYSTORE', `a keystore already exists in ${dir}`);
    const { l, s, pinText } = await Pkcs11ReaderKeystore.session(spec, pin);
    const { p, mod } = l;
    const id = createHash('sha256').update(`${dir}|${Date.now()}|${Math.random()}`).digest().subarray(0, 8);
    let pub: Handle;
    let priv: Handle;
    try {
      const common = [
        { type: mod.CKA_TOKEN, value: true },
        { type: mod.CKA_LABEL, value: spec.object },
        { type: mod.CKA_ID, value: id },
      ];
      ({ publicKey: pub, privateKey: priv } = p.C_GenerateKeyPair(
        s,
        { mechanism: mod.CKM_EC_KEY_PAIR_GEN },
        [...common, { type: mod.CKA_EC_PARAMS, value: P256_OID_DER }, { type: mod.CKA_VERIFY, value: true }, { type: mod.CKA_PRIVATE, value: false }],
        [
          ...common,
          { type: mod.CKA_PRIVATE, value: true },
          { type: mod.CKA_SENSITIVE, value: true },
          { type: mod.CKA_EXTRACTABLE, value: false },
          { type: mod.CKA_SIGN, value: true },
          { type: mod.CKA_DERIVE, value: true },
          { type: mod.CKA_DECRYPT, value: false },
          { type: mod.CKA_UNWRAP, value: false },
        ],
      ));
    } catch (e) {
      p.C_CloseSession(s);
      throw new ReaderError('ERR_READER_KEYSTORE', `the token did not generate the P-256 key: ${(e as Error).message.split('\n')[0]}`);
    }
    const ref: KeyRef = { v: 1, kind: 'pkcs11', module: spec.module, token: spec.token, object: spec.object, id: id.toString('hex') };
    writeFileSync(join(dir, KEY_FILE), JSON.stringify(ref, null, 2) + '\n', { mode: 0o600 });
    return new Pkcs11ReaderKeystore(dir, ref, l, s, priv, Pkcs11ReaderKeystore.publicJwkOf(l, s, pub), pinText, engine);
  }

  /** Log in to the token and find the key pair named by <dir>/reader-key.json. */
  static async open(dir: string, pin: Uint8Array, engine = DEFAULT_PKCS11_ENGINE): Promise<Pkcs11ReaderKeystore> {
    const file = join(dir, KEY_FILE);
    if (!existsSync(file)) throw new ReaderError('ERR_READER_NOT_ENROLLED', `no keystore in ${dir} (run: desfire-cms reader enrol)`);
    if ((statSync(file).mode & 0o077) !== 0) throw new ReaderError('ERR_READER_KEYSTORE', `${file} is accessible by group or others; chmod 600 it`);
    let ref: KeyRef;
    try {
      ref = JSON.parse(readFileSync(file, 'utf8')) as KeyRef;
    } catch {
      throw new ReaderError('ERR_READER_KEYSTORE', 'keystore is not valid JSON');
    }
    if (ref?.v !== 1 || ref.kind !== 'pkcs11' || typeof ref.id !== 'string' || !/^[0-9a-f]{2,64}$/.test(ref.id)) throw new ReaderError('ERR_READER_KEYSTORE', 'not a PKCS#11 keystore reference');
    const spec = parsePkcs11Spec(`pkcs11:token=${encodeURIComponent(ref.token)};module=${encodeURIComponent(ref.module)};object=${encodeURIComponent(ref.object)}`);
    const { l, s, pinText } = await Pkcs11ReaderKeystore.session(spec, pin);
    const id = Buffer.from(ref.id, 'hex');
    const priv = Pkcs11ReaderKeystore.find(l, s, l.mod.CKO_PRIVATE_KEY, ref.object, id);
    const pub = Pkcs11ReaderKeystore.find(l, s, l.mod.CKO_PUBLIC_KEY, ref.object, id);
    if (!priv || !pub) {
      l.p.C_CloseSession(s);
      throw new ReaderError('ERR_READER_KEYSTORE', `the token '${ref.token}' has no key pair '${ref.object}' (id ${ref.id})`);
    }
    return new Pkcs11ReaderKeystore(dir, ref, l, s, priv, Pkcs11ReaderKeystore.publicJwkOf(l, s, pub), pinText, engine);
  }

  private s(): Handle {
    if (!this.session) throw new ReaderError('ERR_READER_KEYSTORE', 'the token session is closed');
    return this.session;
  }

  /** Is the private key sensitive and non-extractable, as the token reports it? */
  attributes(): { sensitive: boolean; extractable: boolean; neverExtractable: boolean } {
    const { p, mod } = this.l;
    const a = p.C_GetAttributeValue(this.s(), this.priv, [{ type: mod.CKA_SENSITIVE }, { type: mod.CKA_EXTRACTABLE }, { type: mod.CKA_NEVER_EXTRACTABLE }]);
    const b = (i: number) => (a[i]!.value as Buffer)[0] === 1;
    return { sensitive: b(0), extractable: b(1), neverExtractable: b(2) };
  }

  /** ECDSA P-256 / SHA-256 in the token: raw r || s (64 bytes). */
  sign(data: Uint8Array): Uint8Array {
    const { p, mod } = this.l;
    const digest = createHash('sha256').update(data).digest();
    try {
      p.C_SignInit(this.s(), { mechanism: mod.CKM_ECDSA }, this.priv);
      return new Uint8Array(p.C_Sign(this.s(), digest, Buffer.alloc(64)));
    } catch (e) {
      throw new ReaderError('ERR_READER_KEYSTORE', `token signature failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }

  /** ECDH in the token with a peer P-256 public key: Z (32 bytes; the caller wipes it). */
  async agree(peer: JWK): Promise<Uint8Array> {
    const { p, mod } = this.l;
    const point = Buffer.concat([Buffer.from([0x04]), Buffer.from(peer.x!, 'base64url'), Buffer.from(peer.y!, 'base64url')]);
    if (point.length !== 65) throw new ReaderError('ERR_READER_KEYSTORE', 'peer key is not a P-256 point');
    let z: Handle | undefined;
    try {
      z = p.C_DeriveKey(this.s(), { mechanism: mod.CKM_ECDH1_DERIVE, parameter: { type: mod.CK_PARAMS_EC_DH, kdf: mod.CKD_NULL, publicData: point } as Pkcs11Types.ECDH1 }, this.priv, [
        { type: mod.CKA_CLASS, value: mod.CKO_SECRET_KEY },
        { type: mod.CKA_KEY_TYPE, value: mod.CKK_GENERIC_SECRET },
        { type: mod.CKA_VALUE_LEN, value: 32 },
        { type: mod.CKA_TOKEN, value: false },
        { type: mod.CKA_SENSITIVE, value: false },
        { type: mod.CKA_EXTRACTABLE, value: true },
      ]);
      const v = p.C_GetAttributeValue(this.s(), z, [{ type: mod.CKA_VALUE }])[0]!.value as Buffer;
      const out = new Uint8Array(v);
      v.fill(0);
      return out;
    } catch (e) {
      throw new ReaderError('ERR_READER_KEYSTORE', `token key agreement failed: ${(e as Error).message.split('\n')[0]}`);
    } finally {
      if (z) p.C_DestroyObject(this.s(), z);
    }
  }

  /** A PKCS#10 CSR (ECDSA P-256 / SHA-256) for `readerId`, signed in the token. */
  async csr(readerId: string): Promise<string> {
    const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
    const pub = await webcrypto.subtle.importKey('jwk', { ...this.publicJwk, ext: true } as webcrypto.JsonWebKey, alg, true, ['verify']);
    const crypto = shimCrypto((d) => this.sign(d));
    const req = await x509.Pkcs10CertificateRequestGenerator.create(
      {
        name: `CN=${readerId}`,
        keys: { privateKey: { algorithm: alg, type: 'private', extractable: false, usages: ['sign'] }, publicKey: pub } as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      },
      crypto,
    );
    return req.toString('pem');
  }

  saveCertificates(certPem: string, caPem: string): void {
    const cert = new x509.X509Certificate(certPem);
    const certJwk = createPublicKey(cert.publicKey.toString('pem')).export({ format: 'jwk' }) as JWK;
    if (certJwk.x !== this.publicJwk.x || certJwk.y !== this.publicJwk.y) throw new ReaderError('ERR_READER_KEYSTORE', 'the certificate is not for the token key');
    writeFileSync(join(this.dir, CERT_FILE), certPem, { mode: 0o644 });
    writeFileSync(join(this.dir, CA_FILE), caPem, { mode: 0o644 });
  }

  certificates(): { cert: string; ca: string } {
    return readCertificates(this.dir);
  }

  readerId(): string {
    return readerIdOf(this.certificates().cert);
  }

  /** TLS client options: the handshake signature is made in the token by OpenSSL's PKCS#11 engine. */
  tlsOptions(): { privateKeyEngine: string; privateKeyIdentifier: string } {
    if (!existsSync(this.engine)) throw new ReaderError('ERR_READER_KEYSTORE', `OpenSSL's PKCS#11 engine is not installed at ${this.engine} (Debian: libengine-pkcs11-openssl)`);
    const enc = (v: string) => encodeURIComponent(v);
    return {
      privateKeyEngine: this.engine,
      privateKeyIdentifier: `pkcs11:token=${enc(this.ref.token)};object=${enc(this.ref.object)};id=${this.ref.id.replace(/(..)/g, '%$1')};type=private;pin-value=${enc(this.pin)}`,
    };
  }

  /** What sealed deliveries are opened with: ECDH in the token. */
  get unsealKey(): EcdhAgreement {
    return this;
  }

  close(): void {
    if (!this.session) return;
    try {
      this.l.p.C_CloseSession(this.session);
    } catch {
      /* already closed */
    }
    this.session = undefined;
  }
}

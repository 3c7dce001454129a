import 'reflect-metadata';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CertificateAuthority,
  FileCaKeyStore,
  MemoryCaKeyStore,
  MemoryEnrolmentCodeStore,
  MemoryNonceStore,
  MemoryRevocationList,
  OperationTokens,
  PkiError,
  READER_URI_PREFIX,
  aesGcmProtector,
  createEnrolmentCode,
  enrolReader,
  hashEnrolmentCode,
  signReceipt,
  verifyReaderCertificate,
  verifyReceipt,
  type ReaderState,
  type Receipt,
} from '../../src/cms/pki/index.js';

type Key = webcrypto.CryptoKey;
type Pair = webcrypto.CryptoKeyPair;

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIG = { name: 'ECDSA', hash: 'SHA-256' } as const;

async function readerCsr(cn = 'anything', alg: 'P-256' | 'P-384' | 'RSA' = 'P-256'): Promise<{ keys: Pair; pem: string }> {
  const params =
    alg === 'RSA'
      ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
      : { name: 'ECDSA', namedCurve: alg };
  const keys = (await webcrypto.subtle.generateKey(params, true, ['sign', 'verify'])) as Pair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${cn}`,
    keys,
    signingAlgorithm: alg === 'RSA' ? params : SIG,
  });
  return { keys, pem: csr.toString('pem') };
}

async function expectPki(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toBeInstanceOf(PkiError);
  await expect(p).rejects.toMatchObject({ code });
}

const protector = aesGcmProtector(randomBytes(32));
let ca: CertificateAuthority;
let caStore: MemoryCaKeyStore;

beforeAll(async () => {
  caStore = new MemoryCaKeyStore();
  ca = await CertificateAuthority.openOrCreate(caStore, protector);
});

describe('CMS certificate authority', () => {
  it('is a P-256 CA certificate, created once and reopened identically', async () => {
    expect(ca.certificate.publicKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
    expect(ca.certificate.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(true);
    const again = await CertificateAuthority.openOrCreate(caStore, protector);
    expect(again.certificatePem).toBe(ca.certificatePem);
  });

  it('two processes racing to create end up with one CA', async () => {
    const store = new MemoryCaKeyStore();
    const [a, b] = await Promise.all([CertificateAuthority.openOrCreate(store, protector), CertificateAuthority.openOrCreate(store, protector)]);
    expect(a.certificatePem).toBe(b.certificatePem);
  });

  it('the private key is stored only wrapped; a wrong protector key is ERR_PKI_CA_KEY, never a new CA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pki-'));
    const store = new FileCaKeyStore(dir);
    const created = await CertificateAuthority.openOrCreate(store, protector);
    const files = readdirSync(dir);
    expect(files).toEqual(['ca.key.json']);
    const text = readFileSync(join(dir, files[0]!), 'utf8');
    expect(text).not.toMatch(/PRIVATE KEY/);
    const reopened = await CertificateAuthority.open(new FileCaKeyStore(dir), protector);
    expect(reopened.certificatePem).toBe(created.certificatePem);
    await expectPki(CertificateAuthority.openOrCreate(store, aesGcmProtector(randomBytes(32))), 'ERR_PKI_CA_KEY');
    expect(readFileSync(join(dir, files[0]!), 'utf8')).toBe(text);
  });

  it('open without a CA is ERR_PKI_CA_MISSING', async () => {
    await expectPki(CertificateAuthority.open(new MemoryCaKeyStore(), protector), 'ERR_PKI_CA_MISSING');
  });
});

describe('reader enrolment', () => {
  it('enrolment codes are stored only hashed, single use', async () => {
    const store = new MemoryEnrolmentCodeStore();
    const { code } = await createEnrolmentCode(store, { readerId: 'door-1', createdBy: 'op' });
    expect(code).toMatch(/^([A-Z0-9]{4}-){5}[A-Z0-9]{4}$/);
    expect(JSON.stringify(store)).not.toContain(code);
    const csr = await readerCsr();
    const r = await enrolReader(ca, store, { csrPem: csr.pem, code: code.toLowerCase() });
    expect(r.readerId).toBe('door-1');
    await expectPki(enrolReader(ca, store, { csrPem: csr.pem, code }), 'ERR_PKI_ENROLMENT_CODE');
  });

  it('the certificate is set by the CMS: subject, SAN reader id, random serial, short validity, clientAuth', async () => {
    const store = new MemoryEnrolmentCodeStore();
    const now = new Date('2026-01-01T00:00:00Z');
    const c1 = await createEnrolmentCode(store, { readerId: 'till-7', createdBy: 'op', now: now.getTime() });
    const c2 = await createEnrolmentCode(store, { readerId: 'till-8', createdBy: 'op', now: now.getTime() });
    const a = await enrolReader(ca, store, { csrPem: (await readerCsr('CN=admin, O=evil')).pem, code: c1.code, now });
    const b = await enrolReader(ca, store, { csrPem: (await readerCsr()).pem, code: c2.code, now });
    const cert = new x509.X509Certificate(a.certificatePem);
    expect(cert.subject).toBe('CN=till-7, OU=readers, O=desfire-cms');
    expect(cert.issuer).toBe(ca.certificate.subject);
    expect(cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items[0]).toMatchObject({ type: 'url', value: READER_URI_PREFIX + 'till-7' });
    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    expect(cert.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    expect(a.serial).not.toBe(b.serial);
    expect(a.serial.length).toBe(32);
    expect(cert.notAfter.getTime() - now.getTime()).toBe(30 * 86_400_000);
    expect(await cert.verify({ publicKey: ca.certificate.publicKey, date: now })).toBe(true);
  });

  it('expired or unknown codes are refused with one error code', async () => {
    const store = new MemoryEnrolmentCodeStore();
    const { code, expiresAt } = await createEnrolmentCode(store, { readerId: 'r1', createdBy: 'op', ttlMs: 60_000, now: 0 });
    const csr = (await readerCsr()).pem;
    await expectPki(enrolReader(ca, store, { csrPem: csr, code, now: new Date(expiresAt) }), 'ERR_PKI_ENROLMENT_CODE');
    await expectPki(enrolReader(ca, store, { csrPem: csr, code: 'AAAA-BBBB' }), 'ERR_PKI_ENROLMENT_CODE');
  });

  it('refuses non-P-256 keys, bad CSR signatures and garbage, without burning the code', async () => {
    const store = new MemoryEnrolmentCodeStore();
    const { code } = await createEnrolmentCode(store, { readerId: 'r2', createdBy: 'op' });
    await expectPki(enrolReader(ca, store, { csrPem: (await readerCsr('x', 'P-384')).pem, code }), 'ERR_PKI_KEY_ALGORITHM');
    await expectPki(enrolReader(ca, store, { csrPem: (await readerCsr('x', 'RSA')).pem, code }), 'ERR_PKI_KEY_ALGORITHM');
    // swap the public key of one CSR into another: the self-signature no longer verifies
    const one = new x509.Pkcs10CertificateRequest((await readerCsr('a')).pem);
    const other = await readerCsr('a');
    const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', other.keys.publicKey));
    const der = new Uint8Array(one.rawData);
    const oldSpki = new Uint8Array(one.publicKey.rawData);
    const at = Buffer.from(der).indexOf(Buffer.from(oldSpki));
    der.set(spki, at);
    const forged = x509.PemConverter.encode(der.buffer, 'CERTIFICATE REQUEST');
    await expectPki(enrolReader(ca, store, { csrPem: forged, code }), 'ERR_PKI_CSR_SIGNATURE');
    await expectPki(enrolReader(ca, store, { csrPem: 'not a csr', code }), 'ERR_PKI_CSR_INVALID');
    const ok = await enrolReader(ca, store, { csrPem: (await readerCsr()).pem, code });
    expect(ok.readerId).toBe('r2');
  });

  it('bad arguments are ERR_PKI_BAD_INPUT and store nothing', async () => {
    const store = new MemoryEnrolmentCodeStore();
    await expectPki(createEnrolmentCode(store, { readerId: 'Bad Id', createdBy: 'op' }), 'ERR_PKI_BAD_INPUT');
    await expectPki(createEnrolmentCode(store, { readerId: 'ok', createdBy: 'op', ttlMs: 0 }), 'ERR_PKI_BAD_INPUT');
    expect(JSON.stringify([...(store as unknown as { recs: Map<string, unknown> }).recs])).toBe('[]');
    expect(hashEnrolmentCode('abcd-efgh')).toBe(hashEnrolmentCode('ABCDEFGH'));
  });
});

describe('client certificate verification and revocation', () => {
  let pem: string;
  let serial: string;
  const states = new Map<string, ReaderState>();
  const revocations = new MemoryRevocationList();
  const checks = { revocations, readerState: async (id: string) => states.get(id) };

  beforeAll(async () => {
    const store = new MemoryEnrolmentCodeStore();
    const { code } = await createEnrolmentCode(store, { readerId: 'gate-3', createdBy: 'op' });
    ({ certificatePem: pem, serial } = await enrolReader(ca, store, { csrPem: (await readerCsr()).pem, code }));
  });

  it('maps an active reader certificate to its reader id', async () => {
    states.set('gate-3', 'active');
    expect((await verifyReaderCertificate(ca, pem, checks)).readerId).toBe('gate-3');
    const der = new Uint8Array(new x509.X509Certificate(pem).rawData);
    expect((await verifyReaderCertificate(ca, der, checks)).readerId).toBe('gate-3');
  });

  it('refuses suspended/unknown readers, expired certs, other CAs, the CA cert itself', async () => {
    states.set('gate-3', 'suspended');
    await expectPki(verifyReaderCertificate(ca, pem, checks), 'ERR_PKI_READER_STATE');
    states.delete('gate-3');
    await expectPki(verifyReaderCertificate(ca, pem, checks), 'ERR_PKI_READER_STATE');
    states.set('gate-3', 'active');
    await expectPki(verifyReaderCertificate(ca, pem, { ...checks, now: new Date(Date.now() + 31 * 86_400_000) }), 'ERR_PKI_CERT_EXPIRED');
    const other = await CertificateAuthority.openOrCreate(new MemoryCaKeyStore(), protector);
    await expectPki(verifyReaderCertificate(other, pem, checks), 'ERR_PKI_CERT_UNTRUSTED');
    await expectPki(verifyReaderCertificate(ca, ca.certificatePem, checks), 'ERR_PKI_CERT_UNTRUSTED');
    await expectPki(verifyReaderCertificate(ca, 'garbage', checks), 'ERR_PKI_CERT_INVALID');
  });

  it('a certificate from another CA with the same subject name is refused by signature', async () => {
    const imposter = await CertificateAuthority.openOrCreate(new MemoryCaKeyStore(), protector);
    const store = new MemoryEnrolmentCodeStore();
    const { code } = await createEnrolmentCode(store, { readerId: 'gate-3', createdBy: 'op' });
    const forged = await enrolReader(imposter, store, { csrPem: (await readerCsr()).pem, code });
    expect(new x509.X509Certificate(forged.certificatePem).issuer).toBe(ca.certificate.subject);
    await expectPki(verifyReaderCertificate(ca, forged.certificatePem, checks), 'ERR_PKI_CERT_UNTRUSTED');
  });

  it('revocation refuses the certificate and appears in the signed CRL', async () => {
    await revocations.revoke(serial.toUpperCase(), 'keyCompromise');
    await expectPki(verifyReaderCertificate(ca, pem, checks), 'ERR_PKI_CERT_REVOKED');
    const crl = new x509.X509Crl(await ca.crl((await revocations.list()).map((e) => ({ serial: e.serial, revokedAt: e.revokedAt }))));
    expect(await crl.verify({ publicKey: ca.certificate.publicKey })).toBe(true);
    expect(crl.findRevoked(new x509.X509Certificate(pem))).not.toBeNull();
  });
});

describe('operation tokens', () => {
  let tokens: OperationTokens;
  beforeAll(async () => {
    tokens = await OperationTokens.openOrCreate(caStore, protector);
  });

  it('verify once, then ERR_TOKEN_REPLAYED (also at a second CMS instance sharing the nonce store)', async () => {
    const nonces = new MemoryNonceStore();
    const t = await tokens.issue({ readerId: 'station-1', jobId: 'job-42' });
    const second = await OperationTokens.openOrCreate(caStore, protector);
    const c = await second.verify(t.token, { readerId: 'station-1', jobId: 'job-42' }, nonces);
    expect(c).toMatchObject({ readerId: 'station-1', jobId: 'job-42', jti: t.jti });
    expect(t.expiresAt - t.issuedAt).toBe(120);
    await expectPki(tokens.verify(t.token, { readerId: 'station-1', jobId: 'job-42' }, nonces), 'ERR_TOKEN_REPLAYED');
  });

  it('wrong reader, wrong job, expired, tampered, foreign key: refused and the jti stays unused', async () => {
    const nonces = new MemoryNonceStore();
    const now = new Date();
    const t = await tokens.issue({ readerId: 'station-1', jobId: 'job-1', ttlSeconds: 60, now });
    await expectPki(tokens.verify(t.token, { readerId: 'station-2' }, nonces), 'ERR_TOKEN_INVALID');
    await expectPki(tokens.verify(t.token, { readerId: 'station-1', jobId: 'job-2' }, nonces), 'ERR_TOKEN_INVALID');
    await expectPki(tokens.verify(t.token, { readerId: 'station-1', now: new Date(now.getTime() + 120_000) }, nonces), 'ERR_TOKEN_EXPIRED');
    const [h, p, s] = t.token.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
    payload.job = 'job-evil';
    const tampered = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
    await expectPki(tokens.verify(tampered, { readerId: 'station-1' }, nonces), 'ERR_TOKEN_INVALID');
    const foreign = await OperationTokens.openOrCreate(new MemoryCaKeyStore(), protector);
    const f = await foreign.issue({ readerId: 'station-1', jobId: 'job-1' });
    await expectPki(tokens.verify(f.token, { readerId: 'station-1' }, nonces), 'ERR_TOKEN_INVALID');
    // after all those refusals the genuine token still works exactly once
    await tokens.verify(t.token, { readerId: 'station-1', jobId: 'job-1', now }, nonces);
  });

  it('refuses over-long lifetimes at issue', async () => {
    await expectPki(tokens.issue({ readerId: 'r', jobId: 'j', ttlSeconds: 3600 }), 'ERR_PKI_BAD_INPUT');
  });
});

describe('receipts', () => {
  let readerKeys: Pair;
  let certPem: string;
  const receipt: Receipt = {
    jobId: 'job-9',
    jti: 'abc',
    uid: '04A1B2C3D4E5F6',
    at: 1_800_000_000,
    results: [
      { op: 'CreateApplication', aid: 'CAFE01', status: 0 },
      { op: 'ChangeKey', aid: 'CAFE01', keyNo: 1, keyVersion: 1, status: 0 },
    ],
  };

  beforeAll(async () => {
    const store = new MemoryEnrolmentCodeStore();
    const { code } = await createEnrolmentCode(store, { readerId: 'station-9', createdBy: 'op' });
    const csr = await readerCsr();
    readerKeys = csr.keys;
    ({ certificatePem: certPem } = await enrolReader(ca, store, { csrPem: csr.pem, code }));
  });

  it('a receipt signed with the reader key verifies against its certificate', async () => {
    const jws = await signReceipt(receipt, readerKeys.privateKey as Key);
    expect(await verifyReceipt(jws, certPem, { jobId: 'job-9', jti: 'abc' })).toEqual(receipt);
  });

  it('a bad signature (other key, or altered payload) is ERR_RECEIPT_SIGNATURE', async () => {
    const other = (await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify'])) as Pair;
    const jws = await signReceipt(receipt, other.privateKey);
    await expectPki(verifyReceipt(jws, certPem, { jobId: 'job-9', jti: 'abc' }), 'ERR_RECEIPT_SIGNATURE');
    const good = await signReceipt(receipt, readerKeys.privateKey);
    const [h, , s] = good.split('.');
    const altered = `${h}.${Buffer.from(JSON.stringify({ ...receipt, uid: '04000000000000' })).toString('base64url')}.${s}`;
    await expectPki(verifyReceipt(altered, certPem, { jobId: 'job-9', jti: 'abc' }), 'ERR_RECEIPT_SIGNATURE');
  });

  it('a receipt for another job or token is ERR_RECEIPT_MISMATCH; garbage is ERR_RECEIPT_INVALID', async () => {
    const jws = await signReceipt(receipt, readerKeys.privateKey);
    await expectPki(verifyReceipt(jws, certPem, { jobId: 'job-10', jti: 'abc' }), 'ERR_RECEIPT_MISMATCH');
    await expectPki(verifyReceipt(jws, certPem, { jobId: 'job-9', jti: 'abd' }), 'ERR_RECEIPT_MISMATCH');
    await expectPki(verifyReceipt('a.b', certPem, { jobId: 'job-9', jti: 'abc' }), 'ERR_RECEIPT_INVALID');
    await expectPki(signReceipt({ ...receipt, uid: 'zz' }, readerKeys.privateKey), 'ERR_RECEIPT_INVALID');
  });
});

// Station-job crypto on node:crypto (operation tokens and receipt verification, issue #5
// installation performance): interoperable with jose both ways, and strict about what it accepts
// (only our header, ES256, no crit, 64-byte P1363 signatures, the certificate's key).
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { CompactSign, SignJWT, importSPKI, jwtVerify } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CertificateAuthority,
  MemoryCaKeyStore,
  MemoryEnrolmentCodeStore,
  MemoryNonceStore,
  OperationTokens,
  aesGcmProtector,
  createEnrolmentCode,
  enrolReader,
  verifyReceipt,
  type Receipt,
} from '../../src/cms/pki/index.js';

type Pair = webcrypto.CryptoKeyPair;
const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const protector = aesGcmProtector(randomBytes(32));
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}

async function enrolled(ca: CertificateAuthority, id: string): Promise<{ keys: Pair; pem: string }> {
  x509.cryptoProvider.set(webcrypto as never);
  const keys = (await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify'])) as Pair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=r', keys: keys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  const store = new MemoryEnrolmentCodeStore();
  const { code: c } = await createEnrolmentCode(store, { readerId: id, createdBy: 'op' });
  const { certificatePem } = await enrolReader(ca, store, { csrPem: csr.toString('pem'), code: c });
  return { keys, pem: certificatePem };
}

describe('operation tokens (node:crypto ES256)', () => {
  let store: MemoryCaKeyStore;
  let tokens: OperationTokens;
  beforeAll(async () => {
    store = new MemoryCaKeyStore();
    tokens = await OperationTokens.openOrCreate(store, protector);
  });

  it('a token verifies with jose (standard JWT), and a jose-signed token with the same key verifies here', async () => {
    const t = await tokens.issue({ readerId: 'station-1', jobId: 'job-1' });
    const rec = (await store.load('token-signing'))!;
    const { payload, protectedHeader } = await jwtVerify(t.token, await importSPKI(rec.publicPem, 'ES256'), { issuer: 'desfire-cms', audience: 'station-1', typ: 'desfire-op+jwt' });
    expect(protectedHeader).toEqual({ alg: 'ES256', typ: 'desfire-op+jwt' });
    expect(payload).toMatchObject({ job: 'job-1', jti: t.jti, iat: t.issuedAt, exp: t.expiresAt });
  });

  it('refuses a token with any other header (alg none, HS256, extra fields) even when its claims are right', async () => {
    const nonces = new MemoryNonceStore();
    const t = await tokens.issue({ readerId: 'station-1', jobId: 'job-2' });
    const [, p, s] = t.token.split('.');
    for (const h of [{ alg: 'none', typ: 'desfire-op+jwt' }, { alg: 'HS256', typ: 'desfire-op+jwt' }, { alg: 'ES256', typ: 'desfire-op+jwt', crit: ['x'], x: 1 }, { alg: 'ES256' }]) {
      expect(await code(tokens.verify(`${b64(h)}.${p}.${s}`, { readerId: 'station-1', jobId: 'job-2' }, nonces))).toBe('ERR_TOKEN_INVALID');
    }
    expect(await code(tokens.verify(`${t.token.split('.').slice(0, 2).join('.')}.`, { readerId: 'station-1' }, nonces))).toBe('ERR_TOKEN_INVALID');
    expect(await code(tokens.verify(`${t.token}AA`, { readerId: 'station-1' }, nonces))).toBe('ERR_TOKEN_INVALID');
    // a token signed by another key with our exact header is refused too
    const other = (await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify'])) as Pair;
    const forged = await new SignJWT({ job: 'job-2' }).setProtectedHeader({ alg: 'ES256', typ: 'desfire-op+jwt' }).setIssuer('desfire-cms').setAudience('station-1').setJti('x').setIssuedAt().setExpirationTime('1m').sign(other.privateKey);
    expect(await code(tokens.verify(forged, { readerId: 'station-1', jobId: 'job-2' }, nonces))).toBe('ERR_TOKEN_INVALID');
    // all those refusals left the genuine token's jti unused
    await tokens.verify(t.token, { readerId: 'station-1', jobId: 'job-2' }, nonces);
    expect(await code(tokens.verify(t.token, { readerId: 'station-1', jobId: 'job-2' }, nonces))).toBe('ERR_TOKEN_REPLAYED');
  });

  it('a token issued in the future (beyond the clock skew) is refused; expiry honours the 5 s skew', async () => {
    const nonces = new MemoryNonceStore();
    const now = new Date();
    const future = await tokens.issue({ readerId: 'r', jobId: 'j', now: new Date(now.getTime() + 60_000) });
    expect(await code(tokens.verify(future.token, { readerId: 'r', now }, nonces))).toBe('ERR_TOKEN_INVALID');
    const t = await tokens.issue({ readerId: 'r', jobId: 'j', ttlSeconds: 10, now });
    expect(await code(tokens.verify(t.token, { readerId: 'r', now: new Date(now.getTime() + 16_000) }, nonces))).toBe('ERR_TOKEN_EXPIRED');
    await tokens.verify(t.token, { readerId: 'r', now: new Date(now.getTime() + 13_000) }, nonces);
  });
});

describe('receipt verification (node:crypto, key cached per certificate)', () => {
  let ca: CertificateAuthority;
  let a: { keys: Pair; pem: string };
  let b: { keys: Pair; pem: string };
  const receipt: Receipt = { jobId: 'job-1', jti: 'j1', uid: '04A1B2C3D4E5F6', at: 1_800_000_000, results: [{ op: 'CommitTransaction', status: 0 }] };
  beforeAll(async () => {
    ca = await CertificateAuthority.openOrCreate(new MemoryCaKeyStore(), protector);
    a = await enrolled(ca, 'station-a');
    b = await enrolled(ca, 'station-b');
  });
  // a compact JWS signed over whatever header is given (jose itself refuses to sign some of them)
  const sign = async (r: unknown, key: webcrypto.CryptoKey, header: Record<string, unknown> = { alg: 'ES256', typ: 'desfire-receipt+jws' }) => {
    const input = `${b64(header)}.${b64(r)}`;
    const sig = Buffer.from(await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, Buffer.from(input)));
    return `${input}.${sig.toString('base64url')}`;
  };

  it("each receipt is checked against the certificate passed in, not a cached one (a's receipt fails with b's certificate after a's was cached)", async () => {
    const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(receipt))).setProtectedHeader({ alg: 'ES256', typ: 'desfire-receipt+jws' }).sign(a.keys.privateKey);
    expect(await verifyReceipt(jws, a.pem, { jobId: 'job-1', jti: 'j1' })).toEqual(receipt);
    expect(await verifyReceipt(jws, a.pem, { jobId: 'job-1', jti: 'j1' })).toEqual(receipt);
    expect(await code(verifyReceipt(jws, b.pem, { jobId: 'job-1', jti: 'j1' }))).toBe('ERR_RECEIPT_SIGNATURE');
    expect(await verifyReceipt(await sign(receipt, b.keys.privateKey), b.pem, { jobId: 'job-1', jti: 'j1' })).toEqual(receipt);
  });

  it('refuses crit, b64, another typ, and a header or signature that is not what ES256 signs', async () => {
    const exp = { jobId: 'job-1', jti: 'j1' };
    expect(await code(verifyReceipt(await sign(receipt, a.keys.privateKey, { alg: 'ES256', crit: ['b64'], b64: false }), a.pem, exp))).toBe('ERR_RECEIPT_SIGNATURE');
    expect(await code(verifyReceipt(await sign(receipt, a.keys.privateKey, { alg: 'ES256', crit: ['x-extension'], 'x-extension': 1 }), a.pem, exp))).toBe('ERR_RECEIPT_SIGNATURE');
    expect(await code(verifyReceipt(await sign(receipt, a.keys.privateKey, { alg: 'ES256', typ: 'JWT' }), a.pem, exp))).toBe('ERR_RECEIPT_SIGNATURE');
    // no typ at all is accepted (jose never required it), alg must still be ES256
    expect(await verifyReceipt(await sign(receipt, a.keys.privateKey, { alg: 'ES256' }), a.pem, exp)).toEqual(receipt);
    const good = await sign(receipt, a.keys.privateKey);
    const [h, p, s] = good.split('.');
    expect(await code(verifyReceipt(`${b64({ alg: 'none' })}.${p}.`, a.pem, exp))).toBe('ERR_RECEIPT_SIGNATURE');
    expect(await code(verifyReceipt(`${h}.${p}.${s}AAAA`, a.pem, exp))).toBe('ERR_RECEIPT_SIGNATURE');
    expect(await code(verifyReceipt(`${h}.${p}.${s!.slice(0, -4)}`, a.pem, exp))).toBe('ERR_RECEIPT_SIGNATURE');
    expect(await code(verifyReceipt(`${h}.${p}+.${s}`, a.pem, exp))).toBe('ERR_RECEIPT_INVALID');
    expect(await code(verifyReceipt(good, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', exp))).toBe('ERR_RECEIPT_SIGNATURE');
  });
});

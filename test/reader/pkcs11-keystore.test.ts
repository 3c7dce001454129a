// The reader key in a PKCS#11 token (SoftHSM2): `reader enrol --keystore pkcs11:…` generates the
// P-256 key inside the token (sensitive, never extractable), the CSR is signed there, and
// `reader run` talks mTLS with the handshake signed in the token (OpenSSL's PKCS#11 engine) and
// opens the CMS's sealed deliveries with the ECDH step in the token; the access check is granted.
// Skips with a reason without SoftHSM2 or the engine; fails under CI=true.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactEncrypt } from 'jose';
import { createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveImageAtomicSync } from '../../src/card/image-file.js';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { createEnrolmentCode } from '../../src/cms/pki/enrolment.js';
import { decryptEcdhEsA256kw } from '../../src/custody/ecdh-es.js';
import { DEFAULT_PKCS11_ENGINE, Pkcs11ReaderKeystore, parsePkcs11Spec } from '../../src/reader/pkcs11-keystore.js';
import { fileExists, requireComponent } from '../helpers/system.js';
import { softHsmAvailable, softHsmToken } from '../custody/softhsm.js';
import { type StationCms, startStationCms } from './e2e-helpers.js';

const ok = requireComponent('SoftHSM2', await softHsmAvailable()) && requireComponent("OpenSSL's PKCS#11 engine (libengine-pkcs11-openssl)", fileExists(DEFAULT_PKCS11_ENGINE, 'the engine'));

describe.skipIf(!ok)('reader keystore in a PKCS#11 token (SoftHSM2)', () => {
  let s: StationCms;
  let token: ReturnType<typeof softHsmToken>;
  let pinFile: string;
  beforeAll(async () => {
    token = softHsmToken();
    pinFile = join(mkdtempSync(join(tmpdir(), 'reader-pin-')), 'pin');
    writeFileSync(pinFile, token.pin, { mode: 0o600 });
    s = await startStationCms();
  }, 60_000);
  afterAll(async () => s?.close());

  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l), env: {}, cwd: process.cwd() } as CliIO };
  };

  it('enrol generates a non-extractable key in the token; reader run does mTLS and unseals through the token: access granted', async () => {
    const readers = s.cms.deps.domain!.readers;
    await readers.register('door-hsm', 'door-hsm');
    await readers.grantRole({ readerId: 'door-hsm', tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver', 'offline'] });
    const { code } = await createEnrolmentCode(s.cms.deps.pki!.codes, { readerId: 'door-hsm', createdBy: 'test' });
    const dir = mkdtempSync(join(tmpdir(), 'reader-hsm-'));
    const codeFile = join(dir, '..', `code-${Date.now()}`);
    writeFileSync(codeFile, code, { mode: 0o600 });
    const caFile = join(dir, '..', `ca-${Date.now()}.pem`);
    writeFileSync(caFile, s.cms.ca!.certificatePem);
    const spec = `pkcs11:token=${token.tokenLabel};module=${token.library};object=door-hsm`;

    const e = io();
    expect(await main(['reader', 'enrol', '--dir', dir, '--cms', s.url, '--ca', caFile, '--id', 'door-hsm', '--code-file', codeFile, '--keystore', spec, '--pin-file', pinFile, '--servername', 'localhost'], e.io)).toBe(0);
    expect(e.err).toEqual([]);
    expect(e.out[0]).toMatch(/^enrolled reader door-hsm: .* \(key in PKCS#11 token 'dcms-test', non-extractable\)$/);
    // the directory holds where the key is, never the key
    const ref = JSON.parse(readFileSync(join(dir, 'reader-key.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(ref).sort()).toEqual(['id', 'kind', 'module', 'object', 'token', 'v']);
    const ks = await Pkcs11ReaderKeystore.open(dir, new TextEncoder().encode(token.pin));
    expect(ks.attributes()).toEqual({ sensitive: true, extractable: false, neverExtractable: true });
    // the certificate the CMS issued is for the token key
    const certKey = createPublicKey(readFileSync(join(dir, 'reader-cert.pem'), 'utf8')).export({ format: 'jwk' });
    expect([certKey.x, certKey.y]).toEqual([ks.publicJwk.x, ks.publicJwk.y]);
    // ECDH-ES+A256KW to the token key opens through the token (and only the right key does)
    const jwe = await new CompactEncrypt(new TextEncoder().encode('sealed to the token')).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' }).encrypt(createPublicKey({ key: ks.publicJwk, format: 'jwk' }));
    expect(new TextDecoder().decode(await decryptEcdhEsA256kw(jwe, ks))).toBe('sealed to the token');
    const parts = jwe.split('.');
    parts[1] = Buffer.from(Buffer.from(parts[1]!, 'base64url').map((b, i) => (i === 0 ? b ^ 1 : b))).toString('base64url');
    await expect(decryptEcdhEsA256kw(parts.join('.'), ks)).rejects.toMatchObject({ code: 'ERR_SEALED_DECRYPT' });
    ks.close();
    await expect(Pkcs11ReaderKeystore.open(dir, new TextEncoder().encode('wrong-pin'))).rejects.toMatchObject({ code: 'ERR_READER_KEYSTORE' });

    // a card personalised by a station; the token reader grants access with the key delivered online
    const { card, uid } = await s.personalisedCard();
    const image = join(dir, 'card.json');
    saveImageAtomicSync(image, card.toImage());
    const r = io();
    expect(await main(['reader', 'run', '--dir', dir, '--cms', s.url, '--servername', 'localhost', '--pin-file', pinFile, '--image', image, '--tx', 'access', '--zone', '1'], r.io)).toBe(0);
    expect(r.err).toEqual([]);
    expect(r.out).toEqual([`access-check card ${uid}: granted (online, baton #1)`]);
    const baton = await s.cms.deps.domain!.db.selectFrom('reader_baton').select(['op', 'result']).where('reader_id', '=', 'door-hsm').execute();
    expect(baton.map((b) => [b.op, b.result])).toEqual([['access-check', 'granted']]);
    // station jobs need the file keystore: a usage error, nothing run
    const j = io();
    expect(await main(['reader', 'job', '--dir', dir, '--cms', s.url, '--pin-file', pinFile, '--image', image, '--kind', 'issue'], j.io)).toBe(2);
    expect(j.err.join('\n')).toMatch(/station jobs need the file keystore/);
    expect(existsSync(join(dir, 'reader-key.json'))).toBe(true);
  }, 120_000);

  it('keystore specs: bad ones are typed errors', () => {
    expect(parsePkcs11Spec('pkcs11:token=t1')).toEqual({ token: 't1', module: '/usr/lib/softhsm/libsofthsm2.so', object: 'desfire-cms-reader' });
    for (const bad of ['pkcs11:', 'file:x', 'pkcs11:token=a;pin=1234', 'pkcs11:token=', 'pkcs11:token=a/b'])
      expect(() => parsePkcs11Spec(bad), bad).toThrow(expect.objectContaining({ code: 'ERR_READER_CONFIG' }));
  });
});

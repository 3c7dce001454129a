// KeyCustody.sealMaster: an AN10922 master sealed ITSELF to a reader (offline use with cards the
// reader has not seen). The reader opens it with its private key and derives exactly the card key
// custody derives; audited as 'seal_master'; bad input changes nothing and releases nothing;
// another reader, another (tenant, AID, keyNo) or an expired delivery is refused. Backends:
// embedded seals; Vault Transit only with exportableMasters; PKCS#11 refuses (non-extractable).
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { MASTER_TTL, unsealMaster } from '../../src/custody/seal-master.js';
import { generateReaderKeyPair } from '../../src/custody/sealed.js';
import { MemoryVaultStore } from '../../src/custody/store.js';
import type { CallerContext, KeyCustody } from '../../src/custody/types.js';
import { VaultTransitEngine } from '../../src/custody/vault-transit.js';
import { Diversifier } from '../../src/core/crypto/an10922.js';
import { requireComponent } from '../helpers/system.js';
import { type BackendUnderTest, embeddedFactory } from './backends.js';
import { pkcs11Factory } from './pkcs11-factory.js';
import { FakeTransit } from './transit-server.js';

const ctx: CallerContext = { actor: 'reader:door-1', purpose: 'offline master', correlationId: 'req-1' };
const reader = generateReaderKeyPair();
const other = generateReaderKeyPair();
const recipient = { readerId: 'door-1', publicKey: reader.publicKey };
const req = { master: 'access.A1C001.1', tenant: 'access', aid: 'A1C001', keyNo: 1 };
const expectFor = { tenant: 'access', aid: 'A1C001', keyNo: 1 };
const input = new Uint8Array(randomBytes(15)); // fits AES (31) and 3K3DES (15)
const binding = { tenant: 'access', aid: 'A1C001', uid: '04112233445566', keyNo: 1, version: 1 };

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups) await c();
  cleanups = [];
});

async function track(b: BackendUnderTest): Promise<BackendUnderTest> {
  cleanups.push(() => b.cleanup());
  return b;
}

/** The master opened by the reader derives the same card key as custody itself. */
async function roundTrip(custody: KeyCustody, audit: MemoryAuditSink, alg: 'aes128' | '3k3des'): Promise<void> {
  await custody.createKey(ctx, req.master, { purpose: 'diversify', alg });
  audit.clear();
  const s = await custody.sealMaster(ctx, req, recipient, { ttlSeconds: 300 });
  expect(s).toMatchObject({ format: 'jwe-compact', master: req.master, masterVersion: 1, alg });
  expect(Date.parse(s.expiresAt) - Date.now()).toBeGreaterThan(290_000);
  expect(Date.parse(s.expiresAt) - Date.now()).toBeLessThanOrEqual(300_000);
  const { material, claim } = await unsealMaster(s, reader.privateKey, 'door-1', expectFor);
  expect(claim).toMatchObject({ t: 'access', aid: 'A1C001', kn: 1, m: req.master, mv: 1, alg });
  const mine = new Diversifier(alg, material).derive(input);
  const theirs = await custody.exportForCard(ctx, { kind: 'diversified', master: req.master, masterVersion: 1, input, binding });
  expect(Buffer.from(mine).toString('hex')).toBe(Buffer.from(theirs).toString('hex'));
  // audited as its own operation, naming the key, its version and the reader; no key bytes
  const ev = audit.events.filter((e) => e.op === 'seal_master');
  expect(ev).toEqual([expect.objectContaining({ op: 'seal_master', outcome: 'ok', key: req.master, keyVersion: 1, recipient: 'door-1', actor: 'reader:door-1' })]);
  expect(JSON.stringify(audit.events)).not.toContain(Buffer.from(material).toString('hex'));
  expect(JSON.stringify(audit.events)).not.toContain(Buffer.from(material).toString('base64url'));
}

describe('sealMaster: embedded backend', () => {
  it('seals the master itself; the reader derives the same card keys (AES-128 and 3K3DES); audited', async () => {
    for (const alg of ['aes128', '3k3des'] as const) {
      const b = await track(await embeddedFactory.make());
      await roundTrip(b.custody, b.audit, alg);
    }
  });

  it('refuses what the reader must not open: another reader, another key, expired, tampered', async () => {
    const b = await track(await embeddedFactory.make());
    await b.custody.createKey(ctx, req.master, { purpose: 'diversify', alg: 'aes128' });
    const s = await b.custody.sealMaster(ctx, req, recipient);
    expect(Date.parse(s.expiresAt) - Date.now()).toBeGreaterThan(MASTER_TTL.default * 1000 - 10_000); // default 10 min
    await expect(unsealMaster(s, reader.privateKey, 'door-2', expectFor)).rejects.toMatchObject({ code: 'ERR_SEALED_BINDING' });
    await expect(unsealMaster(s, other.privateKey, 'door-1', expectFor)).rejects.toMatchObject({ code: 'ERR_SEALED_DECRYPT' });
    await expect(unsealMaster(s, reader.privateKey, 'door-1', { ...expectFor, keyNo: 2 })).rejects.toMatchObject({ code: 'ERR_SEALED_BINDING' });
    await expect(unsealMaster(s, reader.privateKey, 'door-1', { ...expectFor, tenant: 'cafeteria' })).rejects.toMatchObject({ code: 'ERR_SEALED_BINDING' });
    await expect(unsealMaster(s, reader.privateKey, 'door-1', expectFor, Date.now() + 601_000)).rejects.toMatchObject({ code: 'ERR_SEALED_EXPIRED' });
    const parts = s.jwe.split('.');
    const ct = Buffer.from(parts[3]!, 'base64url');
    ct[0]! ^= 1;
    parts[3] = ct.toString('base64url');
    await expect(unsealMaster({ ...s, jwe: parts.join('.') }, reader.privateKey, 'door-1', expectFor)).rejects.toMatchObject({ code: 'ERR_SEALED_DECRYPT' });
    // a changed claim (the JWE's AAD) does not decrypt either
    const h = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString()) as { dcms: { kn: number } };
    h.dcms.kn = 2;
    const forged = [Buffer.from(JSON.stringify(h)).toString('base64url'), ...s.jwe.split('.').slice(1)].join('.');
    await expect(unsealMaster({ ...s, jwe: forged }, reader.privateKey, 'door-1', { ...expectFor, keyNo: 2 })).rejects.toMatchObject({ code: 'ERR_SEALED_DECRYPT' });
  });

  it('bad input: a typed error, nothing released, an error audit event', async () => {
    const b = await track(await embeddedFactory.make());
    await b.custody.createKey(ctx, req.master, { purpose: 'diversify', alg: 'aes128' });
    await b.custody.createKey(ctx, 'kek.access', { purpose: 'wrap' });
    b.audit.clear();
    const bad: [Parameters<KeyCustody['sealMaster']>, string][] = [
      [[ctx, req, recipient, { ttlSeconds: 299 }], 'ERR_CUSTODY_INPUT'],
      [[ctx, req, recipient, { ttlSeconds: 901 }], 'ERR_CUSTODY_INPUT'],
      [[ctx, { ...req, aid: 'XYZ' }, recipient], 'ERR_CUSTODY_INPUT'],
      [[ctx, { ...req, keyNo: 14 }, recipient], 'ERR_CUSTODY_INPUT'],
      [[ctx, req, { readerId: 'door-1', publicKey: { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' } }], 'ERR_CUSTODY_INPUT'],
      [[ctx, { ...req, master: 'no.such.master' }, recipient], 'ERR_CUSTODY_UNKNOWN_KEY'],
      [[ctx, { ...req, master: 'kek.access' }, recipient], 'ERR_CUSTODY_WRONG_PURPOSE'],
      [[ctx, { ...req, masterVersion: 2 }, recipient], 'ERR_CUSTODY_VERSION'],
    ];
    for (const [args, code] of bad) await expect(b.custody.sealMaster(...args), code).rejects.toMatchObject({ code });
    expect(b.audit.events.filter((e) => e.op === 'seal_master').map((e) => [e.outcome, e.code])).toEqual(bad.map(([, code]) => ['error', code]));
    // the audit sink refuses: nothing is released
    b.audit.failing = true;
    await expect(b.custody.sealMaster(ctx, req, recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_AUDIT' });
  });

  it('a sealed vault releases nothing', async () => {
    const b = await track(await embeddedFactory.make());
    await b.custody.createKey(ctx, req.master, { purpose: 'diversify', alg: 'aes128' });
    await b.seal!();
    await expect(b.custody.sealMaster(ctx, req, recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_SEALED' });
  });
});

describe('sealMaster: Vault Transit (local Transit emulation)', () => {
  async function transit(exportableMasters?: boolean) {
    const server = await new FakeTransit().start();
    const engine = await VaultTransitEngine.open({ addr: server.addr, auth: { roleId: 'role-1', secretId: 'secret-1' }, masterStore: new MemoryVaultStore(), ...(exportableMasters !== undefined ? { exportableMasters } : {}) });
    const audit = new MemoryAuditSink();
    const custody = engine.custody(audit);
    return track({ custody, audit, cleanup: async () => (await custody.close(), await server.stop()) });
  }

  it('not exportable by default: ERR_CUSTODY_NOT_EXTRACTABLE, audited as an error', async () => {
    const b = await transit();
    await b.custody.createKey(ctx, req.master, { purpose: 'diversify', alg: 'aes128' });
    await expect(b.custody.sealMaster(ctx, req, recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_NOT_EXTRACTABLE' });
    expect(b.audit.events.filter((e) => e.op === 'seal_master').map((e) => [e.outcome, e.code])).toEqual([['error', 'ERR_CUSTODY_NOT_EXTRACTABLE']]);
  });

  it('with exportableMasters: sealed to the reader, same derivation as custody (also after a rotation)', async () => {
    const b = await transit(true);
    await roundTrip(b.custody, b.audit, 'aes128');
    await b.custody.rotateKey(ctx, req.master);
    const s2 = await b.custody.sealMaster(ctx, req, recipient);
    expect(s2.masterVersion).toBe(2);
    const { material } = await unsealMaster(s2, reader.privateKey, 'door-1', expectFor);
    const theirs = await b.custody.exportForCard(ctx, { kind: 'diversified', master: req.master, masterVersion: 2, input, binding: { ...binding, version: 2 } });
    expect(Buffer.from(new Diversifier('aes128', material).derive(input)).toString('hex')).toBe(Buffer.from(theirs).toString('hex'));
  });
});

const hsm = requireComponent('SoftHSM2', await pkcs11Factory.available());

describe.skipIf(!hsm)('sealMaster: PKCS#11 (SoftHSM2)', () => {
  it('refuses: masters are non-extractable by design (typed error, audited)', async () => {
    const b = await track(await pkcs11Factory.make());
    await b.custody.createKey(ctx, req.master, { purpose: 'diversify', alg: 'aes128' });
    await expect(b.custody.sealMaster(ctx, req, recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_NOT_EXTRACTABLE' });
    expect(b.audit.events.filter((e) => e.op === 'seal_master').map((e) => [e.outcome, e.code])).toEqual([['error', 'ERR_CUSTODY_NOT_EXTRACTABLE']]);
  });
});

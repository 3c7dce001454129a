// The domain repositories, run against SQLite and a real PostgreSQL (E's storage-backends helper).
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CARD_STATES,
  CARD_TRANSITIONS,
  CardRepository,
  DomainError,
  READER_STATES,
  READER_TRANSITIONS,
  ReaderRepository,
  SqlCaKeyStore,
  SqlEnrolmentCodeStore,
  SqlRevocationList,
  TenantRepository,
  checkCardTransition,
  checkReaderTransition,
  completeReaderEnrolment,
  createReaderEnrolmentCode,
} from '../../src/cms/domain/index.js';
import { CertificateAuthority, aesGcmProtector, createEnrolmentCode, enrolReader, verifyReaderCertificate } from '../../src/cms/pki/index.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import type { DatabaseHandle } from '../../src/cms/storage/index.js';
import { type Backend, postgresAvailable, postgresBackend, sqliteBackend } from './storage-backends.js';

const CAMPUS = parseLayout(readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8'), 'campus.yaml');
const FIX = new URL('./layout-fixtures/', import.meta.url).pathname;
const pgOk = await postgresAvailable();

async function expectDomain(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toBeInstanceOf(DomainError);
  await expect(p).rejects.toMatchObject({ code });
}

describe('lifecycles (pure)', () => {
  it('card: exactly the transitions of the table are allowed', () => {
    for (const from of CARD_STATES)
      for (const to of CARD_STATES) {
        const ok = CARD_TRANSITIONS[from].includes(to);
        if (ok) expect(() => checkCardTransition(from, to)).not.toThrow();
        else expect(() => checkCardTransition(from, to)).toThrow(expect.objectContaining({ code: 'ERR_DOMAIN_TRANSITION' }));
      }
    expect(CARD_TRANSITIONS.destroyed).toEqual([]);
    expect(CARD_TRANSITIONS.blank).not.toContain('active');
    expect(CARD_TRANSITIONS.revoked).not.toContain('active');
  });
  it('reader: revoked is terminal', () => {
    for (const from of READER_STATES)
      for (const to of READER_STATES) {
        const ok = READER_TRANSITIONS[from].includes(to);
        expect(ok ? undefined : 'throws').toBe((() => { try { checkReaderTransition(from, to); return undefined; } catch { return 'throws'; } })());
      }
    expect(READER_TRANSITIONS.revoked).toEqual([]);
  });
});

for (const make of [sqliteBackend, postgresBackend]) {
  const kind = make === sqliteBackend ? 'sqlite' : 'postgres';
  describe.skipIf(kind === 'postgres' && !pgOk)(`domain on ${kind}`, () => {
    let backend: Backend;
    let h: DatabaseHandle;
    let tenants: TenantRepository;
    let cards: CardRepository;
    let readers: ReaderRepository;
    beforeAll(async () => {
      backend = make();
      h = await backend.open();
      tenants = new TenantRepository(h.db);
      cards = new CardRepository(h.db);
      readers = new ReaderRepository(h.db);
    }, 60_000);
    afterAll(async () => {
      await backend?.cleanup();
    }, 60_000);

    it('registers the campus layout: tenants own their AIDs; re-registering is a no-op', async () => {
      const r = await tenants.registerLayout(CAMPUS, 1000);
      expect(r.tenants).toEqual(['access', 'cafeteria', 'library', 'transit']);
      expect(r.applications).toEqual(['A1C001', 'CAFE01', '11B001', '7A0001']);
      expect((await tenants.applications('cafeteria')).map((a) => a.aid)).toEqual(['CAFE01']);
      const app = await tenants.application('cafe01');
      expect(app).toMatchObject({ tenantId: 'cafeteria', keyCount: 3, keyType: 'aes', layoutName: 'campus' });
      expect(app!.definition.keys.map((k) => k.role)).toEqual(['amk', 'debit', 'credit']);
      expect(await tenants.registerLayout(CAMPUS)).toEqual({ tenants: [], applications: [] });
    });

    it('two processes registering the same new layout at once: one writes, the other sees it', async () => {
      const text = readFileSync(FIX + 'clean.yaml', 'utf8').replace(/5A000/g, '6B000').replace('id: shop', 'id: shop2').replace('id: gym', 'id: gym2');
      const layout = parseLayout(text);
      // PostgreSQL: a second pool, as a second CMS process would have. SQLite is one process with
      // one connection (better-sqlite3 is synchronous: two handles in one thread would block each other).
      const other = kind === 'postgres' ? await backend.open() : h;
      const [a, b] = await Promise.all([new TenantRepository(h.db).registerLayout(layout), new TenantRepository(other.db).registerLayout(layout)]);
      expect([a.applications.length, b.applications.length].sort()).toEqual([0, 2]);
      expect((await tenants.applications('shop2')).map((x) => x.aid)).toEqual(['6B0001']);
    });

    it('a layout with isolation findings is refused with the rule ids, nothing written', async () => {
      const bad = parseLayout(readFileSync(FIX + 'ISO002-shared-master.yaml', 'utf8'));
      const p = tenants.registerLayout(bad);
      await expectDomain(p, 'ERR_DOMAIN_LAYOUT_FINDINGS');
      await p.catch((e: DomainError) => expect(e.details?.rules).toEqual(['ISO002']));
      expect(await tenants.tenant('shop')).toBeUndefined();
    });

    it('an AID registered differently is a conflict and the whole layout is rolled back', async () => {
      const text = readFileSync(FIX + 'clean.yaml', 'utf8').replace('"5A0002"', '"CAFE01"');
      const p = tenants.registerLayout(parseLayout(text));
      await expectDomain(p, 'ERR_DOMAIN_CONFLICT');
      expect(await tenants.tenant('shop')).toBeUndefined();
      expect(await tenants.application('5A0001')).toBeUndefined();
    });

    it('tenant creation validates and refuses duplicates', async () => {
      await tenants.createTenant('city', 'City');
      await expectDomain(tenants.createTenant('city', 'Again'), 'ERR_DOMAIN_CONFLICT');
      await expectDomain(tenants.createTenant('Bad Id', 'x'), 'ERR_DOMAIN_BAD_INPUT');
    });

    it("the issuer's pseudo-tenant id is reserved: no tenant (created or from a layout) may take it, nothing written", async () => {
      // the CMK's custody bindings and audit entries carry tenant 'issuer': a tenant of that name
      // would see them in its audit view
      await expectDomain(tenants.createTenant('issuer', 'Issuer'), 'ERR_DOMAIN_BAD_INPUT');
      const text = readFileSync(FIX + 'clean.yaml', 'utf8').replace(/5A000/g, '6C000').replace('id: shop', 'id: issuer').replace('id: gym', 'id: gym3');
      await expectDomain(tenants.registerLayout(parseLayout(text)), 'ERR_DOMAIN_BAD_INPUT');
      expect(await tenants.tenant('issuer')).toBeUndefined();
      expect(await tenants.tenant('gym3')).toBeUndefined();
      expect(await tenants.application('6C0001')).toBeUndefined();
    });

    it('card lifecycle: only allowed transitions, compare-and-set, typed errors', async () => {
      const uid = '04A1B2C3D4E5F6';
      const c = await cards.createBlank(uid.toLowerCase(), { randomUid: true, now: 5 });
      expect(c).toMatchObject({ uid, state: 'blank', randomUid: true, piccKeyVersion: 0 });
      await expectDomain(cards.createBlank(uid), 'ERR_DOMAIN_CONFLICT');
      await expectDomain(cards.transition(uid, 'active'), 'ERR_DOMAIN_TRANSITION');
      expect((await cards.require(uid)).state).toBe('blank');
      expect((await cards.transition(uid, 'issued', { piccKeyVersion: 1 })).piccKeyVersion).toBe(1);
      await cards.transition(uid, 'active');
      await cards.transition(uid, 'suspended');
      await cards.transition(uid, 'active');
      await cards.transition(uid, 'revoked');
      await expectDomain(cards.transition(uid, 'active'), 'ERR_DOMAIN_TRANSITION');
      await cards.transition(uid, 'destroyed');
      expect(await cards.require(uid)).toMatchObject({ state: 'destroyed', piccKeyVersion: 1 });
      await expectDomain(cards.require('04000000000001'), 'ERR_DOMAIN_NOT_FOUND');
      await expectDomain(cards.createBlank('xyz'), 'ERR_DOMAIN_BAD_INPUT');
    });

    it('records CardUID <-> AID <-> key versions in one transaction', async () => {
      const uid = '04112233445566';
      await cards.createBlank(uid);
      await expectDomain(cards.recordInstallation(uid, 'CAFE01', [{ keyNo: 0, version: 1 }, { keyNo: 1, version: 1 }, { keyNo: 2, version: 1 }]), 'ERR_DOMAIN_STATE');
      await cards.transition(uid, 'issued', { piccKeyVersion: 1 });
      // incomplete key list: refused, nothing written
      await expectDomain(cards.recordInstallation(uid, 'CAFE01', [{ keyNo: 0, version: 1 }, { keyNo: 1, version: 1 }]), 'ERR_DOMAIN_BAD_INPUT');
      await expectDomain(cards.recordInstallation(uid, 'CAFE01', [{ keyNo: 0, version: 1 }, { keyNo: 0, version: 1 }, { keyNo: 2, version: 1 }]), 'ERR_DOMAIN_BAD_INPUT');
      await expectDomain(cards.recordInstallation(uid, 'CAFE01', [{ keyNo: 0, version: 256 }, { keyNo: 1, version: 1 }, { keyNo: 2, version: 1 }]), 'ERR_DOMAIN_BAD_INPUT');
      await expectDomain(cards.recordInstallation(uid, 'ABCDEF', [{ keyNo: 0, version: 1 }]), 'ERR_DOMAIN_NOT_FOUND');
      expect(await cards.applications(uid)).toEqual([]);
      await cards.recordInstallation(uid, 'CAFE01', [{ keyNo: 2, version: 1 }, { keyNo: 0, version: 3 }, { keyNo: 1, version: 1 }], 77);
      await cards.recordInstallation(uid, '7A0001', [{ keyNo: 0, version: 1 }, { keyNo: 1, version: 2 }], 78);
      await expectDomain(cards.recordInstallation(uid, '7A0001', [{ keyNo: 0, version: 1 }, { keyNo: 1, version: 2 }]), 'ERR_DOMAIN_CONFLICT');
      expect(await cards.applications(uid)).toEqual([
        { aid: '7A0001', tenantId: 'transit', installedAt: 78, keys: [{ keyNo: 0, version: 1 }, { keyNo: 1, version: 2 }] },
        { aid: 'CAFE01', tenantId: 'cafeteria', installedAt: 77, keys: [{ keyNo: 0, version: 3 }, { keyNo: 1, version: 1 }, { keyNo: 2, version: 1 }] },
      ]);
      await cards.setKeyVersion(uid, 'CAFE01', 1, 2);
      expect(await cards.keyVersions(uid, 'CAFE01')).toEqual([{ keyNo: 0, version: 3 }, { keyNo: 1, version: 2 }, { keyNo: 2, version: 1 }]);
      expect(await cards.cardsWithKeyVersion('CAFE01', 1, 2)).toEqual([uid]);
      expect(await cards.cardsWithKeyVersion('CAFE01', 1, 1)).toEqual([]);
      await expectDomain(cards.setKeyVersion(uid, 'A1C001', 1, 2), 'ERR_DOMAIN_NOT_FOUND');
      await cards.removeApplication(uid, '7A0001');
      expect((await cards.applications(uid)).map((a) => a.aid)).toEqual(['CAFE01']);
      await expectDomain(cards.removeApplication(uid, '7A0001'), 'ERR_DOMAIN_NOT_FOUND');
    });

    it('readers: roles grant (tenant, AID, keyNo, operations); authorise checks state and role', async () => {
      await readers.register('till-1', 'Cafeteria till 1');
      await expectDomain(readers.register('till-1', 'again'), 'ERR_DOMAIN_CONFLICT');
      await readers.grantRole({ readerId: 'till-1', tenantId: 'cafeteria', aid: 'CAFE01', keyNo: 1, operations: ['deliver', 'deliver'] });
      await expectDomain(readers.grantRole({ readerId: 'till-1', tenantId: 'access', aid: 'CAFE01', keyNo: 1, operations: ['deliver'] }), 'ERR_DOMAIN_CONFLICT');
      await expectDomain(readers.grantRole({ readerId: 'till-1', tenantId: 'cafeteria', aid: 'CAFE01', keyNo: 3, operations: ['deliver'] }), 'ERR_DOMAIN_BAD_INPUT');
      await expectDomain(readers.grantRole({ readerId: 'till-1', tenantId: 'cafeteria', aid: 'CAFE01', keyNo: 1, operations: ['fly'] as never }), 'ERR_DOMAIN_BAD_INPUT');
      expect(await readers.roles('till-1')).toEqual([{ readerId: 'till-1', tenantId: 'cafeteria', aid: 'CAFE01', keyNo: 1, operations: ['deliver'] }]);
      expect(await readers.authorise('till-1', { aid: 'CAFE01', keyNo: 1, operation: 'deliver' })).toMatchObject({ tenantId: 'cafeteria' });
      await expectDomain(readers.authorise('till-1', { aid: 'CAFE01', keyNo: 2, operation: 'deliver' }), 'ERR_DOMAIN_FORBIDDEN');
      await expectDomain(readers.authorise('till-1', { aid: 'A1C001', keyNo: 1, operation: 'deliver' }), 'ERR_DOMAIN_FORBIDDEN');
      await expectDomain(readers.authorise('till-1', { aid: 'CAFE01', keyNo: 1, operation: 'rotate' }), 'ERR_DOMAIN_FORBIDDEN');
      await readers.setState('till-1', 'suspended');
      await expectDomain(readers.authorise('till-1', { aid: 'CAFE01', keyNo: 1, operation: 'deliver' }), 'ERR_DOMAIN_FORBIDDEN');
      await readers.setState('till-1', 'active');
      expect(await readers.revokeRole('till-1', 'CAFE01', 1)).toBe(true);
      await expectDomain(readers.authorise('till-1', { aid: 'CAFE01', keyNo: 1, operation: 'deliver' }), 'ERR_DOMAIN_FORBIDDEN');
      await expectDomain(readers.authorise('nobody', { aid: 'CAFE01', keyNo: 1, operation: 'deliver' }), 'ERR_DOMAIN_FORBIDDEN');
    });

    it('enrolment over SQL stores: CA shared by processes, code single-use under a race, revocation on reader revoke', async () => {
      const protector = aesGcmProtector(randomBytes(32));
      const second = await backend.open();
      const [ca1, ca2] = await Promise.all([
        CertificateAuthority.openOrCreate(new SqlCaKeyStore(h.db), protector),
        CertificateAuthority.openOrCreate(new SqlCaKeyStore(second.db), protector),
      ]);
      expect(ca1.certificatePem).toBe(ca2.certificatePem);
      expect(JSON.stringify(await h.db.selectFrom('cms_keys').selectAll().execute())).not.toMatch(/PRIVATE KEY/);

      await readers.register('door-9', 'North door');
      const { code } = await createEnrolmentCode(new SqlEnrolmentCodeStore(h.db), { readerId: 'door-9', createdBy: 'op' });
      const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const csr = (await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } })).toString('pem');
      const results = await Promise.allSettled([
        enrolReader(ca1, new SqlEnrolmentCodeStore(h.db), { csrPem: csr, code }),
        enrolReader(ca2, new SqlEnrolmentCodeStore(second.db), { csrPem: csr, code }),
      ]);
      const ok = results.filter((r) => r.status === 'fulfilled');
      expect(ok).toHaveLength(1);
      expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'ERR_PKI_ENROLMENT_CODE' } });
      const enrolled = (ok[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof enrolReader>>>).value;
      await readers.attachCertificate('door-9', { serial: enrolled.serial, pem: enrolled.certificatePem, notAfter: enrolled.notAfter.getTime() });
      expect(await readers.certificatePem('door-9')).toBe(enrolled.certificatePem);
      expect(JSON.stringify(await h.db.selectFrom('enrolment_codes').selectAll().execute())).not.toContain(code);

      const revocations = new SqlRevocationList(h.db);
      const checks = { revocations, readerState: (id: string) => readers.state(id) };
      expect((await verifyReaderCertificate(ca1, enrolled.certificatePem, checks)).readerId).toBe('door-9');
      await readers.setState('door-9', 'revoked');
      await expect(verifyReaderCertificate(ca1, enrolled.certificatePem, checks)).rejects.toMatchObject({ code: 'ERR_PKI_CERT_REVOKED' });
      expect((await revocations.list()).map((e) => e.reason)).toContain('reader revoked');
      await expectDomain(readers.setState('door-9', 'active'), 'ERR_DOMAIN_TRANSITION');
      await expectDomain(readers.attachCertificate('door-9', { serial: 'ab', pem: 'x', notAfter: 0 }), 'ERR_DOMAIN_STATE');
    });

    it('enrolment service: codes only for registered, non-revoked readers; certificate attached and the old one revoked', async () => {
      const ca = await CertificateAuthority.openOrCreate(new SqlCaKeyStore(h.db), aesGcmProtector(randomBytes(32))).catch(() => undefined);
      // the CA of this database was created by the previous test with another protector key: open must refuse it
      expect(ca).toBeUndefined();
      const protector = aesGcmProtector(randomBytes(32));
      await h.db.deleteFrom('cms_keys').execute();
      const ca2 = await CertificateAuthority.openOrCreate(new SqlCaKeyStore(h.db), protector);
      await expectDomain(createReaderEnrolmentCode(h.db, { readerId: 'ghost', createdBy: 'op' }), 'ERR_DOMAIN_NOT_FOUND');
      await expectDomain(createReaderEnrolmentCode(h.db, { readerId: 'door-9', createdBy: 'op' }), 'ERR_DOMAIN_STATE');
      await readers.register('kiosk-2', 'Top-up kiosk');
      const csr = async () => {
        const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
        return (await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } })).toString('pem');
      };
      const first = await completeReaderEnrolment(h.db, ca2, { csrPem: await csr(), code: (await createReaderEnrolmentCode(h.db, { readerId: 'kiosk-2', createdBy: 'op' })).code });
      const second = await completeReaderEnrolment(h.db, ca2, { csrPem: await csr(), code: (await createReaderEnrolmentCode(h.db, { readerId: 'kiosk-2', createdBy: 'op' })).code });
      expect((await readers.require('kiosk-2')).certSerial).toBe(second.serial.toLowerCase());
      const revocations = new SqlRevocationList(h.db);
      expect(await revocations.isRevoked(first.serial)).toBe(true);
      expect(await revocations.isRevoked(second.serial)).toBe(false);
      const checks = { revocations, readerState: (id: string) => readers.state(id) };
      await expect(verifyReaderCertificate(ca2, first.certificatePem, checks)).rejects.toMatchObject({ code: 'ERR_PKI_CERT_REVOKED' });
      expect((await verifyReaderCertificate(ca2, second.certificatePem, checks)).readerId).toBe('kiosk-2');
    });
  });
}

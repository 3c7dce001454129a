// One conformance suite over every custody backend available in this run: embedded always,
// pkcs11 when SoftHSM2 is present (required under CI=true), vault-transit when VAULT_ADDR and
// VAULT_TOKEN are set (visible skip otherwise).
import { describe, expect, it } from 'vitest';
import { diversify, diversificationInput } from '../../src/core/crypto/an10922.js';
import { fromHex, toHex } from '../../src/core/crypto/bytes.js';
import { generateReaderKeyPair, ReaderUnsealer } from '../../src/custody/sealed.js';
import type { CallerContext, KeyBinding, KeyCustody } from '../../src/custody/types.js';
import { requireComponent } from '../helpers/system.js';
import { type BackendFactory, type BackendUnderTest, embeddedFactory } from './backends.js';
import { pkcs11Factory } from './pkcs11-factory.js';
import { fakeTransitFactory, vaultFactory } from './vault-factory.js';

const ctx: CallerContext = { actor: 'test-operator', purpose: 'conformance', correlationId: 'c-1' };
const bind: KeyBinding = { tenant: 'campus', aid: 'F00001', uid: '04A1B2C3D4E5F6', keyNo: 1, version: 1 };

// NXP AN10922 §2.2.1 AES-128 example
const AN10922 = {
  master: '00112233445566778899AABBCCDDEEFF',
  uid: '04782E21801D80',
  aid: '3042F5',
  si: '4E585020416275',
  out: 'A8DD63A3B89D54B37CA802473FDA9175',
};

/** Every error message seen, to check that none carries key bytes. */
const messages: string[] = [];

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    messages.push(String((e as Error).message));
    return (e as { code?: string }).code ?? 'no-code';
  }
  return 'resolved';
}

const reader = generateReaderKeyPair();
const recipient = { readerId: 'reader-7', publicKey: reader.publicKey };

async function unseal(c: KeyCustody, source: Parameters<KeyCustody['seal']>[1]): Promise<Uint8Array> {
  const s = await c.seal(ctx, source, recipient);
  return new ReaderUnsealer('reader-7', reader.privateKey).unseal(s, source.binding);
}

const factories: BackendFactory[] = [embeddedFactory, pkcs11Factory, vaultFactory, fakeTransitFactory];

for (const f of factories) {
  const avail = await f.available();
  const run = f.component ? requireComponent(f.component, avail) : avail.ok;
  if (!run && !f.component) process.stderr.write(`[skip] ${f.name}: ${avail.reason}\n`);
  describe.skipIf(!run)(`custody conformance: ${f.name}`, () => {
    async function withBackend(fn: (b: BackendUnderTest) => Promise<void>): Promise<void> {
      const b = await f.make();
      try {
        await fn(b);
      } finally {
        await b.cleanup();
      }
    }

    it('creates, lists and describes named keys; duplicates and unknown names are typed errors', () =>
      withBackend(async ({ custody: c, audit }) => {
        const k = await c.createKey(ctx, 'kek-campus', { purpose: 'wrap' });
        expect(k).toMatchObject({ name: 'kek-campus', purpose: 'wrap', latestVersion: 1, minDecryptionVersion: 1 });
        await c.createKey(ctx, 'm-door', { purpose: 'diversify', alg: 'aes128' });
        const names = (await c.listKeys(ctx)).map((x) => x.name);
        expect(names).toEqual(expect.arrayContaining(['kek-campus', 'm-door']));
        expect(await codeOf(c.createKey(ctx, 'kek-campus', { purpose: 'wrap' }))).toBe('ERR_CUSTODY_KEY_EXISTS');
        expect(await codeOf(c.getKey(ctx, 'nope'))).toBe('ERR_CUSTODY_UNKNOWN_KEY');
        expect(await codeOf(c.createKey(ctx, 'bad name!', { purpose: 'wrap' }))).toBe('ERR_CUSTODY_INPUT');
        expect(audit.events.some((e) => e.op === 'get_key' && e.outcome === 'error' && e.code === 'ERR_CUSTODY_UNKNOWN_KEY')).toBe(true);
        expect(audit.events.filter((e) => e.op === 'create_key' && e.outcome === 'ok')).toHaveLength(2);
      }));

    it('wraps bound to associated data and releases only sealed (or through exportForCard)', () =>
      withBackend(async ({ custody: c, audit }) => {
        await c.createKey(ctx, 'kek', { purpose: 'wrap' });
        const key = fromHex('000102030405060708090A0B0C0D0E0F');
        const w = await c.wrap(ctx, 'kek', key, bind);
        expect(w.kekVersion).toBe(1);
        expect(w.blob).not.toContain(toHex(key));
        expect(w.blob).not.toContain(toHex(key, false));
        expect(await unseal(c, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind })).toEqual(key);
        expect(await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind })).toEqual(key);
        expect(await c.verifyWrapped(ctx, 'kek', w.blob, bind)).toEqual({ kekVersion: 1 });
        // the same key wrapped twice gives different blobs
        expect((await c.wrap(ctx, 'kek', key, bind)).blob).not.toBe(w.blob);
        const ev = audit.events.find((e) => e.op === 'seal' && e.outcome === 'ok');
        expect(ev).toMatchObject({ actor: 'test-operator', purpose: 'conformance', correlationId: 'c-1', key: 'kek', keyVersion: 1, recipient: 'reader-7', binding: bind });
        expect(audit.events.some((e) => e.op === 'export_for_card' && e.outcome === 'ok')).toBe(true);
        const all = JSON.stringify(audit.events);
        expect(all).not.toContain(toHex(key));
        expect(all).not.toContain(toHex(key, false));
      }));

    it('refuses wrong associated data, a tampered blob, an unknown KEK and a wrong version, and audits each attempt', () =>
      withBackend(async ({ custody: c, audit }) => {
        await c.createKey(ctx, 'kek', { purpose: 'wrap' });
        await c.createKey(ctx, 'kek2', { purpose: 'wrap' });
        const w = await c.wrap(ctx, 'kek', fromHex('00112233445566778899AABBCCDDEEFF'), bind);
        const src = (blob: string, binding = bind, kek = 'kek') => ({ kind: 'wrapped' as const, kek, blob, binding });
        for (const other of [{ ...bind, uid: '04A1B2C3D4E5F7' }, { ...bind, aid: 'F00002' }, { ...bind, keyNo: 2 }, { ...bind, version: 2 }, { ...bind, tenant: 'bus' }])
          expect(await codeOf(c.exportForCard(ctx, src(w.blob, other)))).toBe('ERR_CUSTODY_AAD_MISMATCH');
        const parts = w.blob.split('.');
        const payload = Buffer.from(parts[4]!, 'base64url');
        payload[payload.length - 3]! ^= 0x40;
        const tampered = [...parts.slice(0, 4), payload.toString('base64url')].join('.');
        expect(await codeOf(c.exportForCard(ctx, src(tampered)))).toBe('ERR_CUSTODY_TAMPERED');
        expect(await codeOf(c.seal(ctx, src(tampered), recipient))).toBe('ERR_CUSTODY_TAMPERED');
        expect(await codeOf(c.exportForCard(ctx, src('garbage')))).toBe('ERR_CUSTODY_TAMPERED');
        expect(await codeOf(c.exportForCard(ctx, src(w.blob, bind, 'kek2')))).toBe('ERR_CUSTODY_TAMPERED');
        expect(await codeOf(c.exportForCard(ctx, src(w.blob, bind, 'missing')))).toBe('ERR_CUSTODY_UNKNOWN_KEY');
        const v9 = w.blob.replace(/^dcms1\.([a-z0-9]+)\.1\./, 'dcms1.$1.9.');
        expect(await codeOf(c.exportForCard(ctx, src(v9)))).toBe('ERR_CUSTODY_VERSION');
        const errors = audit.events.filter((e) => e.op === 'export_for_card' && e.outcome === 'error').map((e) => e.code);
        expect(errors).toEqual(expect.arrayContaining(['ERR_CUSTODY_AAD_MISMATCH', 'ERR_CUSTODY_TAMPERED', 'ERR_CUSTODY_UNKNOWN_KEY', 'ERR_CUSTODY_VERSION']));
        // nothing changed: the original still opens
        expect(await c.verifyWrapped(ctx, 'kek', w.blob, bind)).toEqual({ kekVersion: 1 });
        // no error message carries key bytes
        expect(messages.join('\n')).not.toMatch(/00112233445566778899aabbccddeeff/i);
        expect((await c.getKey(ctx, 'kek')).latestVersion).toBe(1);
      }));

    it('rotates, rewraps to the latest version without releasing plaintext, and enforces minimum versions', () =>
      withBackend(async ({ custody: c }) => {
        await c.createKey(ctx, 'kek', { purpose: 'wrap' });
        const key = fromHex('A0A1A2A3A4A5A6A7A8A9AAABACADAEAF');
        const w1 = await c.wrap(ctx, 'kek', key, bind);
        const r = await c.rotateKey(ctx, 'kek');
        expect(r.latestVersion).toBe(2);
        expect((await c.listVersions(ctx, 'kek')).map((v) => v.version)).toEqual([1, 2]);
        const w2 = await c.wrap(ctx, 'kek', key, bind);
        expect(w2.kekVersion).toBe(2);
        const rw = await c.rewrap(ctx, 'kek', w1.blob, bind);
        expect(rw.kekVersion).toBe(2);
        expect(await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: rw.blob, binding: bind })).toEqual(key);
        expect(await codeOf(c.rewrap(ctx, 'kek', w1.blob, { ...bind, keyNo: 3 }))).toBe('ERR_CUSTODY_AAD_MISMATCH');
        const m = await c.setMinVersions(ctx, 'kek', { minDecryptionVersion: 2 });
        expect(m.minDecryptionVersion).toBe(2);
        expect(await codeOf(c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w1.blob, binding: bind }))).toBe('ERR_CUSTODY_VERSION');
        expect(await codeOf(c.setMinVersions(ctx, 'kek', { minDecryptionVersion: 5 }))).toBe('ERR_CUSTODY_VERSION');
        expect((await c.getKey(ctx, 'kek')).minDecryptionVersion).toBe(2);
        expect(await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w2.blob, binding: bind })).toEqual(key);
      }));

    it('disables and destroys versions (never the latest)', () =>
      withBackend(async ({ custody: c }) => {
        await c.createKey(ctx, 'kek', { purpose: 'wrap' });
        const key = fromHex('B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF');
        const w1 = await c.wrap(ctx, 'kek', key, bind);
        await c.rotateKey(ctx, 'kek');
        await c.rotateKey(ctx, 'kek');
        const w2 = await c.wrap(ctx, 'kek', key, bind);
        expect(await codeOf(c.disableVersion(ctx, 'kek', 3))).toBe('ERR_CUSTODY_VERSION');
        expect(await codeOf(c.destroyVersion(ctx, 'kek', 3))).toBe('ERR_CUSTODY_VERSION');
        expect(await codeOf(c.disableVersion(ctx, 'kek', 7))).toBe('ERR_CUSTODY_VERSION');
        const d = await c.disableVersion(ctx, 'kek', 1);
        expect(d.versions.find((v) => v.version === 1)?.state).not.toBe('active');
        expect(await codeOf(c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w1.blob, binding: bind }))).toBe('ERR_CUSTODY_VERSION');
        const x = await c.destroyVersion(ctx, 'kek', 1);
        expect(x.versions.find((v) => v.version === 1)?.state ?? 'destroyed').toBe('destroyed');
        expect(await codeOf(c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w1.blob, binding: bind }))).toBe('ERR_CUSTODY_VERSION');
        expect(await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w2.blob, binding: bind })).toEqual(key);
      }));

    it('generates random card keys that exist only wrapped', () =>
      withBackend(async ({ custody: c }) => {
        await c.createKey(ctx, 'kek', { purpose: 'wrap' });
        const a = await c.generateKey(ctx, 'kek', 'aes128', bind);
        const b = await c.generateKey(ctx, 'kek', 'aes128', bind);
        const t = await c.generateKey(ctx, 'kek', '3k3des', bind);
        const ka = await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: a.blob, binding: bind });
        const kb = await unseal(c, { kind: 'wrapped', kek: 'kek', blob: b.blob, binding: bind });
        expect(ka).toHaveLength(16);
        expect(kb).toHaveLength(16);
        expect(ka).not.toEqual(kb);
        expect(await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: t.blob, binding: bind })).toHaveLength(24);
        expect(await codeOf(c.generateKey(ctx, 'kek', 'aes512' as never, bind))).toBe('ERR_CUSTODY_INPUT');
      }));

    it('generates a batch of random card keys in one call, all or nothing, audited as one event per (tenant, AID) naming its bindings', () =>
      withBackend(async ({ custody: c, audit }) => {
        await c.createKey(ctx, 'kek-issuer', { purpose: 'wrap' });
        await c.createKey(ctx, 'kek', { purpose: 'wrap' });
        await c.rotateKey(ctx, 'kek'); // the batch wraps under each KEK's latest version
        const cmk: KeyBinding = { tenant: 'issuer', aid: '000000', uid: bind.uid, keyNo: 0, version: 1 };
        const items = [
          { kek: 'kek-issuer', alg: 'aes128' as const, binding: cmk },
          { kek: 'kek', alg: 'aes128' as const, binding: bind },
          { kek: 'kek', alg: '3k3des' as const, binding: { ...bind, keyNo: 2 } },
        ];
        audit.clear();
        const out = await c.generateKeys(ctx, items);
        expect(out.map((w) => [w.kek, w.kekVersion])).toEqual([
          ['kek-issuer', 1],
          ['kek', 2],
          ['kek', 2],
        ]);
        const keys = await Promise.all(out.map((w, i) => c.exportForCard(ctx, { kind: 'wrapped', kek: items[i]!.kek, blob: w.blob, binding: items[i]!.binding })));
        expect(keys.map((k) => k.length)).toEqual([16, 16, 24]);
        expect(new Set(keys.map((k) => toHex(k))).size).toBe(3);
        // bound: a blob opens only under its own binding
        expect(await codeOf(c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: out[1]!.blob, binding: { ...bind, keyNo: 2 } }))).toBe('ERR_CUSTODY_AAD_MISMATCH');
        // one event per (tenant, AID): the issuer's CMK, the tenant's two keys — each names only its own
        const ev = audit.events.filter((e) => e.op === 'generate_batch');
        expect(ev.map((e) => e.outcome)).toEqual(['ok', 'ok']);
        expect(ev.map((e) => e.seals)).toEqual([
          [{ key: 'kek-issuer', keyVersion: 1, binding: cmk }],
          [
            { key: 'kek', keyVersion: 2, binding: bind },
            { key: 'kek', keyVersion: 2, binding: { ...bind, keyNo: 2 } },
          ],
        ]);
        expect(ev.map((e) => e.recipient)).toEqual([undefined, undefined]);
        expect(audit.events.filter((e) => e.op === 'generate_key')).toHaveLength(0);
        expect(JSON.stringify(audit.events)).not.toContain(toHex(keys[0]!));
        // all or nothing: one unknown KEK, one bad item or a refusing sink returns nothing
        audit.clear();
        expect(await codeOf(c.generateKeys(ctx, [items[0]!, { ...items[1]!, kek: 'kek-missing' }]))).toBe('ERR_CUSTODY_UNKNOWN_KEY');
        expect(await codeOf(c.generateKeys(ctx, [items[0]!, { ...items[1]!, alg: 'aes512' as never }]))).toBe('ERR_CUSTODY_INPUT');
        expect(await codeOf(c.generateKeys(ctx, [items[0]!, { ...items[1]!, binding: { ...bind, aid: 'F0001' } }]))).toBe('ERR_CUSTODY_INPUT');
        expect(await codeOf(c.generateKeys(ctx, []))).toBe('ERR_CUSTODY_INPUT');
        expect(await codeOf(c.generateKeys(ctx, new Array(65).fill(items[1]!)))).toBe('ERR_CUSTODY_INPUT');
        expect(await codeOf(c.generateKeys({ actor: '', purpose: 'x', correlationId: 'y' }, items))).toBe('ERR_CUSTODY_INPUT');
        audit.failing = true;
        expect(await codeOf(c.generateKeys(ctx, items))).toBe('ERR_CUSTODY_AUDIT');
        audit.failing = false;
        const errs = audit.events.filter((e) => e.op === 'generate_batch');
        // per call an error event per (tenant, AID) asked for (the empty and the oversize call: one)
        expect(errs.map((e) => [e.outcome, e.code])).toEqual([
          ['error', 'ERR_CUSTODY_UNKNOWN_KEY'],
          ['error', 'ERR_CUSTODY_UNKNOWN_KEY'],
          ...new Array(6).fill(['error', 'ERR_CUSTODY_INPUT']),
        ]);
        expect(errs.slice(0, 2).map((e) => e.seals?.map((x) => x.binding))).toEqual([[cmk], [bind]]);
      }));

    it('diversifies per AN10922 inside the backend (NXP vector) and releases the card key only sealed', () =>
      withBackend(async ({ custody: c }) => {
        const input = diversificationInput(fromHex(AN10922.uid), fromHex(AN10922.aid), fromHex(AN10922.si));
        await c.importKey(ctx, 'm-nxp', { purpose: 'diversify', alg: 'aes128' }, fromHex(AN10922.master));
        const b = { ...bind, uid: AN10922.uid, aid: AN10922.aid };
        const src = { kind: 'diversified' as const, master: 'm-nxp', input, binding: b };
        expect(toHex(await unseal(c, src))).toBe(AN10922.out);
        expect(toHex(await c.exportForCard(ctx, src))).toBe(AN10922.out);
        // short inputs (the padded case) and a full 31-byte input match the core implementation
        for (const len of [1, 7, 15, 16, 30, 31]) {
          const inp = new Uint8Array(len).map((_, i) => i * 7 + len);
          expect(toHex(await c.exportForCard(ctx, { ...src, input: inp }))).toBe(toHex(diversify('aes128', fromHex(AN10922.master), inp)));
        }
        // random masters: deterministic per input and version, different across inputs and versions
        await c.createKey(ctx, 'm', { purpose: 'diversify', alg: 'aes128' });
        const s1 = { kind: 'diversified' as const, master: 'm', input: fromHex('04A1B2C3D4E5F6F00001'), binding: bind };
        const k1 = await c.exportForCard(ctx, s1);
        expect(await c.exportForCard(ctx, s1)).toEqual(k1);
        expect(await c.exportForCard(ctx, { ...s1, input: fromHex('04A1B2C3D4E5F7F00001') })).not.toEqual(k1);
        await c.rotateKey(ctx, 'm');
        const k2 = await c.exportForCard(ctx, s1);
        expect(k2).not.toEqual(k1);
        expect(await c.exportForCard(ctx, { ...s1, masterVersion: 1 })).toEqual(k1);
        await c.setMinVersions(ctx, 'm', { minDecryptionVersion: 2 });
        expect(await codeOf(c.exportForCard(ctx, { ...s1, masterVersion: 1 }))).toBe('ERR_CUSTODY_VERSION');
        expect(await codeOf(c.exportForCard(ctx, { ...s1, input: new Uint8Array(32) }))).toBe('ERR_CUSTODY_INPUT');
        // purpose is enforced
        await c.createKey(ctx, 'kek', { purpose: 'wrap' });
        expect(await codeOf(c.exportForCard(ctx, { ...s1, master: 'kek' }))).toBe('ERR_CUSTODY_WRONG_PURPOSE');
        expect(await codeOf(c.wrap(ctx, 'm', new Uint8Array(16), bind))).toBe('ERR_CUSTODY_WRONG_PURPOSE');
      }));

    it('diversifies 2K3DES and 3K3DES masters like the core implementation', () =>
      withBackend(async ({ custody: c }) => {
        const m2 = fromHex('00112233445566778899AABBCCDDEEFF');
        const m3 = fromHex('00112233445566778899AABBCCDDEEFF0102030405060708');
        const input = fromHex('04782E21801D803042F54E585020416275').subarray(0, 15);
        await c.importKey(ctx, 'm2', { purpose: 'diversify', alg: '2k3des' }, m2);
        await c.importKey(ctx, 'm3', { purpose: 'diversify', alg: '3k3des' }, m3);
        for (const inp of [input, input.subarray(0, 7)]) {
          expect(toHex(await c.exportForCard(ctx, { kind: 'diversified', master: 'm2', input: inp, binding: bind }))).toBe(toHex(diversify('2k3des', m2, inp)));
          expect(toHex(await c.exportForCard(ctx, { kind: 'diversified', master: 'm3', input: inp, binding: bind }))).toBe(toHex(diversify('3k3des', m3, inp)));
        }
      }));

    it('fails closed when the audit sink refuses: nothing is released or changed', () =>
      withBackend(async ({ custody: c, audit }) => {
        await c.createKey(ctx, 'kek', { purpose: 'wrap' });
        const w = await c.generateKey(ctx, 'kek', 'aes128', bind);
        audit.failing = true;
        expect(await codeOf(c.seal(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind }, recipient))).toBe('ERR_CUSTODY_AUDIT');
        expect(await codeOf(c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind }))).toBe('ERR_CUSTODY_AUDIT');
        expect(await codeOf(c.createKey(ctx, 'kek-x', { purpose: 'wrap' }))).toBe('ERR_CUSTODY_AUDIT');
        expect(await codeOf(c.rotateKey(ctx, 'kek'))).toBe('ERR_CUSTODY_AUDIT');
        audit.failing = false;
        expect(await codeOf(c.getKey(ctx, 'kek-x'))).toBe('ERR_CUSTODY_UNKNOWN_KEY');
        expect((await c.getKey(ctx, 'kek')).latestVersion).toBe(1);
      }));

    it('rejects bad input (context, binding, recipient) with typed errors and no change', () =>
      withBackend(async ({ custody: c }) => {
        await c.createKey(ctx, 'kek', { purpose: 'wrap' });
        const w = await c.generateKey(ctx, 'kek', 'aes128', bind);
        const src = { kind: 'wrapped' as const, kek: 'kek', blob: w.blob, binding: bind };
        expect(await codeOf(c.seal({ actor: '', purpose: 'x', correlationId: 'y' }, src, recipient))).toBe('ERR_CUSTODY_INPUT');
        expect(await codeOf(c.seal(ctx, { ...src, binding: { ...bind, aid: 'F0001' } }, recipient))).toBe('ERR_CUSTODY_INPUT');
        expect(await codeOf(c.seal(ctx, { ...src, binding: { ...bind, keyNo: 14 } }, recipient))).toBe('ERR_CUSTODY_INPUT');
        expect(await codeOf(c.seal(ctx, src, { readerId: 'r', publicKey: { kty: 'oct', k: 'AAAA' } }))).toBe('ERR_CUSTODY_INPUT');
        expect(await codeOf(c.wrap(ctx, 'kek', new Uint8Array(3), bind))).toBe('ERR_CUSTODY_INPUT');
        expect(await codeOf(c.setMinVersions(ctx, 'kek', {}))).toBe('ERR_CUSTODY_INPUT');
        expect(await codeOf(c.disableVersion(ctx, 'kek', 0))).toBe('ERR_CUSTODY_INPUT');
        expect((await c.getKey(ctx, 'kek')).versions).toHaveLength(1);
      }));

    it('refuses every key operation while sealed', async () => {
      const b = await f.make();
      try {
        if (!b.seal) return; // only backends with a seal state
        await b.custody.createKey(ctx, 'kek', { purpose: 'wrap' });
        const w = await b.custody.generateKey(ctx, 'kek', 'aes128', bind);
        await b.seal();
        expect(await codeOf(b.custody.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind }))).toBe('ERR_CUSTODY_SEALED');
        expect(await codeOf(b.custody.createKey(ctx, 'k2', { purpose: 'wrap' }))).toBe('ERR_CUSTODY_SEALED');
        expect(await codeOf(b.custody.listKeys(ctx))).toBe('ERR_CUSTODY_SEALED');
        expect(b.audit.events.filter((e) => e.code === 'ERR_CUSTODY_SEALED')).toHaveLength(3);
      } finally {
        await b.cleanup();
      }
    });
  });
}

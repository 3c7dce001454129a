// vault-transit request shapes against the local Transit emulation (an additional check: the
// conformance suite runs the same backend against a real Vault when VAULT_ADDR/VAULT_TOKEN are set).
import { afterEach, describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/core/crypto/bytes.js';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { MemoryVaultStore } from '../../src/custody/store.js';
import type { CallerContext, KeyBinding, WrappedKey } from '../../src/custody/types.js';
import { type VaultAuth, VaultTransitEngine } from '../../src/custody/vault-transit.js';
import { FakeTransit } from './transit-server.js';

const ctx: CallerContext = { actor: 'op', purpose: 'test', correlationId: 'v-1' };
const bind = (i: number): KeyBinding => ({ tenant: 't', aid: 'F00001', uid: `04A1B2C3${i.toString(16).padStart(6, '0')}`, keyNo: 1, version: 1 });
let server: FakeTransit | undefined;
afterEach(async () => server?.stop());

async function setup(auth: VaultAuth = { token: 'root-token' }) {
  server = await new FakeTransit().start();
  const store = new MemoryVaultStore();
  const engine = await VaultTransitEngine.open({ addr: server.addr, auth, masterStore: store });
  return { server, store, engine, custody: engine.custody(new MemoryAuditSink()) };
}

describe('vault-transit backend: request shapes', () => {
  it('creates derived aes256-gcm96 keys and binds every wrap to the binding through `context`', async () => {
    const { server, custody: c } = await setup();
    await c.createKey(ctx, 'kek', { purpose: 'wrap' });
    const create = server.requests.find((r) => r.method === 'POST' && r.path === '/v1/transit/keys/dcms-kek');
    expect(create?.body).toEqual({ type: 'aes256-gcm96', derived: true });
    expect(create?.token).toBe('root-token');
    const key = fromHex('00112233445566778899AABBCCDDEEFF');
    const w = await c.wrap(ctx, 'kek', key, bind(1));
    const enc = server.requests.find((r) => r.path === '/v1/transit/encrypt/dcms-kek')!;
    expect(Object.keys(enc.body!).sort()).toEqual(['context', 'plaintext']);
    expect(Buffer.from(enc.body!.context as string, 'base64').toString()).toBe('dcms-aad-v1|t|F00001|04A1B2C3000001|1|1');
    expect(Buffer.from(enc.body!.plaintext as string, 'base64')).toEqual(Buffer.from(key));
    expect(await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind(1) })).toEqual(key);
    const dec = server.requests.find((r) => r.path === '/v1/transit/decrypt/dcms-kek')!;
    expect(dec.body!.ciphertext).toMatch(/^vault:v1:/);
    expect(dec.body!.context).toBe(enc.body!.context);
  });

  it('generates AES card keys with datakey/wrapped (no plaintext on the wire) and masters likewise', async () => {
    const { server, store, custody: c } = await setup();
    await c.createKey(ctx, 'kek', { purpose: 'wrap' });
    const g = await c.generateKey(ctx, 'kek', 'aes128', bind(2));
    const dk = server.requests.find((r) => r.path === '/v1/transit/datakey/wrapped/dcms-kek')!;
    expect(dk.body).toMatchObject({ bits: 128 });
    expect(await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: g.blob, binding: bind(2) })).toHaveLength(16);
    await c.createKey(ctx, 'm', { purpose: 'diversify', alg: 'aes128' });
    expect(server.requests.some((r) => r.path === '/v1/transit/datakey/wrapped/dcms-masters' && (r.body!.context as string).length > 0)).toBe(true);
    const k = await c.exportForCard(ctx, { kind: 'diversified', master: 'm', input: Uint8Array.of(1, 2, 3), binding: bind(2) });
    // the master row holds a Transit ciphertext and an HMAC, never key bytes
    const row = Buffer.from(store.rows.get('master/m')!).toString();
    expect(row).toMatch(/vault:v1:/);
    expect(JSON.parse(row)).toHaveProperty('hmac');
    expect(row).not.toContain(toHex(k));
    // imported masters are encrypted with context AND associated_data
    await c.importKey(ctx, 'm2', { purpose: 'diversify', alg: 'aes128' }, fromHex('00112233445566778899AABBCCDDEEFF'));
    const imp = server.requests.find((r) => r.path === '/v1/transit/encrypt/dcms-masters')!;
    expect(imp.body).toHaveProperty('associated_data');
    expect(imp.body).toHaveProperty('context');
    await c.exportForCard(ctx, { kind: 'diversified', master: 'm2', input: Uint8Array.of(1), binding: bind(2) });
    expect(server.requests.find((r) => r.path === '/v1/transit/decrypt/dcms-masters' && r.body!.associated_data)).toBeDefined();
  });

  it('detects a modified master row (Transit HMAC)', async () => {
    const { store, custody: c, server } = await setup();
    await c.createKey(ctx, 'm', { purpose: 'diversify', alg: 'aes128' });
    await c.rotateKey(ctx, 'm');
    await c.disableVersion(ctx, 'm', 1);
    const row = JSON.parse(Buffer.from(store.rows.get('master/m')!).toString()) as { body: string; hmac: string };
    row.body = row.body.replace('"disabled"', '"active"');
    store.rows.set('master/m', new Uint8Array(Buffer.from(JSON.stringify(row))));
    const e2 = await VaultTransitEngine.open({ addr: server.addr, auth: { token: 'root-token' }, masterStore: store });
    await expect(e2.custody(new MemoryAuditSink()).exportForCard(ctx, { kind: 'diversified', master: 'm', masterVersion: 1, input: Uint8Array.of(1), binding: bind(1) })).rejects.toMatchObject({ code: 'ERR_CUSTODY_TAMPERED' });
  });

  it('rewrapMany uses one batch_input request, keeps order and reports per-item errors', async () => {
    const { server, custody: c } = await setup();
    await c.createKey(ctx, 'kek', { purpose: 'wrap' });
    const ws: WrappedKey[] = [];
    for (let i = 0; i < 5; i++) ws.push(await c.generateKey(ctx, 'kek', 'aes128', bind(i)));
    const keys = await Promise.all(ws.map((w, i) => c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind(i) })));
    await c.rotateKey(ctx, 'kek');
    const before = server.requests.length;
    const items = ws.map((w, i) => ({ blob: w.blob, binding: bind(i) }));
    items[2] = { blob: ws[2]!.blob, binding: bind(9) }; // wrong binding
    const out = await c.rewrapMany(ctx, 'kek', items);
    const calls = server.requests.slice(before).filter((r) => r.path === '/v1/transit/rewrap/dcms-kek');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.body!.batch_input).toHaveLength(4);
    expect(out[2]).toEqual({ error: expect.objectContaining({ code: 'ERR_CUSTODY_AAD_MISMATCH' }) });
    for (const i of [0, 1, 3, 4]) {
      const w = out[i] as WrappedKey;
      expect(w.kekVersion).toBe(2);
      expect(await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind(i) })).toEqual(keys[i]);
    }
  });

  it('logs in with AppRole and again when the token is revoked', async () => {
    const { server, custody: c } = await setup({ roleId: 'role-1', secretId: 'secret-1' });
    expect(server.requests[0]).toMatchObject({ method: 'POST', path: '/v1/auth/approle/login', body: { role_id: 'role-1', secret_id: 'secret-1' } });
    await c.createKey(ctx, 'kek', { purpose: 'wrap' });
    server.tokens.clear();
    expect((await c.getKey(ctx, 'kek')).name).toBe('kek');
    expect(server.requests.filter((r) => r.path === '/v1/auth/approle/login')).toHaveLength(2);
    server.approle.secretId = 'rotated';
    server.tokens.clear();
    await expect(c.getKey(ctx, 'kek')).rejects.toMatchObject({ code: 'ERR_CUSTODY_BACKEND' });
  });

  it('maps Transit version limits: disable/destroy only the oldest version', async () => {
    const { server, custody: c } = await setup();
    await c.createKey(ctx, 'kek', { purpose: 'wrap' });
    await c.rotateKey(ctx, 'kek');
    await c.rotateKey(ctx, 'kek');
    await expect(c.disableVersion(ctx, 'kek', 2)).rejects.toMatchObject({ code: 'ERR_CUSTODY_UNSUPPORTED' });
    await c.destroyVersion(ctx, 'kek', 1);
    expect(server.requests.find((r) => r.path === '/v1/transit/keys/dcms-kek/trim')?.body).toEqual({ min_available_version: 2 });
    const info = await c.getKey(ctx, 'kek');
    expect(info.versions.map((v) => v.state)).toEqual(['destroyed', 'active', 'active']);
    expect(info.minDecryptionVersion).toBe(2);
  });

  it('sees a rotation made by another process at once (metadata cache)', async () => {
    const { server, custody: a, store } = await setup();
    const eb = await VaultTransitEngine.open({ addr: server.addr, auth: { token: 'root-token' }, masterStore: store });
    const b = eb.custody(new MemoryAuditSink());
    await a.createKey(ctx, 'kek', { purpose: 'wrap' });
    expect((await b.generateKey(ctx, 'kek', 'aes128', bind(1))).kekVersion).toBe(1);
    await a.rotateKey(ctx, 'kek');
    const w2 = await a.generateKey(ctx, 'kek', 'aes128', bind(1));
    expect(w2.kekVersion).toBe(2);
    expect(await b.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w2.blob, binding: bind(1) })).toHaveLength(16);
    expect((await b.wrap(ctx, 'kek', new Uint8Array(16), bind(1))).kekVersion).toBe(2);
  });
});

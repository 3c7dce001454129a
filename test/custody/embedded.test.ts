import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { EmbeddedVault, parseShare } from '../../src/custody/embedded.js';
import { MemoryVaultStore, type VaultStore } from '../../src/custody/store.js';
import { SqliteVaultStore } from '../../src/custody/store-sqlite.js';
import type { CallerContext, KeyBinding } from '../../src/custody/types.js';

const ctx: CallerContext = { actor: 'op', purpose: 'test', correlationId: 'e-1' };
const bind: KeyBinding = { tenant: 't', aid: 'F00001', uid: '04A1B2C3', keyNo: 0, version: 1 };
const FAST = { N: 2 ** 10, r: 8, p: 1 };
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code ?? 'no-code';
  }
  return 'resolved';
}

async function passphraseVault(store: VaultStore = new MemoryVaultStore()) {
  const v = await EmbeddedVault.open(store);
  await v.init({ passphrase: 'a long enough passphrase', scrypt: FAST });
  return v;
}

describe('embedded vault: sealing the root key', () => {
  it('passphrase: init, seal (zeroised), unseal; a wrong passphrase is refused and stays sealed', async () => {
    const store = new MemoryVaultStore();
    const v = await passphraseVault(store);
    const c = v.custody(new MemoryAuditSink());
    await c.createKey(ctx, 'kek', { purpose: 'wrap' });
    const w = await c.generateKey(ctx, 'kek', 'aes128', bind);
    const k = await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind });
    await v.seal();
    expect(v.status()).toMatchObject({ initialized: true, sealed: true, sealType: 'passphrase' });
    expect(await codeOf(v.unsealWithPassphrase('the wrong passphrase'))).toBe('ERR_CUSTODY_UNSEAL_FAILED');
    expect(v.sealed).toBe(true);
    // a second process opening the same store
    const v2 = await EmbeddedVault.open(store);
    await v2.unsealWithPassphrase('a long enough passphrase');
    expect(await v2.custody(new MemoryAuditSink()).exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind })).toEqual(k);
    expect(await codeOf(v2.init({ passphrase: 'another passphrase!', scrypt: FAST }))).toBe('ERR_CUSTODY_ALREADY_INITIALIZED');
    expect(await codeOf(v.init({ passphrase: 'x' } as never))).toBe('ERR_CUSTODY_ALREADY_INITIALIZED');
  });

  it('seal wipes the root key, row keys and key material buffers', async () => {
    const v = await passphraseVault();
    const c = v.custody(new MemoryAuditSink());
    await c.createKey(ctx, 'm', { purpose: 'diversify', alg: 'aes128' });
    await c.exportForCard(ctx, { kind: 'diversified', master: 'm', input: Uint8Array.of(1, 2, 3), binding: bind });
    const st = (v as unknown as { state: { root: Uint8Array; rowKey: Uint8Array; macKey: Uint8Array; materials: Map<string, Uint8Array> } }).state;
    const buffers = [st.root, st.rowKey, st.macKey, ...st.materials.values()];
    expect(buffers.every((b) => b.some((x) => x !== 0))).toBe(true);
    await v.seal();
    expect(buffers.every((b) => b.every((x) => x === 0))).toBe(true);
  });

  it('Shamir 3-of-5: any 3 shares unseal; wrong, foreign, duplicate and mistyped shares are refused', async () => {
    const store = new MemoryVaultStore();
    const v = await EmbeddedVault.open(store);
    const { shares } = await v.init({ shares: 5, threshold: 3 });
    expect(shares).toHaveLength(5);
    const c = v.custody(new MemoryAuditSink());
    await c.createKey(ctx, 'kek', { purpose: 'wrap' });
    await v.seal();
    for (const pick of [[0, 1, 2], [4, 2, 0], [1, 3, 4]]) {
      const o = await EmbeddedVault.open(store);
      expect((await o.submitShare(shares![pick[0]!]!)).progress).toBe(1);
      expect(await codeOf(o.submitShare(shares![pick[0]!]!))).toBe('ERR_CUSTODY_BAD_SHARE');
      expect((await o.submitShare(shares![pick[1]!]!)).sealed).toBe(true);
      expect((await o.submitShare(shares![pick[2]!]!)).sealed).toBe(false);
      expect((await o.custody(new MemoryAuditSink()).getKey(ctx, 'kek')).name).toBe('kek');
    }
    const o = await EmbeddedVault.open(store);
    // a share of another vault
    const other = await EmbeddedVault.open(new MemoryVaultStore());
    const { shares: foreign } = await other.init({ shares: 3, threshold: 3 });
    expect(await codeOf(o.submitShare(foreign![0]!))).toBe('ERR_CUSTODY_BAD_SHARE');
    // a mistyped share (checksum)
    const s0 = shares![0]!;
    const typo = s0.slice(0, 60) + (s0[60] === 'a' ? 'b' : 'a') + s0.slice(61);
    expect(await codeOf(o.submitShare(typo))).toBe('ERR_CUSTODY_BAD_SHARE');
    // a share with a valid checksum but wrong value: reconstruction fails and the ceremony resets
    const p = parseShare(shares![1]!);
    p.share.y[0]! ^= 1;
    const { formatShare } = await import('../../src/custody/embedded.js');
    const forged = formatShare(p.vaultId, p.threshold, p.share);
    await o.submitShare(shares![0]!);
    await o.submitShare(forged);
    expect(await codeOf(o.submitShare(shares![2]!))).toBe('ERR_CUSTODY_UNSEAL_FAILED');
    expect(o.status()).toMatchObject({ sealed: true, progress: 0 });
    expect(await codeOf(o.unsealWithPassphrase('whatever passphrase'))).toBe('ERR_CUSTODY_INPUT');
  });

  it('audits the ceremony and refuses to unseal when the sink refuses', async () => {
    const store = new MemoryVaultStore();
    const audit = new MemoryAuditSink();
    const v = await EmbeddedVault.open(store, { audit });
    await v.init({ passphrase: 'a long enough passphrase', scrypt: FAST }, ctx);
    await v.seal(ctx);
    expect(audit.events.map((e) => e.op)).toEqual(['vault_init', 'vault_seal']);
    audit.failing = true;
    expect(await codeOf(v.unsealWithPassphrase('a long enough passphrase', ctx))).toBe('ERR_CUSTODY_AUDIT');
    expect(v.sealed).toBe(true);
    audit.failing = false;
    await v.unsealWithPassphrase('a long enough passphrase', ctx);
    expect(audit.events.at(-1)).toMatchObject({ op: 'vault_unseal', outcome: 'ok', actor: 'op' });
  });

  it('an uninitialised vault says so', async () => {
    const v = await EmbeddedVault.open(new MemoryVaultStore());
    expect(v.status()).toEqual({ initialized: false, sealed: true });
    expect(await codeOf(v.custody(new MemoryAuditSink()).listKeys(ctx))).toBe('ERR_CUSTODY_NOT_INITIALIZED');
    expect(await codeOf(v.unsealWithPassphrase('whatever passphrase'))).toBe('ERR_CUSTODY_NOT_INITIALIZED');
  });
});

describe('embedded vault: the key store is authenticated', () => {
  async function populated() {
    const store = new MemoryVaultStore();
    const v = await passphraseVault(store);
    const c = v.custody(new MemoryAuditSink());
    await c.createKey(ctx, 'a', { purpose: 'wrap' });
    await c.createKey(ctx, 'b', { purpose: 'wrap' });
    const oldA = store.rows.get('key/a')!.slice();
    const oldManifest = store.rows.get('manifest')!.slice();
    await c.rotateKey(ctx, 'a');
    await v.seal();
    return { store, oldA, oldManifest };
  }
  const reopen = async (store: MemoryVaultStore) => codeOf(EmbeddedVault.open(store).then((v) => v.unsealWithPassphrase('a long enough passphrase')));

  it('an untouched store unseals', async () => {
    expect(await reopen((await populated()).store)).toBe('resolved');
  });
  it('detects a modified row', async () => {
    const { store } = await populated();
    store.rows.get('key/a')![20]! ^= 1;
    expect(await reopen(store)).toBe('ERR_CUSTODY_TAMPERED');
  });
  it('detects swapped rows', async () => {
    const { store } = await populated();
    const a = store.rows.get('key/a')!;
    store.rows.set('key/a', store.rows.get('key/b')!);
    store.rows.set('key/b', a);
    expect(await reopen(store)).toBe('ERR_CUSTODY_TAMPERED');
  });
  it('detects a deleted row', async () => {
    const { store } = await populated();
    store.rows.delete('key/b');
    expect(await reopen(store)).toBe('ERR_CUSTODY_TAMPERED');
  });
  it('detects a rolled-back row', async () => {
    const { store, oldA } = await populated();
    store.rows.set('key/a', oldA);
    expect(await reopen(store)).toBe('ERR_CUSTODY_TAMPERED');
  });
  it('detects an added row and a modified manifest', async () => {
    const { store } = await populated();
    store.rows.set('key/c', store.rows.get('key/b')!);
    expect(await reopen(store)).toBe('ERR_CUSTODY_TAMPERED');
    store.rows.delete('key/c');
    const m = JSON.parse(Buffer.from(store.rows.get('manifest')!).toString()) as { body: string; mac: string };
    m.body = m.body.replace('"counter":3', '"counter":4');
    store.rows.set('manifest', new Uint8Array(Buffer.from(JSON.stringify(m))));
    expect(await reopen(store)).toBe('ERR_CUSTODY_TAMPERED');
  });
  it('detects a rolled-back manifest + row within a process that saw the newer state', async () => {
    const { store, oldA, oldManifest } = await populated();
    const v = await EmbeddedVault.open(store);
    await v.unsealWithPassphrase('a long enough passphrase');
    await v.seal();
    store.rows.set('key/a', oldA);
    store.rows.set('manifest', oldManifest);
    expect(await codeOf(v.unsealWithPassphrase('a long enough passphrase'))).toBe('ERR_CUSTODY_TAMPERED');
  });
  it('picks up changes made by another process (and reloads on a concurrent write)', async () => {
    const store = new MemoryVaultStore();
    const v1 = await passphraseVault(store);
    const v2 = await EmbeddedVault.open(store);
    await v2.unsealWithPassphrase('a long enough passphrase');
    const c1 = v1.custody(new MemoryAuditSink());
    const c2 = v2.custody(new MemoryAuditSink());
    await c1.createKey(ctx, 'kek', { purpose: 'wrap' });
    const w = await c1.generateKey(ctx, 'kek', 'aes128', bind);
    await c2.createKey(ctx, 'other', { purpose: 'wrap' });
    expect((await c2.verifyWrapped(ctx, 'kek', w.blob, bind)).kekVersion).toBe(1);
    await c1.rotateKey(ctx, 'kek');
    await c2.rotateKey(ctx, 'kek');
    expect((await c1.getKey(ctx, 'kek')).latestVersion).toBe(3);
    expect((await c1.listKeys(ctx)).map((k) => k.name)).toEqual(['kek', 'other']);
  });
});

describe('embedded vault on SQLite', () => {
  it('persists across reopen in WAL mode and detects tampering in the table', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dcms-vault-'));
    dirs.push(dir);
    const file = join(dir, 'cms.db');
    const s1 = await SqliteVaultStore.open(file);
    expect(s1.database.pragma('journal_mode', { simple: true })).toBe('wal');
    const v = await passphraseVault(s1);
    const c = v.custody(new MemoryAuditSink());
    await c.createKey(ctx, 'kek', { purpose: 'wrap' });
    const w = await c.generateKey(ctx, 'kek', '2k3des', bind);
    const k = await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind });
    await c.close();
    const s2 = await SqliteVaultStore.open(file);
    const v2 = await EmbeddedVault.open(s2);
    await v2.unsealWithPassphrase('a long enough passphrase');
    expect(await v2.custody(new MemoryAuditSink()).exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: bind })).toEqual(k);
    await v2.seal();
    s2.database.prepare("UPDATE custody_vault SET data = ? WHERE id = 'key/kek'").run(Buffer.alloc(64, 1));
    expect(await codeOf(v2.unsealWithPassphrase('a long enough passphrase'))).toBe('ERR_CUSTODY_TAMPERED');
    const rows = s2.database.prepare('SELECT data FROM custody_vault').all() as { data: Buffer }[];
    for (const r of rows) expect(r.data.includes(Buffer.from(k))).toBe(false);
    await s2.close();
  });
});

describe('embedded vault: reads of the store', () => {
  it("getKeys reads the store's manifest once for all names (getKey once per name), and still sees another process's change", async () => {
    const store = new MemoryVaultStore();
    const reads: string[] = [];
    const get = store.get.bind(store);
    store.get = async (id: string) => (reads.push(id), get(id));
    const v = await passphraseVault(store);
    const c = v.custody(new MemoryAuditSink());
    const names = ['m.a', 'm.b', 'm.c', 'm.d', 'm.e'];
    for (const n of names) await c.createKey(ctx, n, { purpose: 'diversify', alg: 'aes128' });
    reads.length = 0;
    expect((await c.getKeys(ctx, names)).map((k) => [k.name, k.latestVersion])).toEqual(names.map((n) => [n, 1]));
    expect(reads).toEqual(['manifest']);
    // another process rotates one: the next batch read sees it (one refresh, then the snapshot)
    const other = await EmbeddedVault.open(store);
    await other.unsealWithPassphrase('a long enough passphrase');
    await other.custody(new MemoryAuditSink()).rotateKey(ctx, 'm.c');
    expect((await c.getKeys(ctx, names)).find((k) => k.name === 'm.c')!.latestVersion).toBe(2);
    expect(await codeOf(c.getKeys(ctx, ['m.a', 'm.nope']))).toBe('ERR_CUSTODY_UNKNOWN_KEY');
    reads.length = 0;
    for (const n of names) await c.getKey(ctx, n);
    expect(reads.filter((r) => r === 'manifest')).toHaveLength(names.length);
  });

  it('the SQLite store reads, lists and commits through statements prepared once', async () => {
    const d = mkdtempSync(join(tmpdir(), 'vault-prep-'));
    dirs.push(d);
    const s = await SqliteVaultStore.open(join(d, 'v.sqlite'));
    const prepare = s.database.prepare.bind(s.database);
    let prepared = 0;
    s.database.prepare = ((sql: string) => (prepared++, prepare(sql))) as typeof s.database.prepare;
    expect(await s.commit('g', undefined, [{ id: 'g', data: Uint8Array.of(1) }, { id: 'key/x', data: Uint8Array.of(2) }], [])).toBe(true);
    expect(await s.commit('g', Uint8Array.of(9), [{ id: 'key/y', data: Uint8Array.of(3) }], [])).toBe(false);
    expect(await s.commit('g', Uint8Array.of(1), [{ id: 'key/y', data: Uint8Array.of(3) }], ['key/x'])).toBe(true);
    expect(await s.get('g')).toEqual(Uint8Array.of(1));
    expect(await s.get('key/x')).toBeUndefined();
    expect((await s.list('key/')).map((r) => r.id)).toEqual(['key/y']);
    expect(prepared).toBe(0);
    await s.close();
  });
});

// Custody throughput per backend: wrap, unwrap (exportForCard of a wrapped key) and
// "AN10922 derive + seal to a reader" (session-mode JWE; the per-message ECDH-ES form measured too).
// Baselines in the same run: raw node:crypto AES-256-GCM (embedded) and raw PKCS#11 CMAC on
// SoftHSM2 (pkcs11). Every custody call includes validation and an audit event (to a no-op sink,
// so the sink's own cost is not measured). One thread, except derive_seal_<n>procs (n processes at once).
import { execFileSync, fork } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type * as P11 from 'pkcs11js';
import type { AuditSink } from '../src/custody/audit.js';
import { EmbeddedVault } from '../src/custody/embedded.js';
import { generateReaderKeyPair } from '../src/custody/sealed.js';
import { MemoryVaultStore } from '../src/custody/store.js';
import type { CallerContext, KeyBinding, KeyCustody } from '../src/custody/types.js';
import { type BenchOptions, type Figure, opsPerSecond, opsPerSecondAsync } from './types.js';

const ctx: CallerContext = { actor: 'bench', purpose: 'bench', correlationId: 'b' };
const binding: KeyBinding = { tenant: 'campus', aid: 'F00001', uid: '04A1B2C3D4E5F6', keyNo: 1, version: 1 };
const nullSink: AuditSink = { append: async () => undefined };
const input = Uint8Array.from(Buffer.from('04A1B2C3D4E5F601F000', 'hex'));

async function backendFigures(name: string, c: KeyCustody, ms: number, targets: { deriveSeal?: number }, baseline?: { name: string; value: number }, note?: string): Promise<Figure[]> {
  const reader = generateReaderKeyPair();
  const recipient = { readerId: 'bench-reader', publicKey: reader.publicKey };
  await c.createKey(ctx, 'kek', { purpose: 'wrap' });
  await c.createKey(ctx, 'm', { purpose: 'diversify', alg: 'aes128' });
  const key = new Uint8Array(randomBytes(16));
  const w = await c.wrap(ctx, 'kek', key, binding);
  const src = { kind: 'wrapped' as const, kek: 'kek', blob: w.blob, binding };
  const dsrc = { kind: 'diversified' as const, master: 'm', input, binding };
  // derive+seal first: the wrap/unwrap loops create and destroy many session objects, which slows SoftHSM down afterwards
  const deriveSeal = await opsPerSecondAsync(async () => void (await c.seal(ctx, dsrc, recipient)), ms);
  const wrap = await opsPerSecondAsync(async () => void (await c.wrap(ctx, 'kek', key, binding)), ms);
  const unwrap = await opsPerSecondAsync(async () => void (await c.exportForCard(ctx, src)).fill(0), ms);
  const deriveSealEcdh = await opsPerSecondAsync(async () => void (await c.seal(ctx, dsrc, recipient, { mode: 'ecdh-es' })), Math.min(ms, 500));
  const f = (n: string, value: number, extra: Partial<Figure> = {}): Figure => ({ name: `custody.${name}.${n}`, value, unit: 'ops/s', ...(baseline ? { baseline } : {}), ...(note ? { note } : {}), ...extra });
  return [
    f('wrap', wrap),
    f('unwrap', unwrap),
    f('derive_seal', deriveSeal, { ...(targets.deriveSeal ? { target: { op: '>=', value: targets.deriveSeal } } : {}), note: `${note ? note + '; ' : ''}session-mode JWE (dir/A256GCM)` }),
    f('derive_seal_ecdh_es', deriveSealEcdh, { note: `${note ? note + '; ' : ''}ECDH-ES+A256KW per delivery` }),
  ];
}

/** One embedded custody in this thread; derive + seal for `ms`; returns ops/s. */
async function embeddedDeriveSeal(ms: number): Promise<number> {
  const vault = await EmbeddedVault.open(new MemoryVaultStore());
  await vault.init({ passphrase: 'bench passphrase 123', scrypt: { N: 1024, r: 8, p: 1 } });
  const c = vault.custody(nullSink);
  await c.createKey(ctx, 'm', { purpose: 'diversify', alg: 'aes128' });
  const reader = generateReaderKeyPair();
  const recipient = { readerId: 'bench-reader', publicKey: reader.publicKey };
  const dsrc = { kind: 'diversified' as const, master: 'm', input, binding };
  const r = await opsPerSecondAsync(async () => void (await c.seal(ctx, dsrc, recipient)), ms);
  await c.close();
  return r;
}

/** derive + seal in `n` processes at once (one custody each, as N CMS processes would run). */
async function parallelDeriveSeal(n: number, ms: number): Promise<number> {
  const rates = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<number>((resolve, reject) => {
          const child = fork(fileURLToPath(import.meta.url), [], { execArgv: ['--import', 'tsx'], env: { ...process.env, DCMS_BENCH_CUSTODY_CHILD: String(ms) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
          child.once('message', (v) => resolve(Number(v)));
          child.once('error', reject);
          child.once('exit', (code) => (code ? reject(new Error(`bench child exited with ${code}`)) : undefined));
        }),
    ),
  );
  return rates.reduce((a, b) => a + b, 0);
}

async function embedded(ms: number): Promise<Figure[]> {
  const gcmKey = randomBytes(32);
  const pt = randomBytes(16);
  const aad = Buffer.from('dcms-aad-v1|campus|F00001|04A1B2C3D4E5F6|1|1');
  const raw = opsPerSecond(() => {
    const c = createCipheriv('aes-256-gcm', gcmKey, randomBytes(12));
    c.setAAD(aad);
    c.update(pt);
    c.final();
    c.getAuthTag();
  }, ms);
  const vault = await EmbeddedVault.open(new MemoryVaultStore());
  await vault.init({ passphrase: 'bench passphrase 123', scrypt: { N: 1024, r: 8, p: 1 } });
  const c = vault.custody(nullSink);
  try {
    const single = await backendFigures('embedded', c, ms, {}, { name: 'node AES-GCM', value: raw }, 'one thread');
    const n = Math.max(2, Math.min(cpus().length, 2));
    const par = await parallelDeriveSeal(n, ms);
    return [
      { name: 'custody.baseline.node_aes256gcm', value: raw, unit: 'ops/s', note: 'createCipheriv + 16-byte GCM encrypt, one thread' },
      ...single,
      { name: `custody.embedded.derive_seal_${n}procs`, value: par, unit: 'ops/s', baseline: { name: 'node AES-GCM x1', value: raw }, target: { op: '>=', value: 50_000 }, note: `${n} processes at once, session-mode JWE` },
    ];
  } finally {
    await c.close();
  }
}

async function pkcs11(ms: number): Promise<Figure[]> {
  const lib = process.env.DESFIRE_TEST_SOFTHSM_LIB ?? '/usr/lib/softhsm/libsofthsm2.so';
  if (!existsSync(lib)) return [];
  const dir = mkdtempSync(join(tmpdir(), 'dcms-bench-hsm-'));
  try {
    writeFileSync(join(dir, 'softhsm2.conf'), `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    process.env.SOFTHSM2_CONF = join(dir, 'softhsm2.conf');
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'bench', '--so-pin', '87654321', '--pin', '12345678'], { stdio: 'ignore' });
    const { Pkcs11Engine } = await import('../src/custody/pkcs11.js');
    const engine = await Pkcs11Engine.open({ library: lib, tokenLabel: 'bench', pin: '12345678' });
    // raw baseline: C_SignInit + C_Sign (CKM_AES_CMAC) over 32 bytes with a session key
    const mod = (await import('pkcs11js')) as unknown as typeof P11 & { default?: typeof P11 };
    const m = mod.default ?? mod;
    const p = new m.PKCS11();
    p.load(lib);
    try {
      p.C_Initialize();
    } catch {
      /* already initialised by the engine */
    }
    const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === 'bench')!;
    const s = p.C_OpenSession(slot, m.CKF_SERIAL_SESSION | m.CKF_RW_SESSION);
    const k = p.C_GenerateKey(s, { mechanism: m.CKM_AES_KEY_GEN }, [
      { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
      { type: m.CKA_KEY_TYPE, value: m.CKK_AES },
      { type: m.CKA_VALUE_LEN, value: 16 },
      { type: m.CKA_TOKEN, value: false },
      { type: m.CKA_SIGN, value: true },
    ]);
    const msg = Buffer.alloc(32, 1);
    const raw = opsPerSecond(() => {
      p.C_SignInit(s, { mechanism: 0x108a }, k);
      p.C_Sign(s, msg, Buffer.alloc(16));
    }, ms);
    p.C_CloseSession(s);
    const c = engine.custody(nullSink);
    try {
      return [{ name: 'custody.baseline.softhsm_aes_cmac', value: raw, unit: 'ops/s', note: 'raw C_SignInit+C_Sign CKM_AES_CMAC, 32 bytes' }, ...(await backendFigures('pkcs11', c, ms, { deriveSeal: 5_000 }, { name: 'SoftHSM CMAC', value: raw }, 'SoftHSM2'))];
    } finally {
      await engine.destroyNamespace();
      await c.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function vaultTransit(ms: number): Promise<Figure[]> {
  const { VaultTransitEngine } = await import('../src/custody/vault-transit.js');
  if (process.env.VAULT_ADDR && process.env.VAULT_TOKEN) {
    const engine = await VaultTransitEngine.open({ addr: process.env.VAULT_ADDR, auth: { token: process.env.VAULT_TOKEN }, prefix: `dcmsb${randomBytes(3).toString('hex')}-`, masterStore: new MemoryVaultStore() });
    const c = engine.custody(nullSink);
    try {
      return await backendFigures('vault_transit', c, ms, {}, undefined, `real Vault at ${process.env.VAULT_ADDR}`);
    } finally {
      await c.close();
    }
  }
  const { FakeTransit } = await import('../test/custody/transit-server.js');
  const server = await new FakeTransit().start();
  const engine = await VaultTransitEngine.open({ addr: server.addr, auth: { token: 'root-token' }, masterStore: new MemoryVaultStore() });
  const c = engine.custody(nullSink);
  try {
    return await backendFigures('vault_transit_emulated', c, ms, {}, undefined, 'local Transit emulation in the same process (HTTP overhead only), not a real Vault');
  } finally {
    await c.close();
    await server.stop();
  }
}

if (process.env.DCMS_BENCH_CUSTODY_CHILD && process.send) {
  process.send(await embeddedDeriveSeal(Number(process.env.DCMS_BENCH_CUSTODY_CHILD)), () => process.exit(0));
}

export async function figures(opts: BenchOptions): Promise<Figure[]> {
  const ms = opts.quick ? 300 : 1500;
  return [...(await embedded(ms)), ...(await pkcs11(ms)), ...(await vaultTransit(ms))];
}

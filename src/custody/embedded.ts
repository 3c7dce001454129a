// The embedded backend (the default): a sealed vault in the project's database.
//
// Storage (VaultStore rows, nothing plaintext):
//   config          JSON: vault id, how the root key is sealed (scrypt parameters + salt and the
//                   root key under AES-256-GCM, or Shamir M-of-N parameters), and a verifier
//                   (AES-256-GCM of a constant under a root-derived key) that tells a right
//                   passphrase / share set from a wrong one.
//   manifest        JSON { counter, keys: { name: { rev, hash } } } + HMAC-SHA256 under a root-derived
//                   key. The counter increases on every change.
//   key/<name>      AES-256-GCM(rowKey, record JSON) with AAD = vault id | name | rev.
// Tampering: a modified row fails GCM; a row swapped to another name fails GCM (AAD); a deleted,
// added or rolled-back row disagrees with the MAC'd manifest (rev and SHA-256 of the row); a
// modified manifest fails its MAC; a rolled-back manifest (older counter) is caught within a
// process that has seen a newer one (see docs/custody.md for the whole-store rollback caveat).
//
// Keys: wrap keys are AES-256 (each blob under HKDF-SHA256(KEK, "dcms-wrap-v1", binding), GCM
// AAD = binding: a blob is useless for any other tenant, AID, UID, keyNo or version); masters are
// AES-128 / 2K3DES / 3K3DES for AN10922 with one cached `Diversifier` per unwrapped version.
// On seal every key byte, cached diversifier and derived row/MAC key is wiped.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scrypt as scryptCb, type ScryptOptions } from 'node:crypto';
import { Diversifier, type DiversifyAlg } from '../core/crypto/an10922.js';
import { equalCT, wipe } from '../core/crypto/bytes.js';
import { hkdfSha256 } from '../core/crypto/hkdf.js';
import type { AuditSink } from './audit.js';
import { isCallerContext } from './audit.js';
import { Custody, type CustodyOptions } from './custody.js';
import { applyMinVersions, checkDecryptVersion, checkRetireVersion, type CustodyEngine, encryptionVersion, materialLength } from './engine.js';
import {
  AlreadyInitializedError,
  AuditRefusedError,
  BadShareError,
  ConflictError,
  CustodyInputError,
  KeyExistsError,
  KeyVersionError,
  NotInitializedError,
  SealedError,
  TamperedError,
  UnknownKeyError,
  UnsealFailedError,
  WrongPurposeError,
} from './errors.js';
import { RewrapPool, type RewrapJob } from './rewrap-pool.js';
import { combine, type Share, split } from './shamir.js';
import type { VaultStore } from './store.js';
import type { CallerContext, KeyInfo, KeySpec, MinVersions, VersionState } from './types.js';

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** Default passphrase KDF: scrypt N = 2^17, r = 8, p = 1 (128 MiB, OWASP's recommendation). */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };

type SealConfig = { type: 'passphrase'; kdf: 'scrypt'; N: number; r: number; p: number; salt: string; sealedRoot: string } | { type: 'shamir'; shares: number; threshold: number };

interface VaultConfig {
  format: 'dcms-vault-v1';
  vaultId: string;
  createdAt: string;
  seal: SealConfig;
  verifier: string;
}

interface VersionRec {
  version: number;
  state: VersionState;
  createdAt: string;
  material: string | null;
}

interface KeyRec {
  name: string;
  purpose: 'wrap' | 'diversify';
  alg: 'aes256' | DiversifyAlg;
  rev: number;
  minDecryptionVersion: number;
  minEncryptionVersion: number;
  versions: VersionRec[];
}

interface Manifest {
  counter: number;
  keys: Record<string, { rev: number; hash: string }>;
}

interface Unsealed {
  root: Uint8Array;
  rowKey: Uint8Array;
  macKey: Uint8Array;
  manifest: Manifest;
  manifestBytes: Uint8Array | undefined;
  keys: Map<string, KeyRec>;
  materials: Map<string, Uint8Array>;
  diversifiers: Map<string, Diversifier>;
  /** Set when the vault is sealed: every key above is wiped; work that awaited across it must stop. */
  wiped?: boolean;
}

export interface VaultStatus {
  initialized: boolean;
  sealed: boolean;
  vaultId?: string;
  sealType?: 'passphrase' | 'shamir';
  shares?: number;
  threshold?: number;
  /** Shares submitted so far in the current unseal ceremony. */
  progress?: number;
  keys?: number;
  manifestCounter?: number;
}

export type InitOptions = { passphrase: Uint8Array | string; scrypt?: ScryptParams } | { shares: number; threshold: number };

export interface EmbeddedVaultOptions extends CustodyOptions {
  /** Audit sink for the ceremony (init, unseal, seal). */
  audit?: AuditSink;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const MAT_LEN: Record<string, number> = { aes256: 32, aes128: 16, '2k3des': 16, '3k3des': 24 };

function gcmSeal(key: Uint8Array, pt: Uint8Array, aad: Uint8Array): Uint8Array {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(pt), c.final()]);
  return new Uint8Array(Buffer.concat([iv, ct, c.getAuthTag()]));
}

function gcmOpen(key: Uint8Array, blob: Uint8Array, aad: Uint8Array): Uint8Array | undefined {
  if (blob.length < 28) return undefined;
  try {
    const d = createDecipheriv('aes-256-gcm', key, blob.subarray(0, 12));
    d.setAAD(aad);
    d.setAuthTag(blob.subarray(blob.length - 16));
    return new Uint8Array(Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()]));
  } catch {
    return undefined;
  }
}

function scrypt(pass: Uint8Array, salt: Uint8Array, p: ScryptParams): Promise<Uint8Array> {
  const opts: ScryptOptions = { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 16 * 1024 * 1024 };
  return new Promise((resolve, reject) => scryptCb(pass, salt, 32, opts, (err, key) => (err ? reject(err) : resolve(new Uint8Array(key)))));
}

const WRAP_SALT = enc.encode('dcms-wrap-v1');

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const sha256hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const VERIFIER_TEXT = enc.encode('dcms-vault-verifier-v1');

// ---- share text format -------------------------------------------------------------------------
// dcms-share-v1.<vaultId>.<threshold>.<x>.<y hex>.<check>   check = first 8 hex of SHA-256 of the rest

export function formatShare(vaultId: string, threshold: number, s: Share): string {
  const body = `dcms-share-v1.${vaultId}.${threshold}.${s.x}.${Buffer.from(s.y).toString('hex')}`;
  return `${body}.${sha256hex(enc.encode(body)).slice(0, 8)}`;
}

export function parseShare(text: string): { vaultId: string; threshold: number; share: Share } {
  const t = String(text).trim();
  const m = /^(dcms-share-v1\.([0-9a-f]{32})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9a-f]{64}))\.([0-9a-f]{8})$/.exec(t);
  if (!m) throw new BadShareError('not a vault share (expected dcms-share-v1.…)');
  if (sha256hex(enc.encode(m[1]!)).slice(0, 8) !== m[6]) throw new BadShareError('share checksum does not match (mistyped?)');
  const x = Number(m[4]);
  if (x < 1 || x > 255) throw new BadShareError('share index out of range');
  return { vaultId: m[2]!, threshold: Number(m[3]), share: { x, y: new Uint8Array(Buffer.from(m[5]!, 'hex')) } };
}

export class EmbeddedVault implements CustodyEngine {
  readonly backend = 'embedded';
  readonly blobTag = 'emb';
  private config: VaultConfig | undefined;
  private state: Unsealed | undefined;
  private pending: Share[] = [];
  private highestCounter = 0;
  private lock: Promise<unknown> = Promise.resolve();
  private pool: RewrapPool | undefined;

  private constructor(
    readonly store: VaultStore,
    private readonly opts: EmbeddedVaultOptions,
  ) {}

  /** Open a vault over `store` (sealed, or uninitialised). */
  static async open(store: VaultStore, opts: EmbeddedVaultOptions = {}): Promise<EmbeddedVault> {
    const v = new EmbeddedVault(store, opts);
    await v.readConfig();
    return v;
  }

  private async readConfig(): Promise<void> {
    const raw = await this.store.get('config');
    if (!raw) {
      this.config = undefined;
      return;
    }
    try {
      const c = JSON.parse(dec.decode(raw)) as VaultConfig;
      if (c.format !== 'dcms-vault-v1' || typeof c.vaultId !== 'string' || !c.seal) throw new Error('format');
      this.config = c;
    } catch {
      throw new TamperedError('vault config row is not a valid vault config');
    }
  }

  /** A KeyCustody over this vault, auditing to `audit`. */
  custody(audit: AuditSink, opts: CustodyOptions = {}): Custody {
    return new Custody(this, audit, { ...this.opts, ...opts });
  }

  // ---- ceremony -----------------------------------------------------------------------------

  private async ceremonyAudit(ctx: CallerContext | undefined, op: 'vault_init' | 'vault_unseal' | 'vault_seal', outcome: 'ok' | 'error', code?: string): Promise<void> {
    if (!this.opts.audit) return;
    if (!ctx || !isCallerContext(ctx)) throw new CustodyInputError('caller context is required when the vault audits');
    try {
      await this.opts.audit.append({ time: new Date().toISOString(), source: 'custody', backend: this.backend, op, outcome, actor: ctx.actor, purpose: ctx.purpose, correlationId: ctx.correlationId, ...(code ? { code } : {}) });
    } catch {
      throw new AuditRefusedError(`audit sink refused the '${op}' event: operation refused`);
    }
  }

  /**
   * Initialise: creates the root key and seals it by passphrase or splits it into shares. Returns
   * the share texts (Shamir) — hand each to its custodian; they are not stored anywhere. The
   * vault is left unsealed.
   */
  async init(o: InitOptions, ctx?: CallerContext): Promise<{ shares?: string[] }> {
    await this.readConfig();
    if (this.config) throw new AlreadyInitializedError();
    const vaultId = randomBytes(16).toString('hex');
    const root = new Uint8Array(randomBytes(32));
    const verifierKey = hkdfSha256(root, enc.encode(vaultId), enc.encode('dcms-vault-verifier-v1'), 32);
    const verifier = b64(gcmSeal(verifierKey, VERIFIER_TEXT, enc.encode(vaultId)));
    wipe(verifierKey);
    let seal: SealConfig;
    let shares: string[] | undefined;
    if ('passphrase' in o) {
      const pass = typeof o.passphrase === 'string' ? enc.encode(o.passphrase) : o.passphrase;
      if (pass.length < 12) throw new CustodyInputError('passphrase must be at least 12 bytes');
      const params = o.scrypt ?? DEFAULT_SCRYPT;
      if (!Number.isInteger(Math.log2(params.N)) || params.N < 2 ** 10 || params.r < 1 || params.p < 1) throw new CustodyInputError('bad scrypt parameters');
      const salt = randomBytes(16);
      const kek = await scrypt(pass, salt, params);
      seal = { type: 'passphrase', kdf: 'scrypt', ...params, salt: b64(salt), sealedRoot: b64(gcmSeal(kek, root, enc.encode(`dcms-root|${vaultId}`))) };
      wipe(kek);
    } else {
      if (!Number.isInteger(o.threshold) || !Number.isInteger(o.shares) || o.threshold < 2 || o.shares < o.threshold || o.shares > 255)
        throw new CustodyInputError('need 2 <= threshold <= shares <= 255');
      seal = { type: 'shamir', shares: o.shares, threshold: o.threshold };
      shares = split(root, o.shares, o.threshold).map((s) => {
        const t = formatShare(vaultId, o.threshold, s);
        wipe(s.y);
        return t;
      });
    }
    const config: VaultConfig = { format: 'dcms-vault-v1', vaultId, createdAt: new Date().toISOString(), seal, verifier };
    await this.ceremonyAudit(ctx, 'vault_init', 'ok');
    const ok = await this.store.commit('config', undefined, [{ id: 'config', data: enc.encode(JSON.stringify(config)) }], []);
    if (!ok) {
      wipe(root);
      throw new AlreadyInitializedError();
    }
    this.config = config;
    await this.finishUnseal(root);
    return shares ? { shares } : {};
  }

  private requireConfig(): VaultConfig {
    if (!this.config) throw new NotInitializedError();
    return this.config;
  }

  private checkRoot(root: Uint8Array): boolean {
    const c = this.requireConfig();
    const k = hkdfSha256(root, enc.encode(c.vaultId), enc.encode('dcms-vault-verifier-v1'), 32);
    const pt = gcmOpen(k, unb64(c.verifier), enc.encode(c.vaultId));
    wipe(k);
    return !!pt && equalCT(pt, VERIFIER_TEXT);
  }

  async unsealWithPassphrase(passphrase: Uint8Array | string, ctx?: CallerContext): Promise<void> {
    await this.readConfig();
    const c = this.requireConfig();
    if (this.state) return;
    if (c.seal.type !== 'passphrase') throw new CustodyInputError('this vault is sealed by shares, not a passphrase');
    const pass = typeof passphrase === 'string' ? enc.encode(passphrase) : passphrase;
    const kek = await scrypt(pass, unb64(c.seal.salt), c.seal);
    const root = gcmOpen(kek, unb64(c.seal.sealedRoot), enc.encode(`dcms-root|${c.vaultId}`));
    wipe(kek);
    if (!root || root.length !== 32 || !this.checkRoot(root)) {
      wipe(root);
      await this.ceremonyAudit(ctx, 'vault_unseal', 'error', 'ERR_CUSTODY_UNSEAL_FAILED').catch(() => undefined);
      throw new UnsealFailedError('wrong passphrase (or a modified vault config)');
    }
    await this.unsealAudited(root, ctx);
  }

  private async unsealAudited(root: Uint8Array, ctx?: CallerContext): Promise<void> {
    try {
      await this.ceremonyAudit(ctx, 'vault_unseal', 'ok');
    } catch (e) {
      wipe(root);
      throw e;
    }
    await this.finishUnseal(root);
  }

  /**
   * One step of the unseal ceremony: submit a share. When `threshold` distinct shares are in, the
   * root key is reconstructed and checked; a wrong set resets the ceremony.
   */
  async submitShare(text: string, ctx?: CallerContext): Promise<VaultStatus> {
    await this.readConfig();
    const c = this.requireConfig();
    if (this.state) return this.status();
    if (c.seal.type !== 'shamir') throw new CustodyInputError('this vault is sealed by a passphrase, not shares');
    const { vaultId, threshold, share } = parseShare(text);
    if (vaultId !== c.vaultId) throw new BadShareError('share belongs to another vault');
    if (threshold !== c.seal.threshold) throw new BadShareError('share threshold does not match the vault');
    if (this.pending.some((s) => s.x === share.x)) {
      wipe(share.y);
      throw new BadShareError(`share ${share.x} was already submitted`);
    }
    this.pending.push(share);
    if (this.pending.length < c.seal.threshold) return this.status();
    const root = combine(this.pending);
    this.resetCeremony();
    if (!this.checkRoot(root)) {
      wipe(root);
      await this.ceremonyAudit(ctx, 'vault_unseal', 'error', 'ERR_CUSTODY_UNSEAL_FAILED').catch(() => undefined);
      throw new UnsealFailedError('the shares do not reconstruct the root key: ceremony reset');
    }
    await this.unsealAudited(root, ctx);
    return this.status();
  }

  resetCeremony(): void {
    for (const s of this.pending) wipe(s.y);
    this.pending = [];
  }

  private async finishUnseal(root: Uint8Array): Promise<void> {
    const c = this.requireConfig();
    const salt = enc.encode(c.vaultId);
    const st: Unsealed = {
      root,
      rowKey: hkdfSha256(root, salt, enc.encode('dcms-vault-rows-v1'), 32),
      macKey: hkdfSha256(root, salt, enc.encode('dcms-vault-manifest-v1'), 32),
      manifest: { counter: 0, keys: {} },
      manifestBytes: undefined,
      keys: new Map(),
      materials: new Map(),
      diversifiers: new Map(),
    };
    try {
      await this.load(st);
    } catch (e) {
      this.wipeState(st);
      throw e;
    }
    this.state = st;
  }

  /** Wipe the root key and everything derived from it. */
  async seal(ctx?: CallerContext): Promise<void> {
    this.resetCeremony();
    const st = this.state;
    this.state = undefined;
    if (st) this.wipeState(st);
    await this.pool?.close();
    this.pool = undefined;
    await this.ceremonyAudit(ctx, 'vault_seal', 'ok');
  }

  private wipeState(st: Unsealed): void {
    st.wiped = true;
    for (const d of st.diversifiers.values()) d.destroy();
    st.diversifiers.clear();
    for (const m of st.materials.values()) wipe(m);
    st.materials.clear();
    st.keys.clear();
    wipe(st.root, st.rowKey, st.macKey);
  }

  get sealed(): boolean {
    return this.state === undefined;
  }

  status(): VaultStatus {
    const c = this.config;
    if (!c) return { initialized: false, sealed: true };
    const s: VaultStatus = { initialized: true, sealed: !this.state, vaultId: c.vaultId, sealType: c.seal.type };
    if (c.seal.type === 'shamir') Object.assign(s, { shares: c.seal.shares, threshold: c.seal.threshold, progress: this.pending.length });
    if (this.state) Object.assign(s, { keys: this.state.keys.size, manifestCounter: this.state.manifest.counter });
    return s;
  }

  // ---- authenticated store ----------------------------------------------------------------------

  private manifestMac(st: Unsealed, body: string): string {
    return createHmac('sha256', st.macKey).update(body).digest('hex');
  }

  private rowAad(name: string, rev: number): Uint8Array {
    return enc.encode(`dcms-key|${this.requireConfig().vaultId}|${name}|${rev}`);
  }

  /** Read and verify manifest + every key row into `st`. */
  private async load(st: Unsealed): Promise<void> {
    const raw = await this.store.get('manifest');
    const rows = await this.store.list('key/');
    this.still(st);
    let manifest: Manifest = { counter: 0, keys: {} };
    if (raw) {
      let parsed: { body: string; mac: string };
      try {
        parsed = JSON.parse(dec.decode(raw)) as { body: string; mac: string };
      } catch {
        throw new TamperedError('vault manifest is not valid');
      }
      if (typeof parsed.body !== 'string' || typeof parsed.mac !== 'string' || !equalCT(enc.encode(this.manifestMac(st, parsed.body)), enc.encode(parsed.mac)))
        throw new TamperedError('vault manifest MAC does not verify');
      manifest = JSON.parse(parsed.body) as Manifest;
    } else if (rows.length) {
      throw new TamperedError('vault has key rows but no manifest');
    }
    if (manifest.counter < this.highestCounter) throw new TamperedError(`vault manifest rolled back (counter ${manifest.counter} < ${this.highestCounter} seen before)`);
    const names = new Set(Object.keys(manifest.keys));
    const keys = new Map<string, KeyRec>();
    for (const row of rows) {
      const name = row.id.slice(4);
      const entry = manifest.keys[name];
      if (!entry) throw new TamperedError(`key row '${name}' is not in the manifest`);
      if (sha256hex(row.data) !== entry.hash) throw new TamperedError(`key row '${name}' does not match the manifest (modified or rolled back)`);
      const pt = gcmOpen(st.rowKey, row.data, this.rowAad(name, entry.rev));
      if (!pt) throw new TamperedError(`key row '${name}' does not authenticate`);
      const rec = JSON.parse(dec.decode(pt)) as KeyRec;
      wipe(pt);
      if (rec.name !== name || rec.rev !== entry.rev) throw new TamperedError(`key row '${name}' does not match its manifest entry`);
      keys.set(name, rec);
      names.delete(name);
    }
    if (names.size) throw new TamperedError(`key rows missing: ${[...names].join(', ')}`);
    // replace the state's keys and materials
    for (const d of st.diversifiers.values()) d.destroy();
    st.diversifiers.clear();
    for (const m of st.materials.values()) wipe(m);
    st.materials.clear();
    st.keys = keys;
    for (const rec of keys.values())
      for (const v of rec.versions) {
        if (v.material !== null) {
          st.materials.set(`${rec.name}#${v.version}`, unb64(v.material));
          v.material = null; // keep bytes only in `materials`, wiped on seal
        }
      }
    st.manifest = manifest;
    st.manifestBytes = raw;
    this.highestCounter = manifest.counter;
  }

  /** Reload when another process changed the store. */
  private async refresh(st: Unsealed): Promise<boolean> {
    const raw = await this.store.get('manifest');
    this.still(st);
    if (raw === st.manifestBytes || (raw && st.manifestBytes && equalCT(raw, st.manifestBytes))) return false;
    await this.load(st);
    return true;
  }

  private serialise<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.lock.then(fn, fn);
    this.lock = p.catch(() => undefined);
    return p;
  }

  /** Apply `change` to key `name` (undefined = new) and commit row + manifest atomically. */
  private mutateKey(name: string, change: (cur: KeyRec | undefined, st: Unsealed) => { rec: KeyRec; newMaterial?: [number, Uint8Array]; dropped?: number[] }): Promise<KeyInfo> {
    return this.serialise(async () => {
      const st = this.ready();
      await this.refresh(st);
      for (let attempt = 0; attempt < 2; attempt++) {
        const cur = st.keys.get(name);
        const { rec, newMaterial, dropped } = change(cur ? structuredClone(cur) : undefined, st);
        rec.rev = (cur?.rev ?? 0) + 1;
        // the stored record carries the materials
        const stored: KeyRec = {
          ...rec,
          versions: rec.versions.map((v) => {
            const m = newMaterial && newMaterial[0] === v.version ? newMaterial[1] : v.state === 'destroyed' || dropped?.includes(v.version) ? undefined : st.materials.get(`${name}#${v.version}`);
            return { ...v, material: m ? b64(m) : null };
          }),
        };
        const pt = enc.encode(JSON.stringify(stored));
        const row = gcmSeal(st.rowKey, pt, this.rowAad(name, rec.rev));
        wipe(pt);
        const manifest: Manifest = { counter: st.manifest.counter + 1, keys: { ...st.manifest.keys, [name]: { rev: rec.rev, hash: sha256hex(row) } } };
        const body = JSON.stringify(manifest);
        const mbytes = enc.encode(JSON.stringify({ body, mac: this.manifestMac(st, body) }));
        const ok = await this.store.commit('manifest', st.manifestBytes, [{ id: `key/${name}`, data: row }, { id: 'manifest', data: mbytes }], []);
        if (!ok) {
          if (newMaterial) wipe(newMaterial[1]);
          await this.load(st);
          continue;
        }
        // committed; sealed meanwhile: keep no key byte in the discarded state
        if (st.wiped) {
          if (newMaterial) wipe(newMaterial[1]);
          return info(rec);
        }
        st.manifest = manifest;
        st.manifestBytes = mbytes;
        this.highestCounter = manifest.counter;
        st.keys.set(name, rec);
        if (newMaterial) st.materials.set(`${name}#${newMaterial[0]}`, newMaterial[1]);
        for (const v of rec.versions)
          if (v.state !== 'active') {
            const k = `${name}#${v.version}`;
            st.diversifiers.get(k)?.destroy();
            st.diversifiers.delete(k);
            if (v.state === 'destroyed') {
              wipe(st.materials.get(k));
              st.materials.delete(k);
            }
          }
        return info(rec);
      }
      throw new ConflictError('the vault store changed concurrently twice; retry');
    });
  }

  private ready(): Unsealed {
    if (!this.state) throw this.config ? new SealedError() : new NotInitializedError();
    return this.state;
  }

  assertReady(): void {
    this.ready();
  }

  // ---- CustodyEngine ---------------------------------------------------------------------------

  async createKey(name: string, spec: KeySpec): Promise<KeyInfo> {
    const m = new Uint8Array(randomBytes(materialLength(spec)));
    try {
      return await this.importKey(name, spec, m);
    } finally {
      wipe(m);
    }
  }

  async importKey(name: string, spec: KeySpec, given: Uint8Array): Promise<KeyInfo> {
    return this.mutateKey(name, (cur) => {
      if (cur) throw new KeyExistsError(name);
      const alg = spec.purpose === 'wrap' ? 'aes256' : spec.alg;
      const material = given.slice();
      return {
        rec: { name, purpose: spec.purpose, alg, rev: 0, minDecryptionVersion: 1, minEncryptionVersion: 0, versions: [{ version: 1, state: 'active', createdAt: new Date().toISOString(), material: null }] },
        newMaterial: [1, material],
      };
    });
  }

  async rotateKey(name: string): Promise<KeyInfo> {
    return this.mutateKey(name, (cur) => {
      if (!cur) throw new UnknownKeyError(name);
      const v = Math.max(...cur.versions.map((x) => x.version)) + 1;
      cur.versions.push({ version: v, state: 'active', createdAt: new Date().toISOString(), material: null });
      return { rec: cur, newMaterial: [v, new Uint8Array(randomBytes(MAT_LEN[cur.alg]!))] };
    });
  }

  private async fresh<T>(fn: (st: Unsealed) => T): Promise<T> {
    const st = this.ready();
    try {
      return fn(st);
    } catch (e) {
      if (!(e instanceof UnknownKeyError || e instanceof KeyVersionError)) throw e;
      if (!(await this.serialise(() => this.refresh(st)))) throw e;
      this.still(st);
      return fn(st);
    }
  }

  /**
   * After an await: `st` must not have been wiped by a seal meanwhile — going on would verify,
   * decrypt or derive under zeroed keys (a false tamper alarm, or a wrong key).
   */
  private still(st: Unsealed): void {
    if (st.wiped) throw new SealedError();
  }

  private rec(st: Unsealed, name: string): KeyRec {
    const r = st.keys.get(name);
    if (!r) throw new UnknownKeyError(name);
    return r;
  }

  async getKey(name: string): Promise<KeyInfo> {
    const st = this.ready();
    await this.serialise(() => this.refresh(st));
    return info(this.rec(st, name));
  }

  /** Several keys' info after ONE store refresh (one manifest read, not one per name): a consistent snapshot. */
  async getKeys(names: string[]): Promise<KeyInfo[]> {
    const st = this.ready();
    await this.serialise(() => this.refresh(st));
    return names.map((n) => info(this.rec(st, n)));
  }

  /** A copy of a usable master version, for sealing to a reader (seal-master.ts); the caller wipes it. */
  async masterMaterial(name: string, version: number | undefined): Promise<{ version: number; alg: DiversifyAlg; material: Uint8Array }> {
    return this.fresh((st) => {
      const rec = this.rec(st, name);
      if (rec.purpose !== 'diversify') throw new WrongPurposeError(`key '${name}' is a wrapping key, not a diversification master`);
      const v = version ?? rec.versions[rec.versions.length - 1]!.version;
      checkDecryptVersion(rec, v);
      return { version: v, alg: rec.alg as DiversifyAlg, material: this.material(st, rec, v).slice() };
    });
  }

  async listKeys(): Promise<KeyInfo[]> {
    const st = this.ready();
    await this.serialise(() => this.refresh(st));
    return [...st.keys.values()].map(info).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async setMinVersions(name: string, min: MinVersions): Promise<KeyInfo> {
    return this.mutateKey(name, (cur) => {
      if (!cur) throw new UnknownKeyError(name);
      Object.assign(cur, applyMinVersions(info(cur), min));
      return { rec: cur };
    });
  }

  async disableVersion(name: string, version: number): Promise<KeyInfo> {
    return this.mutateKey(name, (cur) => {
      if (!cur) throw new UnknownKeyError(name);
      checkRetireVersion(info(cur), version, 'disable');
      cur.versions.find((v) => v.version === version)!.state = 'disabled';
      return { rec: cur };
    });
  }

  async destroyVersion(name: string, version: number): Promise<KeyInfo> {
    return this.mutateKey(name, (cur) => {
      if (!cur) throw new UnknownKeyError(name);
      checkRetireVersion(info(cur), version, 'destroy');
      cur.versions.find((v) => v.version === version)!.state = 'destroyed';
      return { rec: cur, dropped: [version] };
    });
  }

  private material(st: Unsealed, rec: KeyRec, version: number): Uint8Array {
    const m = st.materials.get(`${rec.name}#${version}`);
    if (!m) throw new KeyVersionError(`key '${rec.name}' version ${version} has no material`);
    return m;
  }

  private wrapKey(st: Unsealed, name: string, purposeVersion: (rec: KeyRec) => number, aad: Uint8Array): { version: number; k: Uint8Array } {
    const rec = this.rec(st, name);
    if (rec.purpose !== 'wrap') throw new WrongPurposeError(`key '${name}' is a diversification master, not a wrapping key`);
    const version = purposeVersion(rec);
    const k = hkdfSha256(this.material(st, rec, version), enc.encode('dcms-wrap-v1'), aad, 32);
    return { version, k };
  }

  async encrypt(kek: string, plaintext: Uint8Array, aad: Uint8Array): Promise<{ version: number; payload: string }> {
    const { version, k } = await this.fresh((st) => this.wrapKey(st, kek, (r) => encryptionVersion(info(r)), aad));
    const blob = gcmSeal(k, plaintext, aad);
    wipe(k);
    return { version, payload: Buffer.from(blob).toString('base64url') };
  }

  async decrypt(kek: string, version: number, payload: string, aad: Uint8Array): Promise<Uint8Array> {
    const { k } = await this.fresh((st) =>
      this.wrapKey(
        st,
        kek,
        (r) => {
          checkDecryptVersion(r, version);
          return version;
        },
        aad,
      ),
    );
    const pt = gcmOpen(k, new Uint8Array(Buffer.from(payload, 'base64url')), aad);
    wipe(k);
    if (!pt) throw new TamperedError('wrapped blob does not authenticate');
    return pt;
  }

  /**
   * Batch rewrap: the KEK record is looked up (after one store refresh, so a version disabled by
   * another process is honoured) once per batch, and the HKDF extract step (PRK = HMAC(salt, KEK
   * version material), the same for every blob) once per KEK version; each blob then costs one
   * HMAC (HKDF expand) + AES-GCM open under its old version and one HMAC + AES-GCM seal under the
   * encryption version. The result is byte-compatible with decrypt/encrypt (RFC 5869: a 32-byte
   * output is T(1) = HMAC(PRK, info | 0x01)). Per-item errors: KeyVersionError (source version
   * not usable), TamperedError (authentication failed). Every derived key and plaintext is wiped.
   */
  async rewrapMany(kek: string, items: { version: number; payload: string; aad: Uint8Array }[]): Promise<({ version: number; payload: string } | Error)[]> {
    const st = this.ready();
    await this.serialise(() => this.refresh(st));
    const rec = this.rec(st, kek);
    if (rec.purpose !== 'wrap') throw new WrongPurposeError(`key '${kek}' is a diversification master, not a wrapping key`);
    const target = encryptionVersion(info(rec));
    const prks = new Map<number, Uint8Array | Error>();
    const prk = (v: number): Uint8Array | Error => {
      let p = prks.get(v);
      if (!p) {
        try {
          checkDecryptVersion(rec, v);
          p = new Uint8Array(createHmac('sha256', WRAP_SALT).update(this.material(st, rec, v)).digest());
        } catch (e) {
          p = e as Error;
        }
        prks.set(v, p);
      }
      return p;
    };
    const out: ({ version: number; payload: string } | Error)[] = new Array(items.length);
    try {
      const enc1 = prk(target);
      if (enc1 instanceof Error) throw enc1;
      const job: RewrapJob = { prks: new Map([[target, enc1]]), target, items: [] };
      const at: number[] = [];
      for (let i = 0; i < items.length; i++) {
        const it = items[i]!;
        const p = prk(it.version);
        if (p instanceof Error) {
          out[i] = p;
          continue;
        }
        job.prks.set(it.version, p);
        job.items.push(it);
        at.push(i);
      }
      let res: (string | null)[];
      try {
        res = await (this.pool ??= new RewrapPool()).run(job);
      } catch {
        // a worker died: do this batch here, one blob at a time
        res = await Promise.all(job.items.map((it) => this.decrypt(kek, it.version, it.payload, it.aad).then(async (k) => {
          try {
            const r = await this.encrypt(kek, k, it.aad);
            return r.version === target ? r.payload : null;
          } finally {
            wipe(k);
          }
        }, () => null)));
      }
      for (let j = 0; j < at.length; j++) {
        const r = res[j];
        out[at[j]!] = typeof r === 'string' ? { version: target, payload: r } : new TamperedError('wrapped blob does not authenticate');
      }
    } finally {
      for (const p of prks.values()) if (p instanceof Uint8Array) wipe(p);
    }
    return out;
  }

  /**
   * AN10922 derive under a master version (one cached Diversifier per version). No promise hop
   * when the master is known (every delivery): the lookup and the derive run synchronously and
   * the result is handed back already resolved; an unknown name or version first refreshes the
   * vault from its store once (as `fresh`), then looks again. Errors are rejections, as before.
   */
  derive(name: string, version: number | undefined, input: Uint8Array): Promise<{ version: number; key: Uint8Array }> {
    let st: Unsealed;
    let m: { v: number; d: Diversifier };
    try {
      st = this.ready();
      m = this.diversifier(st, name, version);
    } catch (e) {
      if (!(e instanceof UnknownKeyError || e instanceof KeyVersionError)) return Promise.reject(e);
      return this.deriveAfterRefresh(st!, name, version, input, e);
    }
    try {
      return Promise.resolve({ version: m.v, key: deriveWith(m.d, input) });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** `derive` after a lookup miss: refresh once (serialised); still missing = the first error. */
  private async deriveAfterRefresh(st: Unsealed, name: string, version: number | undefined, input: Uint8Array, first: unknown): Promise<{ version: number; key: Uint8Array }> {
    if (!(await this.serialise(() => this.refresh(st)))) throw first;
    this.still(st);
    const { v, d } = this.diversifier(st, name, version);
    return { version: v, key: deriveWith(d, input) };
  }

  /** The cached Diversifier of a usable master version (created on first use). */
  private diversifier(st: Unsealed, name: string, version: number | undefined): { v: number; d: Diversifier } {
    const rec = this.rec(st, name);
    if (rec.purpose !== 'diversify') throw new WrongPurposeError(`key '${name}' is a wrapping key, not a diversification master`);
    const v = version ?? rec.versions[rec.versions.length - 1]!.version;
    checkDecryptVersion(rec, v);
    const id = `${name}#${v}`;
    let d = st.diversifiers.get(id);
    if (!d) {
      d = new Diversifier(rec.alg as DiversifyAlg, this.material(st, rec, v));
      st.diversifiers.set(id, d);
    }
    return { v, d };
  }

  /** A copy of a usable key version's material, for a sealed export (export.ts); the caller wipes it. */
  async exportMaterial(name: string, version: number | undefined): Promise<{ version: number; material: Uint8Array }> {
    return this.fresh((st) => {
      const rec = this.rec(st, name);
      const v = version ?? rec.versions[rec.versions.length - 1]!.version;
      checkDecryptVersion(rec, v);
      return { version: v, material: this.material(st, rec, v).slice() };
    });
  }

  async random(n: number): Promise<Uint8Array> {
    return new Uint8Array(randomBytes(n));
  }

  async close(): Promise<void> {
    this.resetCeremony();
    const st = this.state;
    this.state = undefined;
    if (st) this.wipeState(st);
    await this.pool?.close();
    this.pool = undefined;
    await this.store.close();
  }
}

/** An AN10922 derive; a bad input is a CustodyInputError. */
function deriveWith(d: Diversifier, input: Uint8Array): Uint8Array {
  try {
    return d.derive(input);
  } catch (e) {
    throw new CustodyInputError((e as Error).message);
  }
}

function info(rec: KeyRec): KeyInfo {
  return {
    name: rec.name,
    purpose: rec.purpose,
    alg: rec.alg,
    latestVersion: rec.versions.reduce((m, x) => Math.max(m, x.version), 0),
    minDecryptionVersion: rec.minDecryptionVersion,
    minEncryptionVersion: rec.minEncryptionVersion,
    versions: rec.versions.map((v) => ({ version: v.version, state: v.state, createdAt: v.createdAt })),
  };
}

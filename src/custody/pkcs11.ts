// The PKCS#11 backend (pkcs11js, an optional native dependency loaded lazily). Tested against
// SoftHSM2; works with any token that has the mechanisms below.
//
// Objects (all private token objects under `<namespace>:`, so several deployments can share a token):
//   <ns>:<name>:v<N>   CKO_SECRET_KEY, CKA_SENSITIVE true, CKA_EXTRACTABLE false: the key version
//                      itself, generated in the token (C_GenerateKey) or imported (C_CreateObject).
//                      Wrap keys: AES-256 with CKA_DERIVE (only). Masters: AES-128 / DES2 / DES3 with
//                      CKA_SIGN (CMAC) and CKA_ENCRYPT (one ECB block of zeros, for the CMAC subkeys).
//   <ns>:<name>:meta   CKO_DATA (private): JSON metadata (purpose, alg, min versions, version states).
// Per-card keys are never token objects: they are wrapped (blobs kept by the caller) or derived.
//
// wrap / unwrap: a per-blob wrapping key is derived in the token, C_DeriveKey(
//   CKM_AES_CBC_ENCRYPT_DATA, KEK_v, iv = 0, data = SHA-256(nonce || binding)) -> a session AES-256 key
//   (sensitive, non-extractable, CKA_WRAP/CKA_UNWRAP), then CKM_AES_KEY_WRAP_PAD (RFC 5649) wraps a
//   session object holding the card key. Payload = nonce (16 random bytes from the token) || KWP
//   output, so wrapping the same key twice gives unrelated blobs. RFC 5649 has no AAD; binding the blob to (tenant, AID,
//   UID, keyNo, version) comes from the derived wrapping key: the KWP integrity check fails under
//   any other binding. The card key is a session object only for the duration of one call.
// AN10922 in the token: K1/K2 come from L = AES-ECB(master, 0^16) computed once per master
//   version (L, K1, K2 are not the key and do not reveal it; they are kept in memory and wiped on
//   close). The two-block message M = const || input || 80 00.. is built here; for the padded case
//   the last block is XORed with K1 ^ K2 before C_Sign(CKM_AES_CMAC): the token's own CMAC of a
//   full two-block message XORs K1 into the last block, so the result is exactly the AN10922 MAC
//   (last block XOR K2). DES masters use CKM_DES3_CMAC with CKM_DES3_ECB the same way.
import { createHash } from 'node:crypto';
import type * as Pkcs11Types from 'pkcs11js';
import { concat, wipe } from '../core/crypto/bytes.js';
import type { DiversifyAlg } from '../core/crypto/an10922.js';
import { Custody, type CustodyOptions } from './custody.js';
import { applyMinVersions, checkDecryptVersion, checkRetireVersion, type CustodyEngine, encryptionVersion } from './engine.js';
import { BackendError, CustodyInputError, KeyExistsError, KeyVersionError, SealedError, TamperedError, UnknownKeyError, WrongPurposeError } from './errors.js';
import type { AuditSink } from './audit.js';
import type { KeyInfo, KeySpec, MinVersions, VersionState } from './types.js';

type P11 = typeof Pkcs11Types;
type Handle = Buffer;

export interface Pkcs11Options {
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  library: string;
  /** Token label to use (first token with this label); or give `slot`. */
  tokenLabel?: string;
  /** Slot ID (CK_SLOT_ID) instead of a token label. */
  slot?: number;
  /** User PIN (from a file or the environment, never argv). */
  pin: string;
  /** Object label namespace (default 'dcms'). */
  namespace?: string;
}

interface Meta {
  /** Increases on every change; the object with the highest seq wins (replace = create new, destroy old). */
  seq: number;
  purpose: 'wrap' | 'diversify';
  alg: 'aes256' | DiversifyAlg;
  minDecryptionVersion: number;
  minEncryptionVersion: number;
  versions: { version: number; state: VersionState; createdAt: string }[];
}

const CKM_AES_KEY_WRAP_PAD = 0x210a;
const CKM_AES_CMAC = 0x108a;
const CKM_DES3_CMAC = 0x138;
const CKM_AES_CBC_ENCRYPT_DATA = 0x1105;

interface Loaded {
  mod: P11;
  pkcs11: Pkcs11Types.PKCS11;
  /** SHA-256 of the PIN each token was logged in with (login state is per process and token). */
  logins: Map<string, string>;
}
const loaded = new Map<string, Loaded>();

/**
 * Load and initialise a PKCS#11 module once per process (pkcs11js is an optional native
 * dependency, imported only here). Shared by this backend and the reader's PKCS#11 keystore
 * (src/reader/pkcs11-keystore.ts), so one process using both initialises the module once.
 */
export async function loadPkcs11Module(library: string): Promise<Loaded> {
  return load(library);
}

async function load(library: string): Promise<Loaded> {
  const have = loaded.get(library);
  if (have) return have;
  let mod: P11;
  try {
    const m = (await import('pkcs11js')) as unknown as P11 & { default?: P11 };
    mod = m.default ?? m;
  } catch (e) {
    throw new BackendError(`pkcs11js is not available: ${(e as Error).message}`);
  }
  const pkcs11 = new mod.PKCS11();
  try {
    pkcs11.load(library);
    try {
      pkcs11.C_Initialize();
    } catch (e) {
      if (!String((e as Error).message).includes('CKR_CRYPTOKI_ALREADY_INITIALIZED')) throw e;
    }
  } catch (e) {
    throw new BackendError(`cannot load PKCS#11 module ${library}: ${(e as Error).message}`);
  }
  const l: Loaded = { mod, pkcs11, logins: new Map() };
  loaded.set(library, l);
  return l;
}

function dbl(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(block.length);
  let carry = 0;
  for (let i = block.length - 1; i >= 0; i--) {
    out[i] = ((block[i]! << 1) | carry) & 0xff;
    carry = block[i]! >>> 7;
  }
  if (carry) out[block.length - 1]! ^= block.length === 16 ? 0x87 : 0x1b;
  return out;
}

const CONSTANTS: Record<DiversifyAlg, number[]> = { aes128: [0x01], '2k3des': [0x21, 0x22], '3k3des': [0x31, 0x32, 0x33] };

export class Pkcs11Engine implements CustodyEngine {
  readonly backend = 'pkcs11';
  readonly blobTag = 'p11';
  private session: Handle | undefined;
  private readonly ns: string;
  private readonly handles = new Map<string, Handle>();
  private readonly metas = new Map<string, { handle: Handle; meta: Meta }>();
  /** K1 ^ K2 per master version (for the padded AN10922 case). */
  private readonly corrections = new Map<string, Uint8Array>();

  private constructor(
    private readonly l: Loaded,
    private readonly opts: Pkcs11Options,
  ) {
    this.ns = opts.namespace ?? 'dcms';
    if (!/^[A-Za-z0-9._-]{1,32}$/.test(this.ns)) throw new CustodyInputError('namespace must be 1..32 of [A-Za-z0-9._-]');
  }

  static async open(opts: Pkcs11Options): Promise<Pkcs11Engine> {
    const l = await load(opts.library);
    const e = new Pkcs11Engine(l, opts);
    e.login();
    return e;
  }

  custody(audit: AuditSink, opts: CustodyOptions = {}): Custody {
    return new Custody(this, audit, opts);
  }

  private get p(): Pkcs11Types.PKCS11 {
    return this.l.pkcs11;
  }

  private get m(): P11 {
    return this.l.mod;
  }

  private login(): void {
    const { p, m } = this;
    try {
      const want = this.opts.slot;
      if (want === undefined && !this.opts.tokenLabel) throw new BackendError('give a token label or a slot ID');
      const slot = p
        .C_GetSlotList(true)
        .find((s) => (want !== undefined ? s.readUIntLE(0, Math.min(6, s.length)) === want : p.C_GetTokenInfo(s).label.trim() === this.opts.tokenLabel));
      if (!slot) throw new BackendError(want !== undefined ? `no token in slot ${want}` : `no token labelled '${this.opts.tokenLabel}'`);
      const s = p.C_OpenSession(slot, m.CKF_RW_SESSION | m.CKF_SERIAL_SESSION);
      const pinHash = createHash('sha256').update(this.opts.pin).digest('hex');
      try {
        p.C_Login(s, m.CKU_USER, this.opts.pin);
        this.l.logins.set(this.loginKey(slot), pinHash);
      } catch (e) {
        // already logged in by another engine of this process: accept only the same PIN
        const already = String((e as Error).message).includes('CKR_USER_ALREADY_LOGGED_IN');
        if (!already || this.l.logins.get(this.loginKey(slot)) !== pinHash) {
          p.C_CloseSession(s);
          throw new BackendError('token login failed (wrong PIN?)');
        }
      }
      this.session = s;
    } catch (e) {
      if (e instanceof BackendError) throw e;
      throw new BackendError(`PKCS#11: ${(e as Error).message}`);
    }
  }

  private loginKey(slot: Handle): string {
    return slot.toString('hex');
  }

  private s(): Handle {
    if (!this.session) throw new SealedError('the PKCS#11 session is closed');
    return this.session;
  }

  assertReady(): void {
    this.s();
  }

  /** Run a token call, mapping PKCS#11 errors to BackendError (never echoing data). */
  private call<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof Error && 'code' in e && typeof (e as { code: unknown }).code === 'string' && (e as { code: string }).code.startsWith('ERR_CUSTODY')) throw e;
      const msg = (e as Error).message?.split('\n')[0] ?? 'error';
      throw new BackendError(`PKCS#11 ${what}: ${msg}`);
    }
  }

  private label(name: string, v: number | 'meta'): string {
    return `${this.ns}:${name}:${v === 'meta' ? 'meta' : `v${v}`}`;
  }

  private find(template: Pkcs11Types.Template, max = 1000): Handle[] {
    const { p } = this;
    const s = this.s();
    p.C_FindObjectsInit(s, template);
    try {
      return p.C_FindObjects(s, max);
    } finally {
      p.C_FindObjectsFinal(s);
    }
  }

  private loadMeta(name: string): { handle: Handle; meta: Meta } | undefined {
    const { m, p } = this;
    const hs = this.find([
      { type: m.CKA_CLASS, value: m.CKO_DATA },
      { type: m.CKA_LABEL, value: this.label(name, 'meta') },
    ]);
    if (!hs.length) {
      this.metas.delete(name);
      return undefined;
    }
    let best: { handle: Handle; meta: Meta } | undefined;
    for (const h of hs) {
      const raw = p.C_GetAttributeValue(this.s(), h, [{ type: m.CKA_VALUE }])[0]!.value;
      let meta: Meta;
      try {
        meta = JSON.parse(raw.toString('utf8')) as Meta;
      } catch {
        throw new TamperedError(`metadata object of '${name}' is not valid`);
      }
      if (!best || meta.seq > best.meta.seq) best = { handle: h, meta };
    }
    // a crash between create-new and destroy-old leaves a stale copy: remove it
    for (const h of hs) if (h !== best!.handle) p.C_DestroyObject(this.s(), h);
    this.metas.set(name, best!);
    return best;
  }

  private meta(name: string, fresh = false): { handle: Handle; meta: Meta } {
    const e = (!fresh && this.metas.get(name)) || this.call('find', () => this.loadMeta(name));
    if (!e) throw new UnknownKeyError(name);
    return e;
  }

  private saveMeta(name: string, handle: Handle | undefined, meta: Meta): Handle {
    const { m, p } = this;
    meta.seq += 1;
    const value = Buffer.from(JSON.stringify(meta), 'utf8');
    // data objects' CKA_VALUE is read-only on many tokens: write a new object, then remove the old one
    const h = p.C_CreateObject(this.s(), [
      { type: m.CKA_CLASS, value: m.CKO_DATA },
      { type: m.CKA_TOKEN, value: true },
      { type: m.CKA_PRIVATE, value: true },
      { type: m.CKA_LABEL, value: this.label(name, 'meta') },
      { type: m.CKA_APPLICATION, value: `desfire-cms:${this.ns}` },
      { type: m.CKA_VALUE, value },
    ]);
    if (handle) p.C_DestroyObject(this.s(), handle);
    this.metas.set(name, { handle: h, meta });
    return h;
  }

  private keyTemplate(name: string, v: number, alg: Meta['alg']): Pkcs11Types.Template {
    const { m } = this;
    const wrap = alg === 'aes256';
    const keyType = alg === 'aes256' || alg === 'aes128' ? m.CKK_AES : alg === '2k3des' ? m.CKK_DES2 : m.CKK_DES3;
    return [
      { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
      { type: m.CKA_KEY_TYPE, value: keyType },
      { type: m.CKA_TOKEN, value: true },
      { type: m.CKA_PRIVATE, value: true },
      { type: m.CKA_SENSITIVE, value: true },
      { type: m.CKA_EXTRACTABLE, value: false },
      { type: m.CKA_LABEL, value: this.label(name, v) },
      { type: m.CKA_ID, value: Buffer.from(this.label(name, v)) },
      { type: m.CKA_DERIVE, value: wrap },
      { type: m.CKA_WRAP, value: false },
      { type: m.CKA_UNWRAP, value: false },
      { type: m.CKA_SIGN, value: !wrap },
      { type: m.CKA_ENCRYPT, value: !wrap },
      { type: m.CKA_DECRYPT, value: false },
    ];
  }

  private generateObject(name: string, v: number, alg: Meta['alg'], material?: Uint8Array): Handle {
    const { m, p } = this;
    const t = this.keyTemplate(name, v, alg);
    if (material) return p.C_CreateObject(this.s(), [...t, { type: m.CKA_VALUE, value: Buffer.from(material) }]);
    if (alg === 'aes256' || alg === 'aes128') return p.C_GenerateKey(this.s(), { mechanism: m.CKM_AES_KEY_GEN }, [...t, { type: m.CKA_VALUE_LEN, value: alg === 'aes256' ? 32 : 16 }]);
    return p.C_GenerateKey(this.s(), { mechanism: alg === '2k3des' ? m.CKM_DES2_KEY_GEN : m.CKM_DES3_KEY_GEN }, t);
  }

  private keyHandle(name: string, v: number): Handle {
    const id = `${name}#${v}`;
    let h = this.handles.get(id);
    if (!h) {
      const { m } = this;
      h = this.call('find', () => this.find([{ type: m.CKA_CLASS, value: m.CKO_SECRET_KEY }, { type: m.CKA_LABEL, value: this.label(name, v) }])[0]);
      if (!h) throw new KeyVersionError(`key '${name}' version ${v} has no token object`);
      this.handles.set(id, h);
    }
    return h;
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  async createKey(name: string, spec: KeySpec): Promise<KeyInfo> {
    return this.add(name, spec);
  }

  async importKey(name: string, spec: KeySpec, material: Uint8Array): Promise<KeyInfo> {
    return this.add(name, spec, material);
  }

  private add(name: string, spec: KeySpec, material?: Uint8Array): KeyInfo {
    return this.call('create', () => {
      if (this.loadMeta(name)) throw new KeyExistsError(name);
      const alg = spec.purpose === 'wrap' ? 'aes256' : spec.alg;
      const h = this.generateObject(name, 1, alg, material);
      this.handles.set(`${name}#1`, h);
      const meta: Meta = { seq: 0, purpose: spec.purpose, alg, minDecryptionVersion: 1, minEncryptionVersion: 0, versions: [{ version: 1, state: 'active', createdAt: new Date().toISOString() }] };
      this.saveMeta(name, undefined, meta);
      return info(name, meta);
    });
  }

  async rotateKey(name: string): Promise<KeyInfo> {
    return this.call('rotate', () => {
      const { handle, meta } = this.meta(name, true);
      const v = Math.max(...meta.versions.map((x) => x.version)) + 1;
      this.handles.set(`${name}#${v}`, this.generateObject(name, v, meta.alg));
      meta.versions.push({ version: v, state: 'active', createdAt: new Date().toISOString() });
      this.saveMeta(name, handle, meta);
      return info(name, meta);
    });
  }

  async getKey(name: string): Promise<KeyInfo> {
    return info(name, this.meta(name, true).meta);
  }

  async listKeys(): Promise<KeyInfo[]> {
    return this.call('list', () => {
      const { m, p } = this;
      const hs = this.find([
        { type: m.CKA_CLASS, value: m.CKO_DATA },
        { type: m.CKA_APPLICATION, value: `desfire-cms:${this.ns}` },
      ]);
      const names = hs
        .map((h) => p.C_GetAttributeValue(this.s(), h, [{ type: m.CKA_LABEL }])[0]!.value.toString('utf8'))
        .filter((l) => l.startsWith(`${this.ns}:`) && l.endsWith(':meta'))
        .map((l) => l.slice(this.ns.length + 1, -5));
      return names.sort().map((n) => info(n, this.meta(n, true).meta));
    });
  }

  async setMinVersions(name: string, min: MinVersions): Promise<KeyInfo> {
    return this.call('config', () => {
      const { handle, meta } = this.meta(name, true);
      Object.assign(meta, applyMinVersions(info(name, meta), min));
      this.saveMeta(name, handle, meta);
      return info(name, meta);
    });
  }

  async disableVersion(name: string, version: number): Promise<KeyInfo> {
    return this.call('disable', () => {
      const { handle, meta } = this.meta(name, true);
      checkRetireVersion(info(name, meta), version, 'disable');
      meta.versions.find((v) => v.version === version)!.state = 'disabled';
      this.saveMeta(name, handle, meta);
      this.dropCaches(name, version);
      return info(name, meta);
    });
  }

  async destroyVersion(name: string, version: number): Promise<KeyInfo> {
    return this.call('destroy', () => {
      const { handle, meta } = this.meta(name, true);
      checkRetireVersion(info(name, meta), version, 'destroy');
      try {
        this.p.C_DestroyObject(this.s(), this.keyHandle(name, version));
      } catch (e) {
        if (!(e instanceof KeyVersionError)) throw e;
      }
      meta.versions.find((v) => v.version === version)!.state = 'destroyed';
      this.saveMeta(name, handle, meta);
      this.dropCaches(name, version);
      return info(name, meta);
    });
  }

  private dropCaches(name: string, version: number): void {
    const id = `${name}#${version}`;
    this.handles.delete(id);
    wipe(this.corrections.get(id));
    this.corrections.delete(id);
  }

  // ---- wrapping -----------------------------------------------------------------------------

  private withMeta<T>(name: string, fn: (meta: Meta) => T): T {
    try {
      return fn(this.meta(name).meta);
    } catch (e) {
      if (!(e instanceof UnknownKeyError || e instanceof KeyVersionError)) throw e;
      return fn(this.meta(name, true).meta); // another process may have rotated
    }
  }

  /** Derive the per-binding wrapping key in the token (session object; caller destroys it). */
  private bindingKey(kek: Handle, aad: Uint8Array, nonce: Uint8Array): Handle {
    const { m, p } = this;
    const data = createHash('sha256').update(nonce).update(aad).digest();
    return p.C_DeriveKey(this.s(), { mechanism: CKM_AES_CBC_ENCRYPT_DATA, parameter: { type: m.CK_PARAMS_AES_CBC, iv: Buffer.alloc(16), data } as Pkcs11Types.AesCBC }, kek, [
      { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
      { type: m.CKA_KEY_TYPE, value: m.CKK_AES },
      { type: m.CKA_VALUE_LEN, value: 32 },
      { type: m.CKA_TOKEN, value: false },
      { type: m.CKA_SENSITIVE, value: true },
      { type: m.CKA_EXTRACTABLE, value: false },
      { type: m.CKA_WRAP, value: true },
      { type: m.CKA_UNWRAP, value: true },
    ]);
  }

  private wrapKeyFor(kek: string, version: (meta: Meta) => number): { version: number; h: Handle } {
    return this.withMeta(kek, (meta) => {
      if (meta.purpose !== 'wrap') throw new WrongPurposeError(`key '${kek}' is a diversification master, not a wrapping key`);
      const v = version(meta);
      return { version: v, h: this.keyHandle(kek, v) };
    });
  }

  async encrypt(kek: string, plaintext: Uint8Array, aad: Uint8Array): Promise<{ version: number; payload: string }> {
    const { version, h } = this.wrapKeyFor(kek, (meta) => encryptionVersion(info(kek, meta)));
    return this.call('wrap', () => {
      const { m, p } = this;
      const s = this.s();
      const nonce = p.C_GenerateRandom(s, Buffer.alloc(16));
      const bk = this.bindingKey(h, aad, nonce);
      let obj: Handle | undefined;
      const value = Buffer.from(plaintext);
      try {
        obj = p.C_CreateObject(s, [
          { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
          { type: m.CKA_KEY_TYPE, value: m.CKK_GENERIC_SECRET },
          { type: m.CKA_TOKEN, value: false },
          { type: m.CKA_SENSITIVE, value: false },
          { type: m.CKA_EXTRACTABLE, value: true },
          { type: m.CKA_VALUE, value },
        ]);
        const wrapped = p.C_WrapKey(s, { mechanism: CKM_AES_KEY_WRAP_PAD }, bk, obj, Buffer.alloc(plaintext.length + 16));
        return { version, payload: Buffer.concat([nonce, wrapped]).toString('base64url') };
      } finally {
        value.fill(0);
        if (obj) p.C_DestroyObject(s, obj);
        p.C_DestroyObject(s, bk);
      }
    });
  }

  async decrypt(kek: string, version: number, payload: string, aad: Uint8Array): Promise<Uint8Array> {
    const { h } = this.wrapKeyFor(kek, (meta) => {
      checkDecryptVersion(info(kek, meta), version);
      return version;
    });
    const raw = Buffer.from(payload, 'base64url');
    const nonce = raw.subarray(0, 16);
    const wrapped = raw.subarray(16);
    if (wrapped.length < 16 || wrapped.length % 8 !== 0) throw new TamperedError('wrapped blob does not authenticate');
    const { m, p } = this;
    const s = this.s();
    const bk = this.call('derive', () => this.bindingKey(h, aad, nonce));
    let obj: Handle | undefined;
    try {
      try {
        obj = p.C_UnwrapKey(s, { mechanism: CKM_AES_KEY_WRAP_PAD }, bk, wrapped, [
          { type: m.CKA_CLASS, value: m.CKO_SECRET_KEY },
          { type: m.CKA_KEY_TYPE, value: m.CKK_GENERIC_SECRET },
          { type: m.CKA_TOKEN, value: false },
          { type: m.CKA_SENSITIVE, value: false },
          { type: m.CKA_EXTRACTABLE, value: true },
        ]);
      } catch {
        throw new TamperedError('wrapped blob does not authenticate');
      }
      const v = this.call('read', () => p.C_GetAttributeValue(s, obj!, [{ type: m.CKA_VALUE }])[0]!.value);
      const out = new Uint8Array(v);
      v.fill(0);
      return out;
    } finally {
      if (obj) p.C_DestroyObject(s, obj);
      p.C_DestroyObject(s, bk);
    }
  }

  // ---- AN10922 --------------------------------------------------------------------------------

  private correction(name: string, v: number, alg: DiversifyAlg, h: Handle): Uint8Array {
    const id = `${name}#${v}`;
    let c = this.corrections.get(id);
    if (!c) {
      const { m, p } = this;
      const bs = alg === 'aes128' ? 16 : 8;
      const L = this.call('ecb', () => {
        p.C_EncryptInit(this.s(), { mechanism: alg === 'aes128' ? m.CKM_AES_ECB : m.CKM_DES3_ECB }, h);
        return new Uint8Array(p.C_Encrypt(this.s(), Buffer.alloc(bs), Buffer.alloc(bs)));
      });
      const k1 = dbl(L);
      const k2 = dbl(k1);
      c = new Uint8Array(bs);
      for (let i = 0; i < bs; i++) c[i] = k1[i]! ^ k2[i]!;
      wipe(L, k1, k2);
      this.corrections.set(id, c);
    }
    return c;
  }

  async derive(name: string, version: number | undefined, input: Uint8Array): Promise<{ version: number; key: Uint8Array }> {
    const { v, alg, h } = this.withMeta(name, (meta) => {
      if (meta.purpose !== 'diversify') throw new WrongPurposeError(`key '${name}' is a wrapping key, not a diversification master`);
      const i = info(name, meta);
      const v = version ?? i.latestVersion;
      checkDecryptVersion(i, v);
      return { v, alg: meta.alg as DiversifyAlg, h: this.keyHandle(name, v) };
    });
    const bs = alg === 'aes128' ? 16 : 8;
    if (input.length > 2 * bs - 1) throw new CustodyInputError(`${alg} diversification input must be at most ${2 * bs - 1} bytes`);
    const corr = this.correction(name, v, alg, h);
    const { p } = this;
    const parts = CONSTANTS[alg].map((constant) => {
      const msg = Buffer.alloc(2 * bs);
      msg[0] = constant;
      msg.set(input, 1);
      const mlen = 1 + input.length;
      if (mlen < 2 * bs) {
        msg[mlen] = 0x80;
        for (let i = 0; i < bs; i++) msg[bs + i]! ^= corr[i]!;
      }
      try {
        return this.call('cmac', () => {
          p.C_SignInit(this.s(), { mechanism: alg === 'aes128' ? CKM_AES_CMAC : CKM_DES3_CMAC }, h);
          return new Uint8Array(p.C_Sign(this.s(), msg, Buffer.alloc(bs)));
        });
      } finally {
        msg.fill(0);
      }
    });
    const key = concat(...parts);
    wipe(...parts);
    return { version: v, key };
  }

  async random(n: number): Promise<Uint8Array> {
    return this.call('random', () => new Uint8Array(this.p.C_GenerateRandom(this.s(), Buffer.alloc(n))));
  }

  /** Destroy every object of this namespace (tests, decommissioning). */
  async destroyNamespace(): Promise<void> {
    const { m, p } = this;
    for (const cls of [m.CKO_SECRET_KEY, m.CKO_DATA])
      for (const h of this.find([{ type: m.CKA_CLASS, value: cls }], 100000)) {
        const label = p.C_GetAttributeValue(this.s(), h, [{ type: m.CKA_LABEL }])[0]!.value.toString('utf8');
        if (label.startsWith(`${this.ns}:`)) p.C_DestroyObject(this.s(), h);
      }
    this.handles.clear();
    this.metas.clear();
  }

  async close(): Promise<void> {
    for (const c of this.corrections.values()) wipe(c);
    this.corrections.clear();
    this.handles.clear();
    this.metas.clear();
    const s = this.session;
    this.session = undefined;
    if (s) {
      try {
        this.p.C_CloseSession(s);
      } catch {
        /* already closed */
      }
    }
  }
}

function info(name: string, meta: Meta): KeyInfo {
  return {
    name,
    purpose: meta.purpose,
    alg: meta.alg,
    latestVersion: meta.versions.reduce((mx, x) => Math.max(mx, x.version), 0),
    minDecryptionVersion: meta.minDecryptionVersion,
    minEncryptionVersion: meta.minEncryptionVersion,
    versions: meta.versions.map((v) => ({ ...v })),
  };
}

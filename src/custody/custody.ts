// `Custody`: the KeyCustody implementation every backend shares. It validates input (bad input
// changes nothing), builds blob envelopes, seals deliveries and audits every call, failing
// closed. Backends implement `CustodyEngine` (engine.ts).
import { createHash } from 'node:crypto';
import { maxDiversificationInput } from '../core/crypto/an10922.js';
import { wipe } from '../core/crypto/bytes.js';
import { type AuditEvent, type AuditSink, type CustodyOp, isCallerContext } from './audit.js';
import { CARD_KEY_LENGTH, checkBinding, checkCardKeyAlg, checkKeyName, checkPlaintextKey, checkSpec, checkVersion, encodeBinding, formatBlob, parseBlob } from './binding.js';
import { CustodyError, AadMismatchError, AuditRefusedError, CustodyInputError, TamperedError } from './errors.js';
import { checkDecryptVersion, type CustodyEngine, materialLength } from './engine.js';
import { type ExportRecipient, type KeyExport, type KeyExportOptions, NotExtractableError, recipientThumbprint, sealExport } from './export.js';
import { bindingFingerprint, Sealer } from './seal.js';
import { type MasterRequest, type MasterSealOptions, type SealedMaster, sealMasterWith } from './seal-master.js';
import type { ReaderRecipient, SealedKey } from './sealed.js';
import type { CallerContext, CardKeyAlg, CustodyErrorLike, GenerateItem, KeyBinding, KeyCustody, KeyInfo, KeySource, KeySpec, KeyVersionInfo, MinVersions, SealOptions, WrappedKey } from './types.js';
import { lastIsoTime } from './iso-time.js';

const NL = Uint8Array.of(0x0a);

type Details = Pick<AuditEvent, 'key' | 'keyVersion' | 'binding' | 'recipient' | 'mode' | 'master' | 'seals' | 'keys'>;

/** Most keys one `sealMany` call seals (a station job: the CMK and at most 14 application keys). */
export const MAX_SEAL_BATCH = 16;
/** Most keys one `generateKeys` call generates (a personalise job: the CMK and the random keys of its applications). */
export const MAX_GENERATE_BATCH = 64;
/** Most names one `getKeys` call reads. */
export const MAX_GET_KEYS = 64;

export interface CustodyOptions {
  sealer?: Sealer;
  now?: () => number;
}

export class Custody implements KeyCustody {
  readonly backend: string;
  private readonly sealer: Sealer;
  private readonly now: () => number;

  constructor(
    readonly engine: CustodyEngine,
    private readonly audit: AuditSink,
    opts: CustodyOptions = {},
  ) {
    this.backend = engine.backend;
    this.now = opts.now ?? Date.now;
    this.sealer = opts.sealer ?? new Sealer(3600, this.now);
  }

  /** ISO 8601 of a time in ms (events of the same millisecond share the string). */
  private readonly isoTime = lastIsoTime();

  private event(ctx: CallerContext, op: CustodyOp, outcome: AuditEvent['outcome'], d: Details, code?: string): AuditEvent {
    const e: AuditEvent = { time: this.isoTime(this.now()), source: 'custody', backend: this.backend, op, outcome, actor: ctx.actor, purpose: ctx.purpose, correlationId: ctx.correlationId, ...d };
    if (d.binding && typeof d.binding === 'object') e.binding = { ...d.binding }; // a snapshot: callers may reuse their object
    if (d.seals) e.seals = d.seals.map((x) => ({ ...x, binding: { ...x.binding } }));
    if (d.keys) e.keys = [...d.keys];
    if (code) e.code = code;
    return e;
  }

  private async append(e: AuditEvent): Promise<void> {
    try {
      await this.audit.append(e);
    } catch {
      throw new AuditRefusedError(`audit sink refused the '${e.op}' event: operation refused`);
    }
  }

  /**
   * A batch's events (seal_batch, generate_batch): to a sink with appendAll as ONE unit, all
   * durable or none (the CMS audit log: one transaction); otherwise all handed to the sink in the
   * same turn and all awaited. Either way any refusal refuses the operation (nothing released).
   * Only the fallback is not atomic: a sink that accepts some and refuses others leaves 'ok' parts
   * of a refused call (over-reporting a release, never hiding one).
   */
  private async appendAll(events: AuditEvent[]): Promise<void> {
    if (events.length === 1) return this.append(events[0]!);
    if (this.audit.appendAll) {
      try {
        await this.audit.appendAll(events);
      } catch {
        throw new AuditRefusedError(`audit sink refused the '${events[0]!.op}' events: operation refused`);
      }
      return;
    }
    const r = await Promise.allSettled(events.map((e) => this.audit.append(e)));
    if (r.some((x) => x.status === 'rejected')) throw new AuditRefusedError(`audit sink refused a '${events[0]!.op}' event: operation refused`);
  }

  /** Best effort (the operation failed anyway; nothing was released): a batch's error events as one unit where the sink can. */
  private async appendFailed(events: AuditEvent[]): Promise<void> {
    if (events.length > 1 && this.audit.appendAll) await this.audit.appendAll(events).catch(() => undefined);
    else await Promise.allSettled(events.map((x) => this.audit.append(x)));
  }

  /**
   * The events of a call: one, or for a batch (`seals`) one per (tenant, AID) of its keys, in the
   * order each first appears, each naming only that (tenant, AID)'s keys with the call's other
   * details (recipient, mode). Tenant isolation of the audit log: each tenant's view selects
   * entries by their one tenant and one AID column and every entry carries its Merkle inclusion
   * proof (no redaction per viewer), so an event naming several tenants' keys could be shown to
   * none of them — and a station job's batch holds the issuer's CMK and every tenant's keys.
   */
  private events(ctx: CallerContext, op: CustodyOp, outcome: AuditEvent['outcome'], d: Details, code?: string): AuditEvent[] {
    const seals = d.seals;
    if (!seals || seals.length < 2) return [this.event(ctx, op, outcome, d, code)];
    const parts = new Map<string, NonNullable<Details['seals']>>();
    for (const x of seals) {
      const b = x.binding as Partial<KeyBinding> | undefined;
      const k = `${String(b?.tenant)}\u0000${String(b?.aid)}`;
      const part = parts.get(k);
      if (part) part.push(x);
      else parts.set(k, [x]);
    }
    if (parts.size === 1) return [this.event(ctx, op, outcome, d, code)];
    return [...parts.values()].map((p) => this.event(ctx, op, outcome, { ...d, seals: p }, code));
  }

  private checkCtx(ctx: CallerContext): void {
    if (!isCallerContext(ctx)) throw new CustodyInputError('caller context { actor, purpose, correlationId } is required');
  }

  /** Audit a failed attempt (best effort: if the sink refuses too, the original error still stands). */
  private async failed(ctx: CallerContext, op: CustodyOp, d: Details, e: unknown): Promise<never> {
    const code = e instanceof CustodyError ? e.code : ((e as { code?: string }).code ?? 'ERR_CUSTODY_BACKEND');
    if (!(e instanceof AuditRefusedError)) {
      // a batch: one error event per (tenant, AID) asked for (each tenant's view shows its part)
      await this.appendFailed(this.events(ctx, op, 'error', d, code));
    }
    throw e;
  }

  /** Read-only or releasing operation: compute, then audit 'ok' before returning; on refusal `discard` the result. */
  private async run<T>(ctx: CallerContext, op: CustodyOp, d: Details, fn: (d: Details) => Promise<T>, discard?: (r: T) => void): Promise<T> {
    this.checkCtx(ctx);
    let r: T;
    try {
      r = await fn(d);
    } catch (e) {
      return this.failed(ctx, op, d, e);
    }
    try {
      await this.appendAll(this.events(ctx, op, 'ok', d));
    } catch (e) {
      discard?.(r);
      throw e;
    }
    return r;
  }

  /** State-changing operation: audit 'requested' first (refused if the sink refuses), then the outcome. */
  private async mutate<T>(ctx: CallerContext, op: CustodyOp, d: Details, validate: () => void, fn: () => Promise<T>): Promise<T> {
    this.checkCtx(ctx);
    try {
      validate();
      this.engine.assertReady();
    } catch (e) {
      return this.failed(ctx, op, d, e);
    }
    await this.append(this.event(ctx, op, 'requested', d));
    let r: T;
    try {
      r = await fn();
    } catch (e) {
      return this.failed(ctx, op, d, e);
    }
    await this.append(this.event(ctx, op, 'ok', d));
    return r;
  }

  // ---- key lifecycle --------------------------------------------------------------------------

  createKey(ctx: CallerContext, name: string, spec: KeySpec): Promise<KeyInfo> {
    return this.mutate(ctx, 'create_key', { key: name }, () => (checkKeyName(name), checkSpec(spec)), () => this.engine.createKey(name, spec));
  }

  importKey(ctx: CallerContext, name: string, spec: KeySpec, material: Uint8Array): Promise<KeyInfo> {
    return this.mutate(
      ctx,
      'import_key',
      { key: name },
      () => {
        checkKeyName(name);
        checkSpec(spec);
        if (!(material instanceof Uint8Array) || material.length !== materialLength(spec)) throw new CustodyInputError(`key material for this spec must be ${materialLength(spec)} bytes`);
      },
      () => this.engine.importKey(name, spec, material),
    );
  }

  rotateKey(ctx: CallerContext, name: string): Promise<KeyInfo> {
    return this.mutate(ctx, 'rotate_key', { key: name }, () => checkKeyName(name), () => this.engine.rotateKey(name));
  }

  getKey(ctx: CallerContext, name: string): Promise<KeyInfo> {
    return this.run(ctx, 'get_key', { key: name }, async () => {
      checkKeyName(name);
      this.engine.assertReady();
      return this.engine.getKey(name);
    });
  }

  /**
   * Several keys' info in one call, audited as ONE 'get_keys' event naming them all. All or
   * nothing: an unknown name fails the call (ERR_CUSTODY_UNKNOWN_KEY, audited as an error).
   */
  getKeys(ctx: CallerContext, names: string[]): Promise<KeyInfo[]> {
    const list = Array.isArray(names) ? names.slice(0, MAX_GET_KEYS) : [];
    return this.run(ctx, 'get_keys', { keys: list }, async () => {
      if (!Array.isArray(names) || names.length === 0 || names.length > MAX_GET_KEYS) throw new CustodyInputError(`names must be an array of 1..${MAX_GET_KEYS} key names`);
      for (const n of names) checkKeyName(n);
      this.engine.assertReady();
      if (this.engine.getKeys) return this.engine.getKeys(names);
      const out: KeyInfo[] = [];
      for (const n of names) out.push(await this.engine.getKey(n));
      return out;
    });
  }

  listKeys(ctx: CallerContext): Promise<KeyInfo[]> {
    return this.run(ctx, 'list_keys', {}, async () => {
      this.engine.assertReady();
      return this.engine.listKeys();
    });
  }

  listVersions(ctx: CallerContext, name: string): Promise<KeyVersionInfo[]> {
    return this.run(ctx, 'list_versions', { key: name }, async () => {
      checkKeyName(name);
      this.engine.assertReady();
      return (await this.engine.getKey(name)).versions;
    });
  }

  setMinVersions(ctx: CallerContext, name: string, min: MinVersions): Promise<KeyInfo> {
    return this.mutate(
      ctx,
      'set_min_versions',
      { key: name },
      () => {
        checkKeyName(name);
        if (!min || typeof min !== 'object' || (min.minDecryptionVersion === undefined && min.minEncryptionVersion === undefined))
          throw new CustodyInputError('give minDecryptionVersion and/or minEncryptionVersion');
      },
      () => this.engine.setMinVersions(name, min),
    );
  }

  disableVersion(ctx: CallerContext, name: string, version: number): Promise<KeyInfo> {
    return this.mutate(ctx, 'disable_version', { key: name, keyVersion: version }, () => (checkKeyName(name), checkVersion(version)), () => this.engine.disableVersion(name, version));
  }

  destroyVersion(ctx: CallerContext, name: string, version: number): Promise<KeyInfo> {
    return this.mutate(ctx, 'destroy_version', { key: name, keyVersion: version }, () => (checkKeyName(name), checkVersion(version)), () => this.engine.destroyVersion(name, version));
  }

  // ---- wrapping -------------------------------------------------------------------------------

  private async wrapBytes(kek: string, plaintext: Uint8Array, binding: KeyBinding, d: Details): Promise<WrappedKey> {
    const aad = encodeBinding(binding);
    const { version, payload } = await this.engine.encrypt(kek, plaintext, aad);
    d.keyVersion = version;
    return { blob: formatBlob(this.engine.blobTag, version, aad, payload), kek, kekVersion: version };
  }

  wrap(ctx: CallerContext, kek: string, plaintext: Uint8Array, binding: KeyBinding): Promise<WrappedKey> {
    return this.run(ctx, 'wrap', { key: kek, binding }, async (d) => {
      checkKeyName(kek);
      checkBinding(binding);
      checkPlaintextKey(plaintext);
      this.engine.assertReady();
      return this.wrapBytes(kek, plaintext, binding, d);
    });
  }

  /** One random card key of `alg`, wrapped under `kek` for `binding` (the plaintext, if the engine makes one here, is wiped). */
  private async generateOne(kek: string, alg: CardKeyAlg, binding: KeyBinding, d: Details): Promise<WrappedKey> {
    const aad = encodeBinding(binding);
    const g = this.engine.generate ? await this.engine.generate(kek, CARD_KEY_LENGTH[alg], aad) : undefined;
    if (g) {
      d.keyVersion = g.version;
      return { blob: formatBlob(this.engine.blobTag, g.version, aad, g.payload), kek, kekVersion: g.version };
    }
    const k = await this.engine.random(CARD_KEY_LENGTH[alg]);
    try {
      return await this.wrapBytes(kek, k, binding, d);
    } finally {
      wipe(k);
    }
  }

  generateKey(ctx: CallerContext, kek: string, alg: CardKeyAlg, binding: KeyBinding): Promise<WrappedKey> {
    return this.run(ctx, 'generate_key', { key: kek, binding }, async (d) => {
      checkKeyName(kek);
      checkBinding(binding);
      checkCardKeyAlg(alg);
      this.engine.assertReady();
      return this.generateOne(kek, alg, binding, d);
    });
  }

  /**
   * Several random card keys (a card's CMK and its random application keys) in ONE call: all or
   * nothing, audited as 'generate_batch' events — one per (tenant, AID) of the keys (`events`),
   * handed to the sink together and all durable before any blob is returned — naming per key its
   * KEK and the version used and its binding (`seals`, no recipient: nothing is released, the keys
   * exist only wrapped) — what one 'generate_key' event per key would say. Every item is checked
   * before anything is generated; a failure is a 'generate_batch' error event per (tenant, AID)
   * (with the bindings asked for) and nothing is returned. Items in any order; each gets a
   * fresh key (two items with the same binding get two different keys, as two calls would).
   */
  generateKeys(ctx: CallerContext, items: GenerateItem[]): Promise<WrappedKey[]> {
    const list = Array.isArray(items) ? items.slice(0, MAX_GENERATE_BATCH) : [];
    const seals = list.flatMap((x) => (x && typeof x === 'object' && typeof x.kek === 'string' && x.binding && typeof x.binding === 'object' ? [{ key: x.kek, binding: x.binding }] : []));
    return this.run(ctx, 'generate_batch', { seals }, async (dd) => {
      if (!Array.isArray(items) || items.length === 0 || items.length > MAX_GENERATE_BATCH) throw new CustodyInputError(`items must be an array of 1..${MAX_GENERATE_BATCH} { kek, alg, binding }`);
      for (const x of items) {
        if (!x || typeof x !== 'object') throw new CustodyInputError('each item is { kek, alg, binding }');
        checkKeyName(x.kek);
        checkBinding(x.binding);
        checkCardKeyAlg(x.alg);
      }
      this.engine.assertReady();
      const per: Details[] = items.map(() => ({}));
      const out = await Promise.all(items.map((x, i) => this.generateOne(x.kek, x.alg, x.binding, per[i]!)));
      dd.seals = items.map((x, i) => ({ key: x.kek, ...(per[i]!.keyVersion !== undefined ? { keyVersion: per[i]!.keyVersion } : {}), binding: x.binding }));
      return out;
    });
  }

  /** Parse a blob for `kek` + `binding`; AAD mismatch is told apart from tampering by the fingerprint. */
  private openBlob(blob: string, binding: KeyBinding, d: Details): { version: number; payload: string; aad: Uint8Array } {
    const p = parseBlob(blob);
    if (p.backend !== this.engine.blobTag) throw new TamperedError(`blob was made by another backend ('${p.backend}')`);
    d.keyVersion = p.version;
    const aad = encodeBinding(binding);
    if (bindingFingerprint(aad) !== p.fingerprint) throw new AadMismatchError();
    return { version: p.version, payload: p.payload, aad };
  }

  rewrap(ctx: CallerContext, kek: string, blob: string, binding: KeyBinding): Promise<WrappedKey> {
    return this.run(ctx, 'rewrap', { key: kek, binding }, async (d) => {
      checkKeyName(kek);
      checkBinding(binding);
      this.engine.assertReady();
      const o = this.openBlob(blob, binding, d);
      if (this.engine.rewrap) {
        const { version, payload } = await this.engine.rewrap(kek, o.version, o.payload, o.aad);
        d.keyVersion = version;
        return { blob: formatBlob(this.engine.blobTag, version, o.aad, payload), kek, kekVersion: version };
      }
      const k = await this.engine.decrypt(kek, o.version, o.payload, o.aad);
      try {
        return await this.wrapBytes(kek, k, binding, d);
      } finally {
        wipe(k);
      }
    });
  }

  /**
   * Rewrap a batch. Audit: one 'rewrap_batch' event for the whole batch (appended before any new
   * blob is returned; refused = nothing released) naming the KEK, the target version, the count
   * per source version, the first and last binding and a SHA-256 over the encoded bindings of
   * every rewrapped blob in order (`batch.digest`), so each blob stays accounted for without one
   * durable write per blob; each failed item still gets its own 'rewrap' error event. Engines
   * with a native batch (`engine.rewrapMany`) get one call; the others decrypt + encrypt (or
   * `engine.rewrap`) per item.
   */
  async rewrapMany(ctx: CallerContext, kek: string, items: { blob: string; binding: KeyBinding }[]): Promise<(WrappedKey | CustodyErrorLike)[]> {
    this.checkCtx(ctx);
    if (!Array.isArray(items) || items.length > 10_000) throw new CustodyInputError('items must be an array of at most 10000 { blob, binding }');
    const fail = (e: unknown): CustodyErrorLike => ({ error: { code: (e as { code?: string }).code ?? 'ERR_CUSTODY_BACKEND', message: (e as Error).message } });
    checkKeyName(kek);
    // validate and open every blob first; only the valid ones go to the backend
    const out: (WrappedKey | CustodyErrorLike | undefined)[] = new Array(items.length);
    const batch: { i: number; binding: KeyBinding; version: number; payload: string; aad: Uint8Array; fingerprint: string }[] = [];
    const failed: { i: number; d: Details; e: unknown }[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      try {
        checkBinding(it?.binding);
        this.engine.assertReady();
        const p = parseBlob(it.blob);
        if (p.backend !== this.engine.blobTag) throw new TamperedError(`blob was made by another backend ('${p.backend}')`);
        const aad = encodeBinding(it.binding);
        const fingerprint = bindingFingerprint(aad);
        if (fingerprint !== p.fingerprint) throw new AadMismatchError();
        batch.push({ i, binding: it.binding, version: p.version, payload: p.payload, aad, fingerprint });
      } catch (e) {
        failed.push({ i, d: { key: kek, binding: it?.binding }, e });
      }
    }
    let results: ({ version: number; payload: string } | Error)[];
    try {
      results = !batch.length ? [] : this.engine.rewrapMany ? await this.engine.rewrapMany(kek, batch) : await this.rewrapEach(kek, batch);
    } catch (e) {
      results = batch.map(() => e as Error);
    }
    const done: { b: (typeof batch)[number]; version: number; payload: string }[] = [];
    for (let j = 0; j < batch.length; j++) {
      const r = results[j];
      if (r instanceof Error || !r) failed.push({ i: batch[j]!.i, d: { key: kek, binding: batch[j]!.binding, keyVersion: batch[j]!.version }, e: r ?? new CustodyError('ERR_CUSTODY_BACKEND', 'backend returned no result') });
      else done.push({ b: batch[j]!, version: r.version, payload: r.payload });
    }
    for (const f of failed) out[f.i] = await this.failed(ctx, 'rewrap', f.d, f.e).catch(fail);
    if (done.length) {
      const digest = createHash('sha256');
      const fromVersions: Record<string, number> = {};
      const toVersions = new Set<number>();
      for (const x of done) {
        digest.update(x.b.aad).update(NL);
        fromVersions[x.b.version] = (fromVersions[x.b.version] ?? 0) + 1;
        toVersions.add(x.version);
      }
      const e = this.event(ctx, 'rewrap_batch', 'ok', { key: kek, keyVersion: Math.max(...toVersions) });
      e.batch = { count: done.length, fromVersions, first: { ...done[0]!.b.binding }, last: { ...done[done.length - 1]!.b.binding }, digest: `sha256:${digest.digest('hex')}` };
      await this.append(e);
      for (const x of done) out[x.b.i] = { blob: `dcms1.${this.engine.blobTag}.${x.version}.${x.b.fingerprint}.${x.payload}`, kek, kekVersion: x.version };
    }
    return out as (WrappedKey | CustodyErrorLike)[];
  }

  /** rewrapMany for engines without a native batch: per item, the plaintext wiped at once. */
  private async rewrapEach(kek: string, batch: { version: number; payload: string; aad: Uint8Array }[]): Promise<({ version: number; payload: string } | Error)[]> {
    const out: ({ version: number; payload: string } | Error)[] = [];
    for (const b of batch) {
      try {
        if (this.engine.rewrap) {
          out.push(await this.engine.rewrap(kek, b.version, b.payload, b.aad));
          continue;
        }
        const k = await this.engine.decrypt(kek, b.version, b.payload, b.aad);
        try {
          out.push(await this.engine.encrypt(kek, k, b.aad));
        } finally {
          wipe(k);
        }
      } catch (e) {
        out.push(e as Error);
      }
    }
    return out;
  }

  verifyWrapped(ctx: CallerContext, kek: string, blob: string, binding: KeyBinding): Promise<{ kekVersion: number }> {
    return this.run(ctx, 'verify_wrapped', { key: kek, binding }, async (d) => {
      checkKeyName(kek);
      checkBinding(binding);
      this.engine.assertReady();
      const o = this.openBlob(blob, binding, d);
      wipe(await this.engine.decrypt(kek, o.version, o.payload, o.aad));
      return { kekVersion: o.version };
    });
  }

  // ---- release --------------------------------------------------------------------------------

  private sourceDetails(source: KeySource): Details {
    if (!source || typeof source !== 'object') return {};
    return source.kind === 'wrapped' ? { key: source.kek, binding: source.binding } : { key: source.master, keyVersion: source.masterVersion, binding: source.binding };
  }

  private checkSource(source: KeySource): void {
    if (!source || (source.kind !== 'wrapped' && source.kind !== 'diversified')) throw new CustodyInputError("key source kind must be 'wrapped' or 'diversified'");
    checkBinding(source.binding);
    if (source.kind === 'wrapped') {
      checkKeyName(source.kek);
    } else {
      checkKeyName(source.master);
      if (source.masterVersion !== undefined) checkVersion(source.masterVersion, 'masterVersion');
      if (!(source.input instanceof Uint8Array) || source.input.length === 0 || source.input.length > maxDiversificationInput('aes128'))
        throw new CustodyInputError('diversification input must be 1..31 bytes');
    }
  }

  /** Unwrap or derive: the plaintext stays inside custody (callers below wipe it). */
  private async obtain(source: KeySource, d: Details): Promise<Uint8Array> {
    if (source.kind === 'wrapped') {
      const o = this.openBlob(source.blob, source.binding, d);
      return this.engine.decrypt(source.kek, o.version, o.payload, o.aad);
    }
    const { version, key } = await this.engine.derive(source.master, source.masterVersion, source.input);
    d.keyVersion = version;
    return key;
  }

  seal(ctx: CallerContext, source: KeySource, recipient: ReaderRecipient, opts: SealOptions = {}): Promise<SealedKey> {
    // the same details (and key order) as { ...sourceDetails, recipient, mode }, without the spread:
    // V8 (Node 20) builds `{ ...x, more }` on a slow path, ~3 us per delivery measured
    const d = this.sourceDetails(source);
    d.recipient = recipient?.readerId;
    d.mode = opts.mode ?? 'session';
    return this.sealOne(ctx, source, recipient, opts, d);
  }

  /**
   * `seal` as `run` would do it (the same checks in the same order, the same events), without
   * run's closure per delivery; the session seal is synchronous when the reader's session is cached.
   */
  private async sealOne(ctx: CallerContext, source: KeySource, recipient: ReaderRecipient, opts: SealOptions, d: Details): Promise<SealedKey> {
    this.checkCtx(ctx);
    let r: SealedKey;
    try {
      this.checkSource(source);
      this.sealer.check(recipient, opts);
      this.engine.assertReady();
      const key = await this.obtain(source, d);
      try {
        r = this.sealer.sealCached(key, source.binding, recipient, opts) ?? (await this.sealer.seal(key, source.binding, recipient, opts));
      } finally {
        wipe(key);
      }
    } catch (e) {
      return this.failed(ctx, 'seal', d, e);
    }
    await this.append(this.event(ctx, 'seal', 'ok', d));
    return r;
  }

  /**
   * Seal several keys to ONE reader (a station job's keys): all or nothing. Audited as
   * 'seal_batch' events — one per (tenant, AID) of the keys (`events`: the issuer's CMK in its
   * own, each tenant's application keys in theirs), handed to the sink together, all durable
   * before any sealed key is returned (one refused = nothing released) — each naming the recipient
   * and, per key, its binding (tenant, AID, UID, keyNo, version), the KEK or master and its
   * version — what one 'seal' event per key would say. A failure is a 'seal_batch' error event per
   * (tenant, AID) (with the bindings asked for) and nothing is returned.
   */
  sealMany(ctx: CallerContext, sources: KeySource[], recipient: ReaderRecipient, opts: SealOptions = {}): Promise<SealedKey[]> {
    const list = Array.isArray(sources) ? sources.slice(0, MAX_SEAL_BATCH) : [];
    const seals = list.map((s) => this.sourceDetails(s)).flatMap((x) => (x.binding && typeof x.binding === 'object' && x.key !== undefined ? [{ key: x.key, ...(x.keyVersion !== undefined ? { keyVersion: x.keyVersion } : {}), binding: x.binding }] : []));
    const d: Details = { recipient: recipient?.readerId, mode: opts.mode ?? 'session', seals };
    return this.run(ctx, 'seal_batch', d, async (dd) => {
      if (!Array.isArray(sources) || sources.length === 0 || sources.length > MAX_SEAL_BATCH) throw new CustodyInputError(`sources must be an array of 1..${MAX_SEAL_BATCH} key sources`);
      for (const s of sources) this.checkSource(s);
      this.sealer.check(recipient, opts);
      this.engine.assertReady();
      // every key's details (the KEK/master version actually used) go into the one event
      const per: Details[] = sources.map((s) => this.sourceDetails(s));
      const out = await Promise.all(
        sources.map(async (s, i) => {
          const key = await this.obtain(s, per[i]!);
          try {
            return await this.sealer.seal(key, s.binding, recipient, opts);
          } finally {
            wipe(key);
          }
        }),
      );
      dd.seals = per.map((x) => ({ key: x.key!, ...(x.keyVersion !== undefined ? { keyVersion: x.keyVersion } : {}), binding: x.binding! }));
      return out;
    });
  }

  exportForCard(ctx: CallerContext, source: KeySource): Promise<Uint8Array> {
    return this.run(
      ctx,
      'export_for_card',
      this.sourceDetails(source),
      async (d) => {
        this.checkSource(source);
        this.engine.assertReady();
        return this.obtain(source, d);
      },
      (k) => wipe(k),
    );
  }

  /**
   * Export a key version sealed to `recipient` (export.ts). Checks first (name, recipient key,
   * backend able to export, vault unsealed, version usable), audits 'requested', runs
   * `authorise` (e.g. consumes the approval), then reads, seals and wipes the material.
   */
  async exportKey(ctx: CallerContext, name: string, recipient: ExportRecipient, opts: KeyExportOptions = {}): Promise<KeyExport> {
    const d: Details = { key: name };
    this.checkCtx(ctx);
    let thumbprint: string;
    try {
      checkKeyName(name);
      if (opts.version !== undefined) checkVersion(opts.version);
      thumbprint = await recipientThumbprint(recipient);
      d.recipient = `jwk:${thumbprint}`;
      if (!this.engine.exportMaterial) throw new NotExtractableError(`the ${this.backend} backend's keys cannot leave it (non-extractable)`);
      this.engine.assertReady();
      const info = await this.engine.getKey(name);
      const v = opts.version ?? info.latestVersion;
      checkDecryptVersion(info, v);
      d.keyVersion = v;
    } catch (e) {
      return this.failed(ctx, 'export_key', d, e);
    }
    await this.append(this.event(ctx, 'export_key', 'requested', d));
    let out: KeyExport;
    try {
      await opts.authorise?.();
      const { version, material } = await this.engine.exportMaterial(name, d.keyVersion);
      try {
        const info = await this.engine.getKey(name);
        const claim = { key: name, kv: version, alg: info.alg, purpose: info.purpose, iat: Math.floor(this.now() / 1000) };
        const s = await sealExport(material, claim, recipient);
        out = { format: 'jwe-compact', jwe: s.jwe, key: name, version, alg: info.alg, purpose: info.purpose, recipient: thumbprint };
      } finally {
        wipe(material);
      }
    } catch (e) {
      return this.failed(ctx, 'export_key', d, e);
    }
    await this.append(this.event(ctx, 'export_key', 'ok', d));
    return out;
  }

  /** End a reader's sealing session (e.g. on certificate revocation). */
  endReaderSession(readerId: string): void {
    this.sealer.endSession(readerId);
  }

  async close(): Promise<void> {
    this.sealer.clear();
    await this.engine.close();
  }

  /**
   * Seal an AN10922 master itself to a reader for offline use (seal-master.ts): nothing derived,
   * audited as 'seal_master'; ERR_CUSTODY_NOT_EXTRACTABLE on backends whose masters cannot leave.
   */
  sealMaster(ctx: CallerContext, req: MasterRequest, recipient: ReaderRecipient, opts: MasterSealOptions = {}): Promise<SealedMaster> {
    return this.run(ctx, 'seal_master', { key: req?.master, keyVersion: req?.masterVersion, recipient: recipient?.readerId }, (d) => sealMasterWith(this.engine, req, recipient, opts, d, this.now));
  }
}

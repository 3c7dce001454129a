// The KeyCustody interface: the only way anything above src/custody touches key material.
//
// - Named keys with versions. A key has a purpose: 'wrap' (a KEK: wraps/unwraps other keys,
//   AES-256) or 'diversify' (an AN10922 master: AES-128, 2K3DES or 3K3DES). Versions start at 1;
//   `rotate` adds one. Each key has a minimum decryption version (older versions may no longer
//   unwrap/derive) and a minimum encryption version (new wraps use the latest version, which must
//   be >= it). A version can be disabled (refused until... never re-enabled by this interface)
//   or destroyed (its material erased; blobs under it are lost for good).
// - wrap/unwrap are bound to associated data (KeyBinding). Unwrapped plaintext never goes back to
//   the caller: it is sealed to a reader (`seal`), or re-wrapped (`rewrap`), or — through the
//   separately named and audited `exportForCard` — handed to in-process station / remote-mode
//   code that must run card cryptography itself.
// - Every call takes a CallerContext and emits an AuditEvent; when the sink refuses, the
//   operation is refused and nothing is released (see audit.ts).
import type { DiversifyAlg } from '../core/crypto/an10922.js';
import type { ExportRecipient, KeyExport, KeyExportOptions } from './export.js';
import type { MasterRequest, MasterSealOptions, SealedMaster } from './seal-master.js';
import type { ReaderRecipient, SealedKey } from './sealed.js';

export type { DiversifyAlg } from '../core/crypto/an10922.js';

/** Who asks, why, and the request it belongs to. All three are required and end up in the audit log. */
export interface CallerContext {
  actor: string;
  purpose: string;
  correlationId: string;
}

export type KeyPurpose = 'wrap' | 'diversify';

/** Card key algorithms custody can generate, wrap and diversify. */
export type CardKeyAlg = DiversifyAlg;

export type KeySpec = { purpose: 'wrap' } | { purpose: 'diversify'; alg: DiversifyAlg };

export type VersionState = 'active' | 'disabled' | 'destroyed';

export interface KeyVersionInfo {
  version: number;
  state: VersionState;
  /** ISO 8601. */
  createdAt: string;
}

export interface KeyInfo {
  name: string;
  purpose: KeyPurpose;
  /** 'aes256' for wrap keys, the diversification algorithm for masters. */
  alg: 'aes256' | DiversifyAlg;
  latestVersion: number;
  minDecryptionVersion: number;
  minEncryptionVersion: number;
  versions: KeyVersionInfo[];
}

export interface MinVersions {
  minDecryptionVersion?: number;
  minEncryptionVersion?: number;
}

/**
 * The associated data a per-card key is bound to. `version` is the card key's version (the
 * DESFire key version byte), not the KEK's. AID and UID are hex (AID 3 bytes as sent, LSB first;
 * UID 4, 7 or 10 bytes).
 */
export interface KeyBinding {
  tenant: string;
  aid: string;
  uid: string;
  keyNo: number;
  version: number;
}

/** A wrapped key: an opaque, storable string (no plaintext) and the KEK version it is under. */
export interface WrappedKey {
  blob: string;
  kek: string;
  kekVersion: number;
}

/** Where a card key comes from: a wrapped blob, or AN10922 diversification of a master. */
export type KeySource =
  | { kind: 'wrapped'; kek: string; blob: string; binding: KeyBinding }
  | {
      kind: 'diversified';
      master: string;
      /** Master version; default: the latest version. */
      masterVersion?: number;
      /** The AN10922 diversification input, e.g. UID || AID || system identifier (<= 31 bytes AES, 15 DES). */
      input: Uint8Array;
      binding: KeyBinding;
    };

export interface SealOptions {
  /** Lifetime of the delivery in seconds (default 600, max 86400). */
  ttlSeconds?: number;
  /**
   * 'session' (default): AES-256-GCM JWE ("dir") under a per-reader session key that is
   * delivered once by ECDH-ES+A256KW; 'ecdh-es': every delivery is its own ECDH-ES+A256KW JWE.
   */
  mode?: 'session' | 'ecdh-es';
}

/** One key of a `generateKeys` batch: a random card key of `alg` wrapped under `kek` for `binding`. */
export interface GenerateItem {
  kek: string;
  alg: CardKeyAlg;
  binding: KeyBinding;
}

/** A per-item failure in a batch: the typed error's code and message. */
export interface CustodyErrorLike {
  error: { code: string; message: string };
}

export interface KeyCustody {
  /** 'embedded' | 'pkcs11' | 'vault-transit'. */
  readonly backend: string;

  createKey(ctx: CallerContext, name: string, spec: KeySpec): Promise<KeyInfo>;
  /**
   * Create a key (version 1) from existing material, e.g. a diversification master migrated from
   * another system. Audited; the material is copied into custody and the caller should wipe it.
   */
  importKey(ctx: CallerContext, name: string, spec: KeySpec, material: Uint8Array): Promise<KeyInfo>;
  rotateKey(ctx: CallerContext, name: string): Promise<KeyInfo>;
  getKey(ctx: CallerContext, name: string): Promise<KeyInfo>;
  /** Several keys' info at once (all or nothing), audited as ONE 'get_keys' event naming them. */
  getKeys(ctx: CallerContext, names: string[]): Promise<KeyInfo[]>;
  listKeys(ctx: CallerContext): Promise<KeyInfo[]>;
  listVersions(ctx: CallerContext, name: string): Promise<KeyVersionInfo[]>;
  setMinVersions(ctx: CallerContext, name: string, min: MinVersions): Promise<KeyInfo>;
  disableVersion(ctx: CallerContext, name: string, version: number): Promise<KeyInfo>;
  destroyVersion(ctx: CallerContext, name: string, version: number): Promise<KeyInfo>;

  /** Wrap caller-supplied key bytes (an import) under the latest version of `kek`, bound to `binding`. */
  wrap(ctx: CallerContext, kek: string, plaintext: Uint8Array, binding: KeyBinding): Promise<WrappedKey>;
  /** Generate a random card key inside custody; only its wrapped form is returned. */
  generateKey(ctx: CallerContext, kek: string, alg: CardKeyAlg, binding: KeyBinding): Promise<WrappedKey>;
  /**
   * Several random card keys in one call (e.g. a card's CMK and its random application keys, each
   * under its own KEK): all or nothing, one WrappedKey per item in order, audited as ONE
   * 'generate_batch' event per (tenant, AID) of the keys (each naming only those keys' KEK, KEK
   * version and binding; all durable before anything is returned). At most 64 items.
   */
  generateKeys(ctx: CallerContext, items: GenerateItem[]): Promise<WrappedKey[]>;
  /** Re-wrap a blob under the latest version of its KEK; the plaintext never leaves custody. */
  rewrap(ctx: CallerContext, kek: string, blob: string, binding: KeyBinding): Promise<WrappedKey>;
  /**
   * Re-wrap many blobs (e.g. after a KEK rotation or a suspected compromise); one result per item,
   * in order: the new WrappedKey or the typed error for that item. Audited as one 'rewrap_batch' event per call (count, versions, first/last binding, digest of the bindings) and one 'rewrap' error event per failed item.
   */
  rewrapMany(ctx: CallerContext, kek: string, items: { blob: string; binding: KeyBinding }[]): Promise<(WrappedKey | CustodyErrorLike)[]>;
  /** Check that a blob unwraps under `binding` without releasing anything. */
  verifyWrapped(ctx: CallerContext, kek: string, blob: string, binding: KeyBinding): Promise<{ kekVersion: number }>;

  /** Unwrap or derive a card key and release it only sealed to a reader's P-256 key. */
  seal(ctx: CallerContext, source: KeySource, recipient: ReaderRecipient, opts?: SealOptions): Promise<SealedKey>;

  /**
   * Seal several keys to one reader (a station job's keys), all or nothing, audited as ONE
   * 'seal_batch' event per (tenant, AID) of the keys, each naming the reader and those keys'
   * bindings (tenant, AID, UID, keyNo, version) and KEK/master versions — so each tenant's audit
   * view shows the release of its keys and nothing of another tenant's; all durable before any
   * sealed key is returned. At most 16 sources.
   */
  sealMany(ctx: CallerContext, sources: KeySource[], recipient: ReaderRecipient, opts?: SealOptions): Promise<SealedKey[]>;

  /**
   * The one plaintext path: unwrap or derive a card key for in-process station / remote-mode code
   * that runs DESFire authentication itself. Audited as op 'export_for_card'. The caller wipes it.
   */
  exportForCard(ctx: CallerContext, source: KeySource): Promise<Uint8Array>;

  /**
   * Seal an AN10922 diversification master itself (no derivation) to a reader, for offline use
   * with cards it has not seen (seal-master.ts). Audited as 'seal_master'. A much wider release
   * than a per-card key: callers gate it (src/cms/delivery/masters.ts: role flag 'offline-master').
   * ERR_CUSTODY_NOT_EXTRACTABLE on PKCS#11, and on Vault Transit unless exportableMasters.
   */
  sealMaster(ctx: CallerContext, req: MasterRequest, recipient: ReaderRecipient, opts?: MasterSealOptions): Promise<SealedMaster>;

  /**
   * Export a key version sealed to a recipient public key (JWE ECDH-ES, export.ts). Audited as
   * 'export_key' (requested, then ok/error). ERR_CUSTODY_NOT_EXTRACTABLE on backends whose keys
   * cannot leave them. Optional: wrappers without it cannot export.
   */
  exportKey?(ctx: CallerContext, name: string, recipient: ExportRecipient, opts?: KeyExportOptions): Promise<KeyExport>;

  /** Wipe in-memory key material and release resources. */
  close(): Promise<void>;
}

// Audit entries: the input a caller gives, validation (including the guard against key
// material), and the canonical byte encoding that is hashed into the Merkle tree. Pure.
import { utf8 } from './crypto.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** What a caller records. Identifiers only: never a key byte. */
export interface AuditInput {
  /** ms since the epoch; default: now. */
  time?: number;
  /** Operator or service that acted (user id, token id, 'system'). */
  actor?: string | null;
  readerId?: string | null;
  /** Card UID, hex. */
  cardUid?: string | null;
  tenant?: string | null;
  /** AID, hex (6 digits). */
  aid?: string | null;
  keyNo?: number | null;
  keyVersion?: number | null;
  /** Dotted operation name, e.g. 'key.release', 'card.authenticate', 'custody.seal'. */
  operation: string;
  /** 'ok', 'error', 'denied', 'requested', ... */
  result: string;
  correlationId?: string | null;
  /** Extra identifiers (error code, address, counts); checked for key-looking material. */
  details?: Record<string, Json>;
}

/** A stored entry: every field present (null when absent) plus its position. */
export interface AuditEntry {
  index: number;
  time: number;
  actor: string | null;
  readerId: string | null;
  cardUid: string | null;
  tenant: string | null;
  aid: string | null;
  keyNo: number | null;
  keyVersion: number | null;
  operation: string;
  result: string;
  correlationId: string | null;
  details: Record<string, Json>;
}

/**
 * `e` with its index: the same fields as `{ ...e, index }`, built as one literal — V8 copies an
 * object spread with an added property on a slow path (~2 us per entry measured here, twice per
 * entry on the append path).
 */
export function withIndex(e: Omit<AuditEntry, 'index'>, index: number): AuditEntry {
  return {
    index,
    time: e.time,
    actor: e.actor,
    readerId: e.readerId,
    cardUid: e.cardUid,
    tenant: e.tenant,
    aid: e.aid,
    keyNo: e.keyNo,
    keyVersion: e.keyVersion,
    operation: e.operation,
    result: e.result,
    correlationId: e.correlationId,
    details: e.details,
  };
}

export type AuditErrorCode =
  | 'ERR_AUDIT_INPUT' // malformed entry
  | 'ERR_AUDIT_KEY_MATERIAL' // an entry carried something that looks like key material
  | 'ERR_AUDIT_UNAVAILABLE' // the store could not make the entry durable (fail closed)
  | 'ERR_AUDIT_BACKPRESSURE' // the bounded queue is full
  | 'ERR_AUDIT_CLOSED' // the log was closed
  | 'ERR_AUDIT_PROOF' // a proof was asked for a size/index the log does not have
  | 'ERR_AUDIT_SIGNER'; // checkpoint key missing or malformed

export class AuditError extends Error {
  readonly code: AuditErrorCode;
  constructor(code: AuditErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'AuditError';
  }
}

const MAX_STR = 256;
const MAX_DETAILS = 4096;
/** Property names that never belong in an audit entry. */
const SECRET_NAME = /(secret|passw|passphrase|plaintext|private|privkey|sessionkey|keybytes|keymaterial|rawkey|keyvalue|masterkey|^key$|^kek$|^pin$|seed|token$)/i;
/** A hex string of exactly 8, 16, 24 or 32 bytes (DES, 2K3DES, 3K3DES, AES-128/256 key sizes). */
const KEY_HEX = /^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/;
/** The same for the entry's top-level identifiers: 16, 24 or 32 bytes. */
const KEY_HEX_LONG = /^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/;
const KEY_B64 = /^(?:[A-Za-z0-9+/]{22}==|[A-Za-z0-9+/]{43}=)$/;
/** Unpadded base64url of 16 or 32 bytes that looks random (upper, lower and digits mixed). */
const KEY_B64URL = /^(?=[^]*[A-Z])(?=[^]*[a-z])(?=[^]*[0-9])(?:[A-Za-z0-9_-]{22}|[A-Za-z0-9_-]{43})$/;
const CARD_UID = /^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{14}|[0-9A-Fa-f]{20})$/;
const AID = /^[0-9A-Fa-f]{6}$/;

function str(name: string, v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_STR) {
    throw new AuditError('ERR_AUDIT_INPUT', `${name} must be a non-empty string of at most ${MAX_STR} characters`);
  }
  // KEY_HEX_LONG matches 32, 48 or 64 characters only: other lengths skip the regex
  const n = v.length;
  if ((n === 32 || n === 48 || n === 64) && KEY_HEX_LONG.test(v) && name !== 'correlationId') throw new AuditError('ERR_AUDIT_KEY_MATERIAL', `${name} looks like key material (refused)`);
  return v;
}

/** Whether a details string has the length of one KEY_HEX, KEY_B64 or KEY_B64URL could match (16, 22, 24, 32, 43, 44, 48, 64). */
function keyLength(n: number): boolean {
  return n === 16 || n === 22 || n === 24 || n === 32 || n === 43 || n === 44 || n === 48 || n === 64;
}

/** SECRET_NAME's answer per property name already seen (names repeat: a handful per entry kind); bounded. */
const secretNameSeen = new Map<string, boolean>();

function secretName(k: string): boolean {
  let r = secretNameSeen.get(k);
  if (r === undefined) {
    r = SECRET_NAME.test(k);
    if (k.length <= 64) {
      if (secretNameSeen.size >= 1024) secretNameSeen.clear();
      secretNameSeen.set(k, r);
    }
  }
  return r;
}

/** The longest JSON.stringify text of a finite number (sign, 17 digits, point, exponent). */
const MAX_NUMBER_TEXT = 25;

function int(name: string, v: unknown, max: number): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw new AuditError('ERR_AUDIT_INPUT', `${name} must be an integer in [0, ${max}]`);
  return v;
}

/** A refused member's path, built only when it is refused: `.name` per key, `[i]` per index. */
function pathOf(at: readonly (string | number)[]): string {
  let p = '';
  for (const s of at) p += typeof s === 'number' ? `[${s}]` : `.${s}`;
  return p;
}

/**
 * The details checks; throws AuditError naming the refused member's path (`at`: the keys and
 * indexes down to `v`, pushed and popped as the walk goes — no string per member). Answers an
 * upper bound of the length of JSON.stringify(v) (a string counts 6 characters per code unit,
 * the longest escape), so the exact length is measured only when the bound exceeds the limit.
 */
function checkDetails(v: unknown, at: (string | number)[], depth: number): number {
  if (depth > 6) throw new AuditError('ERR_AUDIT_INPUT', `details nest too deep at ${pathOf(at)}`);
  if (v === null) return 4;
  if (typeof v === 'boolean') return 5;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new AuditError('ERR_AUDIT_INPUT', `details${pathOf(at)} must be a finite number`);
    return MAX_NUMBER_TEXT;
  }
  if (typeof v === 'string') {
    if (keyLength(v.length) && (KEY_HEX.test(v) || KEY_B64.test(v) || KEY_B64URL.test(v))) throw new AuditError('ERR_AUDIT_KEY_MATERIAL', `details${pathOf(at)} looks like key material (refused)`);
    return 2 + 6 * v.length;
  }
  if (typeof v !== 'object') throw new AuditError('ERR_AUDIT_INPUT', `details${pathOf(at)} must be JSON`);
  if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
    throw new AuditError('ERR_AUDIT_KEY_MATERIAL', `details${pathOf(at)} is binary (refused: audit entries carry identifiers only)`);
  }
  if (Array.isArray(v)) {
    let n = 2 + v.length;
    for (let i = 0; i < v.length; i++) {
      at.push(i);
      n += checkDetails(v[i], at, depth + 1);
      at.pop();
    }
    return n;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) throw new AuditError('ERR_AUDIT_INPUT', `details${pathOf(at)} must be plain JSON`);
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  let n = 2 + keys.length;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    if (secretName(k)) throw new AuditError('ERR_AUDIT_KEY_MATERIAL', `details${pathOf(at)}.${k}: a field of that name is refused in the audit log`);
    at.push(k);
    n += 3 + 6 * k.length + checkDetails(o[k], at, depth + 1);
    at.pop();
  }
  return n;
}

/**
 * Validate an input and fill in defaults; throws AuditError (ERR_AUDIT_INPUT or
 * ERR_AUDIT_KEY_MATERIAL). The key-material guard is a second line of defence: callers pass
 * identifiers only (key names, numbers, versions), and any field that looks like a key (a hex
 * or base64 string of a key's length, binary data, a field named secret/plaintext/...) makes
 * the whole entry refused, so a caller's mistake surfaces in tests instead of in the log.
 */
export function normalizeInput(input: AuditInput, now: number): Omit<AuditEntry, 'index'> {
  if (typeof input !== 'object' || input === null) throw new AuditError('ERR_AUDIT_INPUT', 'an audit entry must be an object');
  const time = input.time === undefined ? now : input.time;
  if (typeof time !== 'number' || !Number.isSafeInteger(time) || time < 0) throw new AuditError('ERR_AUDIT_INPUT', 'time must be a non-negative integer (ms)');
  const operation = str('operation', input.operation);
  const result = str('result', input.result);
  if (operation === null || result === null) throw new AuditError('ERR_AUDIT_INPUT', 'operation and result are required');
  const cardUid = str('cardUid', input.cardUid);
  if (cardUid !== null && !CARD_UID.test(cardUid)) throw new AuditError('ERR_AUDIT_INPUT', 'cardUid must be 4, 7 or 10 bytes of hex');
  const aid = str('aid', input.aid);
  if (aid !== null && !AID.test(aid)) throw new AuditError('ERR_AUDIT_INPUT', 'aid must be 3 bytes of hex');
  const details = input.details ?? {};
  if (typeof details !== 'object' || details === null || Array.isArray(details)) throw new AuditError('ERR_AUDIT_INPUT', 'details must be an object');
  const bound = checkDetails(details, [], 0);
  // checkDetails admitted plain JSON only (no undefined, functions, toJSON objects, non-finite
  // numbers), for which JSON.stringify writes exactly the characters of canonicalJson, in another
  // key order: the same length, without sorting and joining every object's keys; not measured at
  // all when the bound (6 characters per string code unit) is within the limit
  if (bound > MAX_DETAILS && JSON.stringify(details).length > MAX_DETAILS) throw new AuditError('ERR_AUDIT_INPUT', `details exceed ${MAX_DETAILS} characters`);
  return {
    time,
    actor: str('actor', input.actor),
    readerId: str('readerId', input.readerId),
    cardUid: cardUid?.toUpperCase() ?? null,
    tenant: str('tenant', input.tenant),
    aid: aid?.toUpperCase() ?? null,
    keyNo: int('keyNo', input.keyNo, 255),
    keyVersion: int('keyVersion', input.keyVersion, 2 ** 31),
    operation,
    result,
    correlationId: str('correlationId', input.correlationId),
    details: details as Record<string, Json>,
  };
}

/** Canonical JSON: object keys sorted (by UTF-16 code units), no whitespace (RFC 8785 style). */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new AuditError('ERR_AUDIT_INPUT', 'non-finite number');
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k])).join(',') + '}';
  }
  throw new AuditError('ERR_AUDIT_INPUT', `not JSON: ${typeof v}`);
}

const INDEX_KEY = /^(?:0|[1-9]\d*)$/;
/** Returned by sortedDeep when an object has integer-like keys (engines reorder those). */
const FALLBACK = Symbol('fallback');

/**
 * `v` with every object's keys in sorted order (the same object when it already is), so one
 * native JSON.stringify yields canonical JSON: JSON.stringify keeps insertion order for
 * non-integer keys, and escapes strings and formats numbers exactly as canonicalJson does.
 */
function sortedDeep(v: unknown): unknown {
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'number' && !Number.isFinite(v)) throw new AuditError('ERR_AUDIT_INPUT', 'non-finite number');
    return v;
  }
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x = sortedDeep(v[i]);
      if (x === FALLBACK) return FALLBACK;
      if (x === undefined) throw new AuditError('ERR_AUDIT_INPUT', 'not JSON: undefined');
      if (x !== v[i]) (out ??= v.slice())[i] = x;
    }
    return out ?? v;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  let sorted = true;
  for (let i = 0; i < keys.length; i++) {
    const c = keys[i]!.charCodeAt(0);
    if (c >= 48 && c <= 57 && INDEX_KEY.test(keys[i]!)) return FALLBACK; // index keys start with a digit
    if (i > 0 && keys[i - 1]! >= keys[i]!) sorted = false;
  }
  let out: Record<string, unknown> | undefined;
  if (!sorted) out = emptyFor(keys);
  const order = sorted ? keys : keys.sort();
  for (const k of order) {
    const x = o[k];
    if (x === undefined) {
      out ??= copyUntil(o, order, k);
      continue;
    }
    const y = sortedDeep(x);
    if (y === FALLBACK) return FALLBACK;
    if (y !== x && !out) out = copyUntil(o, order, k);
    if (out) out[k] = y;
  }
  return out ?? o;
}

/**
 * An empty object to copy `keys` into by assignment: a plain `{}` (JSON.stringify walks it on its
 * fast path: ~0.5 us less per custody entry than a null-prototype object, which V8 keeps in
 * dictionary mode) unless a key is `__proto__`, which assigned to a plain object would set its
 * prototype instead of adding the member.
 */
function emptyFor(keys: string[]): Record<string, unknown> {
  for (let i = 0; i < keys.length; i++) if (keys[i] === '__proto__') return Object.create(null) as Record<string, unknown>;
  return {};
}

function copyUntil(o: Record<string, unknown>, order: string[], stop: string): Record<string, unknown> {
  const out = emptyFor(order);
  for (const k of order) {
    if (k === stop) break;
    if (o[k] !== undefined) out[k] = o[k];
  }
  return out;
}

/**
 * The canonical JSON text of an entry (version 1): canonicalJson() of the object
 * {v:1, index, time, actor, readerId, cardUid, tenant, aid, keyNo, keyVersion, operation,
 * result, correlationId, details}, produced by one native JSON.stringify of the same object
 * built in sorted key order (a property test checks it equals canonicalJson).
 */
export function canonicalEntry(e: AuditEntry): string {
  const details = sortedDeep(e.details);
  if (details === FALLBACK) return canonicalJson({ v: 1, ...e });
  return JSON.stringify({
    actor: e.actor,
    aid: e.aid,
    cardUid: e.cardUid,
    correlationId: e.correlationId,
    details,
    index: e.index,
    keyNo: e.keyNo,
    keyVersion: e.keyVersion,
    operation: e.operation,
    readerId: e.readerId,
    result: e.result,
    tenant: e.tenant,
    time: e.time,
    v: 1,
  });
}

/** The exact bytes hashed as the Merkle leaf of an entry (version 1). */
export function encodeEntry(e: AuditEntry): Uint8Array {
  return utf8.encode(canonicalEntry(e));
}

/** The canonical text always ends with this member (v sorts after every other field). */
export const CANONICAL_TAIL = ',"v":1}';

/**
 * The entry as an export writes it: its canonical text without the trailing `"v":1` member,
 * i.e. valid JSON of the entry object with keys in canonical order. A verifier can rebuild
 * the leaf bytes from it without parsing (canonicalFromExport) and fall back to parsing when
 * the text is not in that form (older exports, hand-edited lines).
 */
export function exportEntryText(e: AuditEntry): string {
  const t = canonicalEntry(e);
  if (!t.endsWith(CANONICAL_TAIL)) throw new AuditError('ERR_AUDIT_INPUT', 'canonical entry text has an unexpected tail');
  return t.slice(0, t.length - CANONICAL_TAIL.length) + '}';
}

/** Inverse of exportEntryText: the canonical leaf text of an exported entry text. */
export function canonicalFromExport(text: string): string {
  return text.slice(0, text.length - 1) + CANONICAL_TAIL;
}

const FIELDS: [keyof AuditEntry, 'string' | 'int' | 'nstring' | 'nint' | 'object'][] = [
  ['index', 'int'],
  ['time', 'int'],
  ['actor', 'nstring'],
  ['readerId', 'nstring'],
  ['cardUid', 'nstring'],
  ['tenant', 'nstring'],
  ['aid', 'nstring'],
  ['keyNo', 'nint'],
  ['keyVersion', 'nint'],
  ['operation', 'string'],
  ['result', 'string'],
  ['correlationId', 'nstring'],
  ['details', 'object'],
];

const FIELD_NAMES = new Set<string>(FIELDS.map(([f]) => f));

/** Shape check of an entry read from an export (no key-material heuristics: just types). */
export function parseEntry(v: unknown): AuditEntry | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'entry is not an object';
  const o = v as Record<string, unknown>;
  for (const k in o) if (!FIELD_NAMES.has(k)) return `unexpected field '${k}'`;
  for (const [f, t] of FIELDS) {
    const x = o[f];
    const ok =
      t === 'string'
        ? typeof x === 'string'
        : t === 'nstring'
          ? x === null || typeof x === 'string'
          : t === 'int'
            ? Number.isSafeInteger(x) && (x as number) >= 0
            : t === 'nint'
              ? x === null || Number.isSafeInteger(x)
              : typeof x === 'object' && x !== null && !Array.isArray(x);
    if (!ok) return `field '${f}' is missing or has the wrong type`;
  }
  return o as unknown as AuditEntry;
}

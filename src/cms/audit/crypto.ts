// The two primitives the pure audit code needs, injected so that merkle.ts, checkpoint.ts and
// verify.ts never import Node (they can be bundled for a browser, which would pass WebCrypto-
// or library-backed implementations). node-crypto.ts provides the Node implementation.
export interface AuditCrypto {
  /** SHA-256 of the concatenation of parts. */
  sha256(...parts: Uint8Array[]): Uint8Array;
  /** Ed25519 verification with a raw 32-byte public key. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

// --- small pure encoders (no Buffer: browser-safe) -------------------------------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));

export function toBase64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!;
    const b = i + 1 < bytes.length ? bytes[i + 1]! : 0;
    const c = i + 2 < bytes.length ? bytes[i + 2]! : 0;
    const n = (a << 16) | (b << 8) | c;
    out += B64[(n >> 18) & 63]! + B64[(n >> 12) & 63]!;
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63]! : '=';
    out += i + 2 < bytes.length ? B64[n & 63]! : '=';
  }
  return out;
}

/** Strict standard base64 (padding required); undefined when malformed. */
export function fromBase64(s: string): Uint8Array | undefined {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const n =
      (B64_INDEX.get(s[i]!)! << 18) |
      (B64_INDEX.get(s[i + 1]!)! << 12) |
      ((B64_INDEX.get(s[i + 2]!) ?? 0) << 6) |
      (B64_INDEX.get(s[i + 3]!) ?? 0);
    if (o < out.length) out[o++] = (n >> 16) & 255;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  if (toBase64(out) !== s) return undefined; // non-canonical trailing bits
  return out;
}

const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
export function hex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX2[bytes[i]!]!;
  return s;
}

/** Lowercase/uppercase hex to bytes; undefined when malformed. */
export function unhex(s: string): Uint8Array | undefined {
  if (typeof s !== 'string' || s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export const utf8 = new TextEncoder();

function nibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 32;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** Does the hex string `s` (either case) spell exactly `bytes`? No allocation. */
export function hexEquals(bytes: Uint8Array, s: string): boolean {
  if (typeof s !== 'string' || s.length !== bytes.length * 2) return false;
  for (let i = 0; i < bytes.length; i++) {
    const hi = nibble(s.charCodeAt(2 * i));
    const lo = nibble(s.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0 || ((hi << 4) | lo) !== bytes[i]) return false;
  }
  return true;
}

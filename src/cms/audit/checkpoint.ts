// Signed checkpoints in the C2SP formats (pure; crypto injected):
//   tlog-checkpoint body:  "<origin>\n<tree size>\n<base64 root hash>\n"
//   signed-note:           body + "\n" + one line per signature: "— <key name> <base64(key hash || signature)>\n"
//   Ed25519 key hash:      first 4 bytes of SHA-256(<key name> || 0x0A || 0x01 || public key)
//   verifier key (vkey):   "<key name>+<key hash, 8 hex digits>+<base64(0x01 || public key)>"
import { type AuditCrypto, bytesEqual, fromBase64, hex, toBase64, unhex, utf8 } from './crypto.js';

export interface Checkpoint {
  origin: string;
  size: number;
  root: Uint8Array;
}

export interface VerifierKey {
  name: string;
  keyHash: Uint8Array; // 4 bytes
  publicKey: Uint8Array; // 32 bytes (Ed25519)
}

const DASH = '\u2014';
const NAME = /^[^\s+]+$/;

export function checkpointBody(cp: Checkpoint): string {
  if (!cp.origin || /\n/.test(cp.origin)) throw new RangeError('origin must be one non-empty line');
  return `${cp.origin}\n${cp.size}\n${toBase64(cp.root)}\n`;
}

export function keyHash(c: AuditCrypto, name: string, publicKey: Uint8Array): Uint8Array {
  return c.sha256(utf8.encode(name), new Uint8Array([0x0a, 0x01]), publicKey).subarray(0, 4);
}

export function formatVerifierKey(c: AuditCrypto, name: string, publicKey: Uint8Array): string {
  if (!NAME.test(name)) throw new RangeError('key name must contain no spaces or +');
  return `${name}+${hex(keyHash(c, name, publicKey))}+${toBase64(new Uint8Array([1, ...publicKey]))}`;
}

export function parseVerifierKey(c: AuditCrypto, vkey: string): VerifierKey | string {
  const t = vkey.trim();
  const a = t.indexOf('+');
  const b = a < 0 ? -1 : t.indexOf('+', a + 1);
  if (a <= 0 || b < 0) return 'verifier key must be name+hash+key';
  const name = t.slice(0, a);
  const h = t.slice(a + 1, b);
  const k = t.slice(b + 1);
  const hashBytes = unhex(h);
  const keyBytes = fromBase64(k);
  if (!NAME.test(name) || !hashBytes || hashBytes.length !== 4) return 'verifier key: bad name or key hash';
  if (!keyBytes || keyBytes.length !== 33 || keyBytes[0] !== 1) return 'verifier key: not an Ed25519 key';
  const publicKey = keyBytes.subarray(1);
  if (!bytesEqual(keyHash(c, name, publicKey), hashBytes)) return 'verifier key: key hash does not match';
  return { name, keyHash: hashBytes, publicKey };
}

/** Build a signed note from a body and a signature made over the body's bytes. */
export function signedNote(body: string, keyName: string, kh: Uint8Array, signature: Uint8Array): string {
  const sig = new Uint8Array(4 + signature.length);
  sig.set(kh, 0);
  sig.set(signature, 4);
  return `${body}\n${DASH} ${keyName} ${toBase64(sig)}\n`;
}

export type CheckpointResult = { ok: true; checkpoint: Checkpoint } | { ok: false; reason: string };

/** Parse a signed note, check it carries a valid signature by `key`, and parse its body. */
export function verifyCheckpoint(c: AuditCrypto, note: string, key: VerifierKey, origin?: string): CheckpointResult {
  if (typeof note !== 'string') return { ok: false, reason: 'checkpoint is not text' };
  const split = note.lastIndexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) return { ok: false, reason: 'not a signed note' };
  const body = note.slice(0, split + 1);
  const sigLines = note.slice(split + 2, -1).split('\n');
  let signed = false;
  for (const line of sigLines) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) return { ok: false, reason: 'malformed signature line' };
    if (m[1] !== key.name) continue;
    const sig = fromBase64(m[2]!);
    if (!sig || sig.length !== 68 || !bytesEqual(sig.subarray(0, 4), key.keyHash)) continue;
    if (c.ed25519Verify(key.publicKey, utf8.encode(body), sig.subarray(4))) signed = true;
  }
  if (!signed) return { ok: false, reason: `no valid signature by ${key.name}` };
  const lines = body.split('\n');
  if (lines.length < 4) return { ok: false, reason: 'checkpoint body too short' };
  const [o, sizeText, rootText] = lines as [string, string, string];
  if (!/^(0|[1-9]\d{0,15})$/.test(sizeText)) return { ok: false, reason: 'bad tree size' };
  const root = fromBase64(rootText);
  if (!root || root.length !== 32) return { ok: false, reason: 'bad root hash' };
  if (origin !== undefined && o !== origin) return { ok: false, reason: `origin '${o}' is not '${origin}'` };
  return { ok: true, checkpoint: { origin: o, size: Number(sizeText), root } };
}

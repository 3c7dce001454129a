// Checks an audit entry's inclusion proof IN THE BROWSER, with the CMS's own pure verifier code
// (src/cms/audit: checkpoint signature, RFC 9162 leaf hash and inclusion proof) bundled in, and
// noble's audited SHA-256 and Ed25519. The checkpoint key is pinned: the first vkey seen is kept in
// localStorage and a different one served later is refused until the operator re-pins it.
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type { AuditCrypto } from '../../src/cms/audit/crypto.js';
import { unhex } from '../../src/cms/audit/crypto.js';
import { parseVerifierKey, verifyCheckpoint, type VerifierKey } from '../../src/cms/audit/checkpoint.js';
import { encodeEntry, parseEntry } from '../../src/cms/audit/entry.js';
import { leafHash, verifyInclusion } from '../../src/cms/audit/merkle.js';
import type { AuditEntry, Checkpoint, InclusionProof } from './api.js';

export const browserCrypto: AuditCrypto = {
  sha256(...parts: Uint8Array[]): Uint8Array {
    const h = sha256.create();
    for (const p of parts) h.update(p);
    return h.digest();
  },
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    try {
      return ed25519.verify(signature, message, publicKey);
    } catch {
      return false;
    }
  },
};

const PIN_KEY = 'desfire-cms.audit-vkey';

export type PinResult = { ok: true; key: VerifierKey; vkey: string; pinnedNow: boolean } | { ok: false; reason: string; served?: string; pinned?: string };

/** The pinned verifier key; pins the served one on first use. */
export function pinKey(served: string): PinResult {
  const vkey = served.trim();
  const pinned = localStorage.getItem(PIN_KEY);
  if (pinned && pinned !== vkey) return { ok: false, reason: 'the server now presents a different checkpoint key than the one pinned in this browser', served: vkey, pinned };
  const key = parseVerifierKey(browserCrypto, pinned ?? vkey);
  if (typeof key === 'string') return { ok: false, reason: `bad verifier key: ${key}` };
  if (!pinned) localStorage.setItem(PIN_KEY, vkey);
  return { ok: true, key, vkey, pinnedNow: !pinned };
}

export function repin(vkey: string): void {
  localStorage.setItem(PIN_KEY, vkey.trim());
}

export function pinnedKey(): string | null {
  return localStorage.getItem(PIN_KEY);
}

export interface ProofOutcome {
  ok: boolean;
  /** What was checked, step by step (shown to the operator). */
  steps: { ok: boolean; text: string }[];
}

/** Verify `entry` is leaf `entry.index` of the tree signed by `checkpoint` (note signed by `key`). */
export function checkInclusion(key: VerifierKey, checkpoint: Checkpoint, entry: AuditEntry, proof: InclusionProof): ProofOutcome {
  const steps: ProofOutcome['steps'] = [];
  const done = (ok: boolean, text: string): ProofOutcome => {
    steps.push({ ok, text });
    return { ok: ok && steps.every((s) => s.ok), steps };
  };
  const cp = verifyCheckpoint(browserCrypto, checkpoint.note, key);
  if (!cp.ok) return done(false, `checkpoint signature: ${cp.reason}`);
  steps.push({ ok: true, text: `checkpoint signed by ${key.name} (Ed25519): tree of ${cp.checkpoint.size} entries, origin ${cp.checkpoint.origin}` });
  if (proof.treeSize !== cp.checkpoint.size) return done(false, `the proof is for a tree of ${proof.treeSize}, the checkpoint has ${cp.checkpoint.size}`);
  if (proof.index !== entry.index) return done(false, `the proof is for entry ${proof.index}, not ${entry.index}`);
  const parsed = parseEntry(entry);
  if (typeof parsed === 'string') return done(false, `malformed entry: ${parsed}`);
  const leaf = leafHash(browserCrypto, encodeEntry(parsed));
  steps.push({ ok: true, text: 'entry re-encoded and hashed here (RFC 9162 leaf hash)' });
  const hashes: Uint8Array[] = [];
  for (const x of proof.hashes) {
    const b = unhex(x);
    if (!b || b.length !== 32) return done(false, 'malformed proof hash');
    hashes.push(b);
  }
  const ok = verifyInclusion(browserCrypto, entry.index, cp.checkpoint.size, leaf, hashes, cp.checkpoint.root);
  return done(ok, ok ? `inclusion proof (${hashes.length} hashes) leads to the signed root` : 'the inclusion proof does NOT lead to the signed root: the entry or the log was changed');
}

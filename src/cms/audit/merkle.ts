// RFC 6962 / RFC 9162 Merkle tree hashing and proof verification (pure; SHA-256 injected).
//   leaf hash  = SHA-256(0x00 || leaf)
//   node hash  = SHA-256(0x01 || left || right)
//   MTH({})    = SHA-256()  (the empty tree)
// Verification algorithms follow RFC 9162 sections 2.1.3.2 (inclusion) and 2.1.4.2 (consistency).
import { type AuditCrypto, bytesEqual, utf8 } from './crypto.js';

const LEAF = new Uint8Array([0]);
const NODE = new Uint8Array([1]);

export function leafHash(c: AuditCrypto, leaf: Uint8Array): Uint8Array {
  return c.sha256(LEAF, leaf);
}

let leafScratch = new Uint8Array(4096);

/** leafHash of the UTF-8 encoding of `text`, encoded straight after the 0x00 prefix in a reused buffer. */
export function leafHashOfText(c: AuditCrypto, text: string): Uint8Array {
  // UTF-8 takes at most 3 bytes per UTF-16 code unit
  if (text.length * 3 + 1 > leafScratch.length) leafScratch = new Uint8Array(Math.max(text.length * 3 + 1, leafScratch.length * 2));
  leafScratch[0] = 0;
  const { written } = utf8.encodeInto(text, leafScratch.subarray(1));
  return c.sha256(leafScratch.subarray(0, 1 + written));
}

export function nodeHash(c: AuditCrypto, left: Uint8Array, right: Uint8Array): Uint8Array {
  return c.sha256(NODE, left, right);
}

export function emptyRoot(c: AuditCrypto): Uint8Array {
  return c.sha256();
}

/** Largest power of two strictly smaller than n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * Streaming root computation: push leaf hashes in order; root() at any time is the MTH of the
 * leaves pushed so far. Keeps one hash per set bit of the size (a compact range).
 */
export class StreamingRoot {
  private readonly stack: Uint8Array[] = [];
  private readonly sizes: number[] = [];
  size = 0;
  constructor(private readonly c: AuditCrypto) {}

  push(leafHash: Uint8Array): void {
    let h = leafHash;
    let s = 1;
    while (this.sizes.length && this.sizes[this.sizes.length - 1] === s) {
      h = nodeHash(this.c, this.stack.pop()!, h);
      this.sizes.pop();
      s *= 2;
    }
    this.stack.push(h);
    this.sizes.push(s);
    this.size++;
  }

  root(): Uint8Array {
    if (this.stack.length === 0) return emptyRoot(this.c);
    let acc = this.stack[this.stack.length - 1]!;
    for (let i = this.stack.length - 2; i >= 0; i--) acc = nodeHash(this.c, this.stack[i]!, acc);
    return acc;
  }
}

/** MTH over a list of leaf hashes. */
export function rootOf(c: AuditCrypto, leafHashes: Iterable<Uint8Array>): Uint8Array {
  const s = new StreamingRoot(c);
  for (const h of leafHashes) s.push(h);
  return s.root();
}

/** RFC 9162 2.1.3.2: does `proof` show leaf `index` with hash `leaf` in the tree (`size`, `root`)? */
export function verifyInclusion(c: AuditCrypto, index: number, size: number, leaf: Uint8Array, proof: Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(c, p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(c, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && bytesEqual(r, root);
}

/** RFC 9162 2.1.4.2: does `proof` show the tree (size2, root2) extends (size1, root1)? */
export function verifyConsistency(
  c: AuditCrypto,
  size1: number,
  size2: number,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: Uint8Array[],
): boolean {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 0 || size2 < size1) return false;
  if (size1 === size2) return proof.length === 0 && bytesEqual(root1, root2);
  if (size1 === 0) return proof.length === 0; // the empty tree is a prefix of every tree
  let path = proof;
  // If size1 is an exact power of 2, prepend root1 to the proof.
  if ((size1 & (size1 - 1)) === 0) path = [root1, ...proof];
  if (path.length === 0) return false;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const p of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, p, fr);
      sr = nodeHash(c, p, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(c, sr, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && bytesEqual(fr, root1) && bytesEqual(sr, root2);
}

// In-memory Merkle tree over the stored leaf hashes: every level of perfect subtrees kept in
// flat buffers (32 bytes per node; ~64 MB per million leaves), appended incrementally, so
// roots and RFC 9162 inclusion/consistency proofs cost O(log n) hash operations.
// The database stores only the leaf hashes; this tree is rebuilt from them at start.
import type { AuditCrypto } from './crypto.js';
import { emptyRoot, nodeHash, splitPoint } from './merkle.js';

class HashArray {
  private buf = new Uint8Array(32 * 1024);
  length = 0;
  push(h: Uint8Array): void {
    if ((this.length + 1) * 32 > this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf.set(h, this.length * 32);
    this.length++;
  }
  get(i: number): Uint8Array {
    return this.buf.subarray(i * 32, i * 32 + 32);
  }
}

export class MerkleTree {
  /** levels[l].get(i) = hash of the perfect subtree of 2^l leaves starting at leaf i * 2^l. */
  private readonly levels: HashArray[] = [new HashArray()];
  constructor(private readonly c: AuditCrypto) {}

  get size(): number {
    return this.levels[0]!.length;
  }

  leaf(index: number): Uint8Array {
    return this.levels[0]!.get(index);
  }

  append(leafHash: Uint8Array): void {
    if (leafHash.length !== 32) throw new RangeError('a leaf hash is 32 bytes');
    this.levels[0]!.push(leafHash);
    let l = 0;
    // complete every perfect subtree this leaf closes
    while (this.levels[l]!.length % 2 === 0) {
      const lv = this.levels[l]!;
      const n = lv.length;
      if (!this.levels[l + 1]) this.levels.push(new HashArray());
      this.levels[l + 1]!.push(nodeHash(this.c, lv.get(n - 2), lv.get(n - 1)));
      l++;
    }
  }

  /** MTH(D[start:end]) for 0 <= start < end <= size. */
  private mth(start: number, end: number): Uint8Array {
    const n = end - start;
    if ((n & (n - 1)) === 0) {
      const l = Math.log2(n);
      if (start % n === 0 && this.levels[l] && start / n < this.levels[l]!.length) return this.levels[l]!.get(start / n);
    }
    if (n === 1) return this.leaf(start);
    const k = splitPoint(n);
    return nodeHash(this.c, this.mth(start, start + k), this.mth(start + k, end));
  }

  private check(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) throw new RangeError(`tree size ${size} is not in [0, ${this.size}]`);
  }

  /** Root of the tree of the first `size` leaves (default: all). */
  root(size = this.size): Uint8Array {
    this.check(size);
    return size === 0 ? emptyRoot(this.c) : this.mth(0, size);
  }

  /** RFC 9162 PATH(index, D[0:size]). */
  inclusionProof(index: number, size = this.size): Uint8Array[] {
    this.check(size);
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) throw new RangeError(`leaf index ${index} is not in [0, ${size})`);
    const out: Uint8Array[] = [];
    const path = (m: number, start: number, end: number): void => {
      const n = end - start;
      if (n === 1) return;
      const k = splitPoint(n);
      if (m < k) {
        path(m, start, start + k);
        out.push(this.mth(start + k, end));
      } else {
        path(m - k, start + k, end);
        out.push(this.mth(start, start + k));
      }
    };
    path(index, 0, size);
    return out;
  }

  /** RFC 9162 PROOF(size1, D[0:size2]). */
  consistencyProof(size1: number, size2 = this.size): Uint8Array[] {
    this.check(size2);
    if (!Number.isSafeInteger(size1) || size1 < 0 || size1 > size2) throw new RangeError(`tree size ${size1} is not in [0, ${size2}]`);
    if (size1 === 0 || size1 === size2) return [];
    const out: Uint8Array[] = [];
    const sub = (m: number, start: number, end: number, b: boolean): void => {
      const n = end - start;
      if (m === n) {
        if (!b) out.push(this.mth(start, end));
        return;
      }
      const k = splitPoint(n);
      if (m <= k) {
        sub(m, start, start + k, b);
        out.push(this.mth(start + k, end));
      } else {
        sub(m - k, start + k, end, false);
        out.push(this.mth(start, start + k));
      }
    };
    sub(size1, 0, size2, true);
    return out;
  }
}

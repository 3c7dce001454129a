// RFC 6962/9162 Merkle hashing and proofs: published vectors, then properties against a
// direct (recursive) implementation of the RFC definitions.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import vectors from '../vectors/rfc6962_merkle.json' with { type: 'json' };
import { hex, unhex } from '../../src/cms/audit/crypto.js';
import { StreamingRoot, emptyRoot, leafHash, nodeHash, rootOf, verifyConsistency, verifyInclusion } from '../../src/cms/audit/merkle.js';
import { nodeAuditCrypto as c } from '../../src/cms/audit/node-crypto.js';
import { MerkleTree } from '../../src/cms/audit/tree.js';

const h = (s: string) => unhex(s)!;

function treeOf(leafHashes: Uint8Array[]): MerkleTree {
  const t = new MerkleTree(c);
  for (const l of leafHashes) t.append(l);
  return t;
}

/** RFC 6962 MTH, straight from the definition. */
function refRoot(l: Uint8Array[]): Uint8Array {
  if (l.length === 0) return emptyRoot(c);
  if (l.length === 1) return l[0]!;
  let k = 1;
  while (k * 2 < l.length) k *= 2;
  return nodeHash(c, refRoot(l.slice(0, k)), refRoot(l.slice(k)));
}

const leaves = (n: number) => Array.from({ length: n }, (_, i) => leafHash(c, new TextEncoder().encode(`leaf ${i}`)));

describe('RFC 6962 vectors (transparency-dev/merkle)', () => {
  const lh = vectors.leafInputs.map((x) => leafHash(c, h(x)));
  it('leaf hashes', () => {
    expect(lh.map(hex)).toEqual(vectors.leafHashes);
  });
  it('root hash of every prefix size 0..8 (tree, streaming, compact)', () => {
    for (let n = 0; n <= 8; n++) {
      expect(hex(treeOf(lh.slice(0, n)).root()), `size ${n}`).toBe(vectors.rootHashesBySize[n]);
      expect(hex(rootOf(c, lh.slice(0, n)))).toBe(vectors.rootHashesBySize[n]);
      expect(hex(treeOf(lh).root(n))).toBe(vectors.rootHashesBySize[n]);
    }
  });
  it('inclusion proofs: generated equal the published ones, and verify', () => {
    const t = treeOf(lh);
    for (const v of vectors.inclusion) {
      expect(t.inclusionProof(v.index, v.size).map(hex)).toEqual(v.proof);
      expect(verifyInclusion(c, v.index, v.size, lh[v.index]!, v.proof.map(h), h(vectors.rootHashesBySize[v.size]!))).toBe(true);
    }
  });
  it('consistency proofs: generated equal the published ones, and verify', () => {
    const t = treeOf(lh);
    for (const v of vectors.consistency) {
      expect(t.consistencyProof(v.size1, v.size2).map(hex)).toEqual(v.proof);
      const r1 = h(vectors.rootHashesBySize[v.size1]!);
      const r2 = h(vectors.rootHashesBySize[v.size2]!);
      expect(verifyConsistency(c, v.size1, v.size2, r1, r2, v.proof.map(h))).toBe(true);
    }
  });
});

describe('Merkle tree properties', () => {
  it('roots equal the RFC definition for every size up to 70', () => {
    const l = leaves(70);
    const t = new MerkleTree(c);
    const s = new StreamingRoot(c);
    for (let n = 0; n <= 70; n++) {
      const want = hex(refRoot(l.slice(0, n)));
      expect(hex(t.root())).toBe(want);
      expect(hex(s.root())).toBe(want);
      if (n < 70) {
        t.append(l[n]!);
        s.push(l[n]!);
      }
    }
  });

  it('every inclusion proof verifies, and fails for another leaf, index, a shorter/longer path or a flipped bit', () => {
    const l = leaves(33);
    const t = treeOf(l);
    for (let n = 1; n <= 33; n++) {
      const root = t.root(n);
      for (let i = 0; i < n; i++) {
        const p = t.inclusionProof(i, n);
        expect(verifyInclusion(c, i, n, l[i]!, p, root)).toBe(true);
        if (n > 1) expect(verifyInclusion(c, i, n, l[(i + 1) % n]!, p, root)).toBe(false);
        if (n > 1) expect(verifyInclusion(c, (i + 1) % n, n, l[i]!, p, root)).toBe(false);
        if (p.length) {
          const bad = p.map((x) => new Uint8Array(x));
          bad[0]![5]! ^= 1;
          expect(verifyInclusion(c, i, n, l[i]!, bad, root)).toBe(false);
          expect(verifyInclusion(c, i, n, l[i]!, p.slice(1), root)).toBe(false);
          expect(verifyInclusion(c, i, n, l[i]!, [...p, p[0]!], root)).toBe(false);
        }
      }
    }
  });

  it('every consistency proof verifies, and fails against another root or with a flipped bit', () => {
    const l = leaves(33);
    const t = treeOf(l);
    for (let n = 1; n <= 33; n++) {
      for (let m = 1; m <= n; m++) {
        const p = t.consistencyProof(m, n);
        expect(verifyConsistency(c, m, n, t.root(m), t.root(n), p), `${m}->${n}`).toBe(true);
        if (m < n) {
          expect(verifyConsistency(c, m, n, t.root(m - 1 || 1).map((x, i) => (i === 0 ? x ^ 1 : x)), t.root(n), p)).toBe(false);
          expect(verifyConsistency(c, m, n, t.root(m), t.root(n - 1), p)).toBe(false);
          const bad = p.map((x) => new Uint8Array(x));
          bad[bad.length - 1]![0]! ^= 0x80;
          expect(verifyConsistency(c, m, n, t.root(m), t.root(n), bad)).toBe(false);
        }
      }
    }
  });

  it('random sizes (fast-check): proofs from the incremental tree verify against the reference root', () => {
    const l = leaves(300);
    const t = treeOf(l);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), (n, a, b) => {
        const i = a % n;
        const m = (b % n) + 1;
        const root = refRoot(l.slice(0, n));
        return (
          verifyInclusion(c, i, n, l[i]!, t.inclusionProof(i, n), root) &&
          verifyConsistency(c, m, n, refRoot(l.slice(0, m)), root, t.consistencyProof(m, n))
        );
      }),
      { numRuns: 200 },
    );
  });

  it('out-of-range requests throw RangeError', () => {
    const t = treeOf(leaves(5));
    expect(() => t.inclusionProof(5, 5)).toThrow(RangeError);
    expect(() => t.root(6)).toThrow(RangeError);
    expect(() => t.consistencyProof(6, 5)).toThrow(RangeError);
    expect(verifyInclusion(c, -1, 5, leaves(1)[0]!, [], t.root())).toBe(false);
  });
});

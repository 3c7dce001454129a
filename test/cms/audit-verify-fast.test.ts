// The verifier's fast path (an exported entry hashed as written, no re-parsing): the export
// text is the canonical encoding minus its "v" member; exports in that form and in any other
// JSON form give the same report; tampering with fast-form lines is still named.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AuditEntry, canonicalEntry, canonicalFromExport, exportEntryText, normalizeInput } from '../../src/cms/audit/entry.js';
import { checkpointBody, signedNote } from '../../src/cms/audit/checkpoint.js';
import { hex, hexEquals, utf8 } from '../../src/cms/audit/crypto.js';
import { leafHash, leafHashOfText } from '../../src/cms/audit/merkle.js';
import { nodeAuditCrypto as c } from '../../src/cms/audit/node-crypto.js';
import { Ed25519CheckpointSigner, verifierKey } from '../../src/cms/audit/signer.js';
import { MerkleTree } from '../../src/cms/audit/tree.js';
import { LogVerifier, verifyJsonl } from '../../src/cms/audit/verify.js';

const ns = fc.option(fc.string({ maxLength: 20 }), { nil: null });
const ni = fc.option(fc.nat({ max: 255 }), { nil: null });
const entryArb: fc.Arbitrary<AuditEntry> = fc.record({
  index: fc.nat(),
  time: fc.nat(),
  actor: ns,
  readerId: ns,
  cardUid: ns,
  tenant: ns,
  aid: ns,
  keyNo: ni,
  keyVersion: ni,
  operation: fc.string({ maxLength: 20 }),
  result: fc.string({ maxLength: 10 }),
  correlationId: ns,
  details: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })) as fc.Arbitrary<AuditEntry['details']>,
});

const N = 40;
const signer = Ed25519CheckpointSigner.generate('fast');
const key = verifierKey(signer.vkey);

function entries(): AuditEntry[] {
  return Array.from({ length: N }, (_, i) => ({
    ...normalizeInput(
      {
        time: 1_760_000_000_000 + i,
        readerId: `reader-${i % 3}`,
        tenant: i % 2 ? 'tenant-a' : 'tenant-b',
        aid: i % 2 ? 'F00001' : 'F00002',
        keyNo: i % 4,
        operation: 'key.release',
        result: 'ok',
        correlationId: `c-${i}`,
        // members that look like the top-level index, integer-like keys, non-ASCII text
        details: i % 5 === 0 ? { index: 1000 + i, nested: { index: 7 }, note: '"index":3,', '10': 'x', '9': 'y' } : { address: `10.0.0.${i}`, who: 'Zoë ✓' },
      },
      0,
    ),
    index: i,
  }));
}

/** An export (header, one checkpoint, entries) with entries written by `form`. */
function exportLines(form: (e: AuditEntry, lh: string) => string): string[] {
  const t = new MerkleTree(c);
  const es = entries();
  const leaves = es.map((e) => leafHash(c, utf8.encode(canonicalEntry(e))));
  for (const l of leaves) t.append(l);
  const body = checkpointBody({ origin: 'fast', size: N, root: t.root() });
  // the checkpoint line is signed by withCheckpoint (signing is async)
  return [JSON.stringify({ type: 'header', format: 'desfire-cms-audit/1', origin: 'fast', treeSize: N }), '__CHECKPOINT__' + body, ...es.map((e, i) => form(e, hex(leaves[i]!)))];
}

async function withCheckpoint(lines: string[]): Promise<string[]> {
  const out = [...lines];
  const body = out[1]!.slice('__CHECKPOINT__'.length);
  const note = signedNote(body, signer.name, signer.keyHash, await signer.sign(utf8.encode(body)));
  out[1] = JSON.stringify({ type: 'checkpoint', size: N, note });
  return out;
}

const fastForm = (e: AuditEntry, lh: string) => `{"type":"entry","entry":${exportEntryText(e)},"leafHash":"${lh}"}`;
const objectForm = (e: AuditEntry, lh: string) => JSON.stringify({ type: 'entry', entry: e, leafHash: lh });
const verify = (ls: string[]) => verifyJsonl(ls, { crypto: c, key, origin: 'fast' });
const lineOf = (ls: string[], index: number) => ls.findIndex((l) => l.includes('"type":"entry"') && (JSON.parse(l) as { entry: AuditEntry }).entry.index === index);

describe('export entry text', () => {
  it('is the canonical text without "v", parses to the entry, and maps back to the canonical text', () => {
    fc.assert(
      fc.property(entryArb, (e) => {
        const t = exportEntryText(e);
        expect(canonicalFromExport(t)).toBe(canonicalEntry(e));
        expect(JSON.parse(t)).toEqual(JSON.parse(JSON.stringify(e)));
        expect(hex(leafHashOfText(c, canonicalFromExport(t)))).toBe(hex(leafHash(c, utf8.encode(canonicalEntry(e)))));
      }),
      { numRuns: 500 },
    );
  });
  it('hexEquals compares either case and rejects wrong lengths and non-hex', () => {
    const b = new Uint8Array([0x00, 0xab, 0x7f, 0xff]);
    expect(hexEquals(b, '00ab7fff')).toBe(true);
    expect(hexEquals(b, '00AB7FFF')).toBe(true);
    expect(hexEquals(b, '00ab7ffe')).toBe(false);
    expect(hexEquals(b, '00ab7ff')).toBe(false);
    expect(hexEquals(b, '00ab7fffff')).toBe(false);
    expect(hexEquals(b, '00ab7fgf')).toBe(false);
    expect(hexEquals(b, '0 ab7fff')).toBe(false);
  });
});

describe('verifier fast path', () => {
  it('fast-form and object-form exports verify with the same report', async () => {
    const fast = await withCheckpoint(exportLines(fastForm));
    const slow = await withCheckpoint(exportLines(objectForm));
    expect(fast[2]).not.toBe(slow[2]); // different key order on disk
    const a = verify(fast);
    const b = verify(slow);
    expect(a.ok).toBe(true);
    expect(a.entries).toBe(N);
    expect(a).toEqual(b);
  });

  it('takes the fast path for fast-form text only', () => {
    const e = entries()[5]!;
    const lh = hex(leafHash(c, utf8.encode(canonicalEntry(e))));
    const v = new LogVerifier({ crypto: c, key });
    expect(v.entryText(JSON.stringify(e), lh)).toBeUndefined(); // not canonical order: parse instead
    expect(v.entryText(exportEntryText({ ...e, result: 'denied' }), lh)).toBeUndefined(); // hash differs
    expect(v.ok).toBe(true);
    const e0 = entries()[0]!;
    const u = new LogVerifier({ crypto: c, key });
    expect(u.entryText(exportEntryText(e0), hex(leafHash(c, utf8.encode(canonicalEntry(e0)))))).toBe(true); // taken
    expect(u.entryText(exportEntryText(e), lh)).toBe(false); // taken, and entry 5 is not next: named
    expect(u.failure?.index).toBe(1);
    const w = new LogVerifier({ crypto: c, key });
    w.setView({ tenant: 'tenant-a' });
    expect(w.entryText(exportEntryText(e), lh)).toBeUndefined(); // views check proofs: parse
  });

  describe('tampering with fast-form lines is named', () => {
    let lines: string[] = [];
    const mutate = async (fn: (ls: string[]) => void) => {
      if (!lines.length) lines = await withCheckpoint(exportLines(fastForm));
      const ls = [...lines];
      fn(ls);
      return verify(ls);
    };
    for (const target of [0, 5, 17, N - 1]) {
      it(`changing entry ${target} as text (still valid JSON, same key order)`, async () => {
        const r = await mutate((ls) => {
          const i = lineOf(ls, target);
          ls[i] = ls[i]!.replace('"result":"ok"', '"result":"no"');
        });
        expect(r.ok).toBe(false);
        expect(r.failure?.index).toBe(target);
        expect(r.failure?.reason).toMatch(/changed/);
      });
    }
    it('renumbering an entry with a self-consistent leaf hash', async () => {
      const r = await mutate((ls) => {
        const i = lineOf(ls, 10);
        const e = { ...(JSON.parse(ls[i]!) as { entry: AuditEntry }).entry, index: 11 };
        ls[i] = fastForm(e, hex(leafHash(c, utf8.encode(canonicalEntry(e)))));
      });
      expect(r.failure?.index).toBe(10);
      expect(r.failure?.reason).toMatch(/missing/);
    });
    it('a duplicated entry (details holding "index" members)', async () => {
      const r = await mutate((ls) => {
        const i = lineOf(ls, 15);
        ls.splice(i, 0, ls[i]!);
      });
      expect(r.failure?.index).toBe(16);
      expect(r.failure?.reason).toMatch(/inserted|duplicated|reordered/);
    });
    it('reordering two entries', async () => {
      const r = await mutate((ls) => {
        const a = lineOf(ls, 3);
        const b = lineOf(ls, 4);
        [ls[a], ls[b]] = [ls[b]!, ls[a]!];
      });
      expect(r.failure?.index).toBe(3);
    });
    it('changing an entry and its leaf hash together: the signed root disagrees', async () => {
      const r = await mutate((ls) => {
        const i = lineOf(ls, 25);
        const e = { ...(JSON.parse(ls[i]!) as { entry: AuditEntry }).entry, operation: 'nothing.to.see' };
        ls[i] = fastForm(e, hex(leafHash(c, utf8.encode(canonicalEntry(e)))));
      });
      expect(r.ok).toBe(false);
      expect(r.failure?.reason).toMatch(/signed root/);
    });
    it('deleting the last entry', async () => {
      const r = await mutate((ls) => void ls.splice(lineOf(ls, N - 1), 1));
      expect(r.failure?.index).toBe(N - 1);
      expect(r.failure?.reason).toMatch(/missing/);
    });
  });
});

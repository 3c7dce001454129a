// The canonical entry encoding: the fast writer equals the generic canonical JSON of the
// documented object, for arbitrary entries; and it round-trips through JSON.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AuditEntry, AuditError, canonicalEntry, canonicalJson, normalizeInput, parseEntry, withIndex } from '../../src/cms/audit/entry.js';

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

describe('canonical entry encoding', () => {
  it('equals canonicalJson of {v:1, ...entry} and round-trips', () => {
    fc.assert(
      fc.property(entryArb, (e) => {
        const text = canonicalEntry(e);
        expect(text).toBe(canonicalJson({ v: 1, ...e }));
        const back = JSON.parse(text) as Record<string, unknown>;
        delete back.v;
        expect(canonicalEntry(parseEntry(back) as AuditEntry)).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });
  it('objects with integer-like keys and unsorted nested keys still give canonical JSON', () => {
    const base: AuditEntry = { index: 1, time: 2, actor: null, readerId: null, cardUid: null, tenant: null, aid: null, keyNo: null, keyVersion: null, operation: 'o', result: 'r', correlationId: null, details: {} };
    for (const details of [{ b: 1, a: { '10': 1, '9': 2, x: [{ z: 1, y: 2 }] } }, { z: [1, { b: 2, a: 1 }], a: null }, { '0': 'x' }]) {
      const e = { ...base, details: details as unknown as AuditEntry['details'] };
      expect(canonicalEntry(e)).toBe(canonicalJson({ v: 1, ...e }));
    }
  });
  it('the details size limit counts the canonical text (4,096 characters): JSON.stringify has its length for every accepted value', () => {
    // normalizeInput measures JSON.stringify(details): for the plain JSON it accepts, the same
    // characters as canonicalJson in another key order
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 })), (d) => {
        expect(JSON.stringify(d).length).toBe(canonicalJson(d).length);
      }),
      { numRuns: 2000 },
    );
    // unsorted keys, escapes, integer-like keys, nested arrays: exactly at the limit and one over
    const sized = (n: number) => {
      const d: Record<string, unknown> = { z: 'é"\\\n', '10': [1.5, -0, { b: null, a: true }], a: '' };
      d.a = 'x'.repeat(n - canonicalJson(d).length);
      expect(canonicalJson(d).length).toBe(n);
      return d as AuditEntry['details'];
    };
    expect(normalizeInput({ operation: 'o', result: 'r', details: sized(4096) }, 1).details).toBeDefined();
    expect(() => normalizeInput({ operation: 'o', result: 'r', details: sized(4097) }, 1)).toThrow(AuditError);
  });
  it('withIndex is the entry with its index (every field, nothing else)', () => {
    fc.assert(
      fc.property(entryArb, (e) => {
        const { index, ...rest } = e;
        const w = withIndex(rest, index);
        expect(w).toEqual(e);
        expect(Object.keys(w).sort()).toEqual(Object.keys(e).sort());
      }),
      { numRuns: 500 },
    );
  });
  it('sorts keys and escapes strings (a known answer)', () => {
    const e: AuditEntry = { index: 3, time: 10, actor: 'a"b', readerId: null, cardUid: null, tenant: 't', aid: 'F00001', keyNo: 0, keyVersion: null, operation: 'op', result: 'ok', correlationId: null, details: { z: 1, a: [true, null] } };
    expect(canonicalEntry(e)).toBe(
      '{"actor":"a\\"b","aid":"F00001","cardUid":null,"correlationId":null,"details":{"a":[true,null],"z":1},"index":3,"keyNo":0,"keyVersion":null,"operation":"op","readerId":null,"result":"ok","tenant":"t","time":10,"v":1}',
    );
  });
});

// The cheaper per-entry path of a custody entry (docs/audit-performance.md) changes no byte of the
// canonical text or the leaf hash: known answers computed before the change; the custody details
// built in canonical key order; the event time parsed without Date.parse, equal to it; the details
// checks without per-member paths, accepting and refusing exactly what checkDetails does.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/custody/audit.js';
import { fromCustodyEvent, parseIsoTime } from '../../src/cms/audit/custody-event.js';
import { type AuditEntry, AuditError, canonicalEntry, canonicalJson, normalizeInput, withIndex } from '../../src/cms/audit/entry.js';
import { leafHashOfText } from '../../src/cms/audit/merkle.js';
import { nodeAuditCrypto } from '../../src/cms/audit/node-crypto.js';

const seal: AuditEvent = {
  time: '2026-11-27T14:52:36.123Z',
  source: 'custody',
  backend: 'embedded',
  op: 'seal',
  outcome: 'ok',
  actor: 'reader:reader-7',
  purpose: 'key-delivery',
  correlationId: 'req-1',
  key: 'tenant-a/F00001/k1',
  keyVersion: 3,
  binding: { tenant: 'tenant-a', aid: 'F00001', uid: '04A1B2C3D4E5F6', keyNo: 1, version: 2 },
  recipient: 'reader-7',
  mode: 'session',
};
const sealBatch: AuditEvent = {
  time: '2026-02-29T00:00:00.000Z',
  source: 'custody',
  backend: 'vault-transit',
  op: 'seal_batch',
  outcome: 'error',
  actor: 'station-1',
  purpose: 'personalise',
  correlationId: 'job-9',
  recipient: 'station-1',
  mode: 'session',
  code: 'ERR_X',
  seals: [
    { key: 'mk', keyVersion: 2, binding: { tenant: 't', aid: 'F00002', uid: '04A1B2C3D4E5F6', keyNo: 0, version: 1 } },
    { key: 'kek', binding: { tenant: 't', aid: 'F00002', uid: '04A1B2C3D4E5F6', keyNo: 2, version: 1 } },
  ],
};
const rewrap: AuditEvent = {
  time: '2026-11-27T14:52:36.123Z',
  source: 'custody',
  backend: 'embedded',
  op: 'rewrap_batch',
  outcome: 'ok',
  actor: 'op',
  purpose: 'rotate',
  correlationId: 'c',
  key: 'kek-t',
  keyVersion: 4,
  keys: ['a', 'b'],
  batch: { count: 2, fromVersions: { '2': 1, '3': 1 }, first: { tenant: 't', aid: 'F00002', uid: '04A1B2C3', keyNo: 1, version: 1 }, last: { tenant: 't', aid: 'F00002', uid: '04A1B2C4', keyNo: 1, version: 1 }, digest: 'sha256:00' },
};

// computed with the code before this change (5f3bcf4's entry.ts / custody-event.ts)
const KNOWN: [AuditEvent, number, string, string][] = [
  [
    seal,
    41,
    '{"actor":"reader:reader-7","aid":"F00001","cardUid":"04A1B2C3D4E5F6","correlationId":"req-1","details":{"backend":"embedded","kekVersion":3,"keyName":"tenant-a/F00001/k1","mode":"session","purpose":"key-delivery","source":"custody"},"index":41,"keyNo":1,"keyVersion":2,"operation":"custody.seal","readerId":"reader-7","result":"ok","tenant":"tenant-a","time":1795791156123,"v":1}',
    '6d9883cc48b25836bb54d0fa8d218e4d74add3dbe96129ef390444ff089a5eff',
  ],
  [
    sealBatch,
    42,
    '{"actor":"station-1","aid":"F00002","cardUid":"04A1B2C3D4E5F6","correlationId":"job-9","details":{"backend":"vault-transit","code":"ERR_X","mode":"session","purpose":"personalise","seals":[{"aid":"F00002","kekVersion":2,"keyName":"mk","keyNo":0,"tenant":"t","uid":"04A1B2C3D4E5F6","version":1},{"aid":"F00002","keyName":"kek","keyNo":2,"tenant":"t","uid":"04A1B2C3D4E5F6","version":1}],"source":"custody"},"index":42,"keyNo":null,"keyVersion":null,"operation":"custody.seal_batch","readerId":"station-1","result":"error","tenant":"t","time":1772323200000,"v":1}',
    '61a520848b1ee691c67f8337f008a8d7876b8078fa23bff27c63431096c8fcd6',
  ],
  [
    rewrap,
    43,
    '{"actor":"op","aid":null,"cardUid":null,"correlationId":"c","details":{"backend":"embedded","batch":{"count":2,"digest":"sha256:00","first":{"aid":"F00002","keyNo":1,"tenant":"t","uid":"04A1B2C3","version":1},"fromVersions":{"2":1,"3":1},"last":{"aid":"F00002","keyNo":1,"tenant":"t","uid":"04A1B2C4","version":1}},"kekVersion":4,"keyName":"kek-t","keyNames":["a","b"],"purpose":"rotate","source":"custody"},"index":43,"keyNo":null,"keyVersion":4,"operation":"custody.rewrap_batch","readerId":null,"result":"ok","tenant":null,"time":1795791156123,"v":1}',
    '04d8c96730372af5e87565f12252b7c920ddf9e47688fdfd44da98b5c6d5cfca',
  ],
];

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('custody entries: canonical text and leaf hash unchanged', () => {
  it('known answers (seal, seal_batch, rewrap_batch with integer-like keys)', () => {
    for (const [ev, index, text, leaf] of KNOWN) {
      const e = withIndex(normalizeInput(fromCustodyEvent(ev), 0), index);
      expect(canonicalEntry(e)).toBe(text);
      expect(canonicalJson({ v: 1, ...e })).toBe(text);
      expect(hexOf(leafHashOfText(nodeAuditCrypto, text))).toBe(leaf);
    }
  });

  it('custody details are built in canonical key order (canonicalEntry takes them as they are)', () => {
    for (const ev of [seal, sealBatch, rewrap]) {
      const d = fromCustodyEvent(ev).details!;
      const keys = Object.keys(d);
      expect(keys).toEqual([...keys].sort());
      for (const s of (d.seals ?? []) as Record<string, unknown>[]) expect(Object.keys(s)).toEqual(Object.keys(s).sort());
    }
    // the same members as before, whatever their order
    expect(fromCustodyEvent(seal).details).toEqual({ source: 'custody', backend: 'embedded', purpose: 'key-delivery', keyName: 'tenant-a/F00001/k1', kekVersion: 3, mode: 'session' });
  });

  it('an own __proto__ member among unsorted keys: still canonical JSON', () => {
    const details = JSON.parse('{"z":1,"__proto__":{"b":1,"a":2},"a":"x"}') as AuditEntry['details'];
    const e: AuditEntry = { index: 1, time: 2, actor: null, readerId: null, cardUid: null, tenant: null, aid: null, keyNo: null, keyVersion: null, operation: 'o', result: 'r', correlationId: null, details };
    expect(canonicalEntry(e)).toBe(canonicalJson({ v: 1, ...e }));
    expect(canonicalEntry(e)).toContain('"details":{"__proto__":{"a":2,"b":1},"a":"x","z":1}');
  });
});

describe('parseIsoTime', () => {
  it('equals Date.parse for every toISOString text of 1970-9999 and for other texts', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 253_402_300_799_999 }), (t) => {
        const s = new Date(t).toISOString();
        expect(parseIsoTime(s)).toBe(t);
        expect(parseIsoTime(s)).toBe(Date.parse(s));
      }),
      { numRuns: 20_000 },
    );
    const odd = ['2024-02-29T23:59:59.999Z', '2023-02-29T00:00:00.000Z', '2024-02-30T00:00:00.000Z', '2024-12-31T24:00:00.000Z', '2024-13-01T00:00:00.000Z', '2024-00-10T00:00:00.000Z', '1969-12-31T23:59:59.999Z', '2100-03-01T00:00:00.000Z', '2000-03-01T00:00:00.000Z', '2024-01-01T00:60:00.000Z', '2024-01-01T00:00:60.000Z', '2024-01-01T00:00:00.000+', '2024-01-01 00:00:00.000Z', '+02024-01-01T00:00:00Z', '2024-01-0aT00:00:00.000Z', '2024-01-01', 'x', ''];
    for (const s of odd) expect(Object.is(parseIsoTime(s), Date.parse(s))).toBe(true);
    fc.assert(
      fc.property(fc.string({ minLength: 24, maxLength: 24 }), (s) => {
        expect(Object.is(parseIsoTime(s), Date.parse(s))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

// checkDetails and the size limit as they were (entry.ts before this change): the reference
const SECRET_NAME = /(secret|passw|passphrase|plaintext|private|privkey|sessionkey|keybytes|keymaterial|rawkey|keyvalue|masterkey|^key$|^kek$|^pin$|seed|token$)/i;
const KEY_HEX = /^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/;
const KEY_B64 = /^(?:[A-Za-z0-9+/]{22}==|[A-Za-z0-9+/]{43}=)$/;
const KEY_B64URL = /^(?=[^]*[A-Z])(?=[^]*[a-z])(?=[^]*[0-9])(?:[A-Za-z0-9_-]{22}|[A-Za-z0-9_-]{43})$/;
function referenceVerdict(v: unknown, depth = 0): string {
  if (depth > 6) return 'ERR_AUDIT_INPUT';
  if (v === null || typeof v === 'boolean') return 'ok';
  if (typeof v === 'number') return Number.isFinite(v) ? 'ok' : 'ERR_AUDIT_INPUT';
  if (typeof v === 'string') return KEY_HEX.test(v) || KEY_B64.test(v) || KEY_B64URL.test(v) ? 'ERR_AUDIT_KEY_MATERIAL' : 'ok';
  if (v instanceof Uint8Array || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return 'ERR_AUDIT_KEY_MATERIAL';
  if (Array.isArray(v)) {
    for (const x of v) {
      const r = referenceVerdict(x, depth + 1);
      if (r !== 'ok') return r;
    }
    return 'ok';
  }
  if (typeof v === 'object') {
    if (Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) return 'ERR_AUDIT_INPUT';
    for (const [k, x] of Object.entries(v)) {
      if (SECRET_NAME.test(k)) return 'ERR_AUDIT_KEY_MATERIAL';
      const r = referenceVerdict(x, depth + 1);
      if (r !== 'ok') return r;
    }
    return 'ok';
  }
  return 'ERR_AUDIT_INPUT';
}

describe('normalizeInput details checks', () => {
  const keyish = fc.oneof(
    fc.constantFrom('00112233445566778899aabbccddeeff', '0011223344556677', 'AAECAwQFBgcICQoLDA0ODw==', 'AAECAwQFBgcICQoLDA0ODx', 'aB3' + 'x'.repeat(19), 'ABCDEFabcdef0123456789ABCDEFabcdef0123456789ABCDEFabcdef01234567'),
    fc.string({ minLength: 16, maxLength: 16, unit: fc.constantFrom(...'0123456789abcdef') }),
    fc.string({ minLength: 22, maxLength: 22, unit: fc.constantFrom(...'aZ9_-') }),
  );
  const big = fc.nat({ max: 1400 }).map((n) => '\u0001'.repeat(n));
  const value = fc.letrec((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      fc.constant(null),
      fc.boolean(),
      fc.double(),
      fc.string({ maxLength: 30 }),
      keyish,
      big,
      fc.constant(new Uint8Array(2)),
      fc.constant(undefined),
      fc.array(tie('v'), { maxLength: 4 }),
      fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('secret', 'keyName', 'kek', 'pin', '10', '__proto__')), tie('v'), { maxKeys: 5 }),
    ),
  })).v;
  it('accept and refuse exactly as checkDetails and the 4,096-character limit did, with the same codes', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 8 }), value, { maxKeys: 6 }), (details) => {
        let want = referenceVerdict(details);
        if (want === 'ok' && JSON.stringify(details).length > 4096) want = 'ERR_AUDIT_INPUT';
        let got = 'ok';
        try {
          normalizeInput({ operation: 'o', result: 'r', details: details as AuditEntry['details'] }, 1);
        } catch (e) {
          expect(e).toBeInstanceOf(AuditError);
          got = (e as AuditError).code;
        }
        expect(got).toBe(want);
      }),
      { numRuns: 3000 },
    );
  });
  it('a refused member is still named by its path', () => {
    expect(() => normalizeInput({ operation: 'o', result: 'r', details: { a: [{ b: '00112233445566778899aabbccddeeff' }] } }, 1)).toThrow('details.a[0].b looks like key material');
    expect(() => normalizeInput({ operation: 'o', result: 'r', details: { a: { masterKey: 1 } } }, 1)).toThrow('details.a.masterKey: a field of that name is refused');
  });
});

// The fast paths of the audit log on SQLite: one batch larger than the multi-row INSERT size
// (full statements plus single-row leftovers), read back and verified; and the streaming
// verifier with worker threads, which must give exactly the serial verifier's report, for
// intact and tampered exports, in any chunking and with CRLF line ends.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/cms/storage/index.js';
import { verifyDatabase } from '../../src/cms/audit/db-verify.js';
import { normalizeInput } from '../../src/cms/audit/entry.js';
import { exportLog } from '../../src/cms/audit/export.js';
import { nodeAuditCrypto as c } from '../../src/cms/audit/node-crypto.js';
import { verifyJsonl } from '../../src/cms/audit/verify.js';
import { verifyJsonlStream } from '../../src/cms/audit/verify-parallel.js';
import { type Backend, sqliteBackend } from './storage-backends.js';
import { ORIGIN, openLog, sampleEntry } from './audit-fixture.js';

const N = 203; // one batch: 3 statements of 64 rows, then 11 single rows

describe('audit log fast paths on SQLite', () => {
  let backend: Backend;
  let h: DatabaseHandle;
  let fx: Awaited<ReturnType<typeof openLog>>;
  let lines: string[];

  beforeAll(async () => {
    backend = sqliteBackend();
    h = await backend.open();
    const batches: number[] = [];
    fx = await openLog(h, { onBatch: (n) => void batches.push(n) });
    const stored = await Promise.all(Array.from({ length: N }, (_, i) => fx.log.record(sampleEntry(i))));
    expect(stored.map((e) => e.index)).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(Math.max(...batches)).toBeGreaterThan(64); // the multi-row statements were used
    await fx.log.checkpoint();
    lines = [];
    await exportLog(fx.log, { write: (l) => void lines.push(l) });
  }, 60_000);
  afterAll(async () => {
    await fx?.log.close();
    await backend?.cleanup();
  }, 30_000);

  it('stores every entry of a large batch, in order, with its own fields', async () => {
    const rows = await fx.log.entries({ from: 0, to: N, limit: N });
    expect(rows).toHaveLength(N);
    rows.forEach((r, i) => expect(r).toEqual({ ...normalizeInput(sampleEntry(i), 0), index: i }));
    const db = await verifyDatabase(h, fx.key, ORIGIN);
    expect(db.ok).toBe(true);
    expect(db.entries).toBe(N);
  });

  const opts = () => ({ crypto: c, key: fx.key, origin: ORIGIN });
  const stream = (ls: string[], eol = '\n', piece = 997) => {
    const text = ls.join(eol) + eol;
    const parts: Buffer[] = [];
    const b = Buffer.from(text);
    for (let i = 0; i < b.length; i += piece) parts.push(b.subarray(i, i + piece));
    return Readable.from(parts);
  };

  for (const workers of [0, 2]) {
    it(`streams an export with ${workers} workers: same report as the serial verifier (any chunking, CRLF)`, async () => {
      const serial = verifyJsonl(lines, opts());
      expect(serial.ok).toBe(true);
      expect(serial.entries).toBe(N);
      expect(await verifyJsonlStream(stream(lines), opts(), { workers, chunkBytes: 1500 })).toEqual(serial);
      expect(await verifyJsonlStream(stream(lines, '\r\n', 64), opts(), { workers, chunkBytes: 300 })).toEqual(serial);
      // no newline after the last line
      expect(await verifyJsonlStream(Readable.from([lines.join('\n')]), opts(), { workers })).toEqual(serial);
    });

    it(`names the same entry as the serial verifier on tampering (${workers} workers)`, async () => {
      const at = (ls: string[], index: number) => ls.findIndex((l) => l.includes('"type":"entry"') && (JSON.parse(l) as { entry: { index: number } }).entry.index === index);
      const cases: ((ls: string[]) => void)[] = [
        (ls) => void (ls[at(ls, 100)] = ls[at(ls, 100)]!.replace('"result":"ok"', '"result":"no"')),
        (ls) => void ls.splice(at(ls, 150), 1),
        (ls) => void ls.splice(at(ls, 70), 0, ls[at(ls, 70)]!),
        (ls) => {
          const a = at(ls, 5);
          [ls[a], ls[a + 1]] = [ls[a + 1]!, ls[a]!];
        },
        (ls) => void (ls[1] = ls[1]!.replace('"note":"', '"note":"x')),
      ];
      for (const mutate of cases) {
        const ls = [...lines];
        mutate(ls);
        const serial = verifyJsonl(ls, opts());
        expect(serial.ok).toBe(false);
        expect(await verifyJsonlStream(stream(ls), opts(), { workers, chunkBytes: 2000 })).toEqual(serial);
      }
    });
  }

  it('an export in another JSON form (object key order) still verifies through the workers', async () => {
    const objectForm = lines.map((l) => {
      const o = JSON.parse(l) as { entry?: { index: number } };
      if (o.entry) o.entry = Object.assign({ index: o.entry.index }, o.entry); // index first: not canonical order
      return JSON.stringify(o);
    });
    expect(objectForm).not.toEqual(lines);
    const r = await verifyJsonlStream(stream(objectForm), opts(), { workers: 2 });
    expect(r).toEqual(verifyJsonl(objectForm, opts()));
    expect(r.ok).toBe(true);
    expect(r.entries).toBe(N);
  });
});

import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { batonHash as cmsHash, GENESIS as CMS_GENESIS } from '../../src/cms/baton/chain.js';
import { AuditBaton, GENESIS, batonHash } from '../../src/reader/baton.js';

const dir = () => mkdtempSync(join(tmpdir(), 'baton-'));
const f = (op: string, result = 'ok') => ({ time: 1_700_000_000_000, readerId: 'door-1', cardUid: '04A1B2C3D4E5F6', aid: 'A1C001', keyNo: 1, keyVersion: 1, op, result });

describe('audit baton (reader side)', () => {
  it('reader and CMS compute the same chain hash (fixed vector)', () => {
    const h = batonHash(1, f('access-check', 'granted'), GENESIS);
    expect(GENESIS).toBe(CMS_GENESIS);
    expect(cmsHash({ seq: 1, ...f('access-check', 'granted'), prev: GENESIS })).toBe(h);
    // sha256("dcms-baton-v1\n" + '[1,1700000000000,"door-1","04A1B2C3D4E5F6","A1C001",1,1,"access-check","granted","000…0"]'), by sha256sum
    expect(h).toBe('bfa028729ca5b8462bcd0412c0530873bed6f4e7477cffe8cd65b44684230f0a');
  });

  it('property: any field change changes the hash, on both sides alike', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e6 }), fc.string({ maxLength: 20 }), fc.string({ minLength: 1, maxLength: 20 }), (seq, op, result) => {
        const a = { ...f(op || 'x', result) };
        const h = batonHash(seq, a, GENESIS);
        expect(cmsHash({ seq, ...a, prev: GENESIS })).toBe(h);
        expect(batonHash(seq + 1, a, GENESIS)).not.toBe(h);
        expect(batonHash(seq, { ...a, result: result + '!' }, GENESIS)).not.toBe(h);
      }),
      { numRuns: 200 },
    );
  });

  it('appends, chains, survives reopen, keeps the acknowledgement', () => {
    const d = dir();
    const b = AuditBaton.open(d);
    const e1 = b.append(f('a'));
    const e2 = b.append(f('b'));
    expect(e1.seq).toBe(1);
    expect(e2.prev).toBe(e1.hash);
    b.acknowledge(1);
    b.close();
    const r = AuditBaton.open(d);
    expect(r.length).toBe(2);
    expect(r.acknowledged).toBe(1);
    expect(r.pending().map((e) => e.seq)).toEqual([2]);
    expect(r.append(f('c')).prev).toBe(e2.hash);
    r.close();
    // appends after a reopen go to the end of the file (not over the first entries)
    const r2 = AuditBaton.open(d);
    expect(r2.all().map((e) => e.op)).toEqual(['a', 'b', 'c']);
    r2.close();
  });

  it('holds only unacknowledged entries in memory; the chain, pending(), all(), the ack file and a reopen are unchanged', async () => {
    const d = dir();
    const b = AuditBaton.open(d, { fsync: 'never' });
    const held = () => (b as unknown as { entries: unknown[] }).entries.length;
    const ops = Array.from({ length: 1000 }, (_, i) => `op${i}`);
    for (const op of ops.slice(0, 600)) b.append(f(op));
    b.acknowledge(400);
    expect(held()).toBe(200); // 400 acknowledged: left memory (the file keeps them)
    expect(b.pending(3).map((e) => e.seq)).toEqual([401, 402, 403]);
    b.acknowledge(600);
    expect([held(), b.length, b.pending().length]).toEqual([0, 600, 0]);
    const head = b.head;
    const next = b.append(f(ops[600]!));
    expect([next.seq, next.prev]).toEqual([601, head.hash]); // chains to an entry no longer in memory
    for (const op of ops.slice(601)) b.append(f(op));
    expect(held()).toBe(400);
    expect(b.all().map((e) => e.op)).toEqual(ops); // every entry, from the file
    await b.ackDurable();
    expect(JSON.parse(readFileSync(join(d, 'baton.ack'), 'utf8'))).toEqual({ seq: 600, hash: head.hash });
    b.close();
    const r = AuditBaton.open(d); // the whole chain verifies
    expect([r.length, r.acknowledged, (r as unknown as { entries: unknown[] }).entries.length]).toEqual([1000, 600, 400]);
    expect(r.pending(1)[0]!.prev).toBe(head.hash);
    r.close();
  });

  it('acknowledgements reach the file in the background (never a synchronous fsync on the hot path); close writes the last one', async () => {
    const d = dir();
    const b = AuditBaton.open(d);
    for (const op of ['a', 'b', 'c']) b.append(f(op));
    b.acknowledge(1);
    b.acknowledge(2); // while the first is being written: only the newest needs to land
    expect(b.acknowledged).toBe(2); // in memory at once: the next upload starts after it
    expect(b.pending().map((e) => e.seq)).toEqual([3]);
    await b.ackDurable();
    expect(JSON.parse(readFileSync(join(d, 'baton.ack'), 'utf8'))).toEqual({ seq: 2, hash: b.all()[1]!.hash });
    // a crash before the newest acknowledgement reached the disk only means re-sending those entries
    b.acknowledge(3);
    const crashed = JSON.parse(readFileSync(join(d, 'baton.ack'), 'utf8')) as { seq: number };
    expect([2, 3]).toContain(crashed.seq);
    b.close(); // synchronous: the file holds the newest
    expect(JSON.parse(readFileSync(join(d, 'baton.ack'), 'utf8')).seq).toBe(3);
    const r = AuditBaton.open(d);
    expect([r.acknowledged, r.pending().length]).toEqual([3, 0]);
    r.close();
    // an acknowledgement beyond the log is refused and changes nothing
    const x = AuditBaton.open(dir());
    x.append(f('a'));
    expect(() => x.acknowledge(2)).toThrow(expect.objectContaining({ code: 'ERR_BATON_CORRUPT' }));
    expect(x.acknowledged).toBe(0);
    x.close();
  });

  it('drops a torn last line (crash mid-write), refuses a modified entry', () => {
    const d = dir();
    const b = AuditBaton.open(d);
    b.append(f('a'));
    b.append(f('b'));
    b.close();
    appendFileSync(join(d, 'baton.log'), '{"seq":3,"time":17');
    const r = AuditBaton.open(d);
    expect(r.length).toBe(2);
    expect(r.append(f('c')).seq).toBe(3);
    r.close();
    const text = readFileSync(join(d, 'baton.log'), 'utf8').replace('"op":"b"', '"op":"B"');
    writeFileSync(join(d, 'baton.log'), text);
    expect(() => AuditBaton.open(d)).toThrow(expect.objectContaining({ code: 'ERR_BATON_CORRUPT' }));
  });

  it('refuses malformed fields and out-of-range acknowledgements', () => {
    const b = AuditBaton.open(dir());
    expect(() => b.append({ ...f('a'), aid: 'XYZ' })).toThrow(expect.objectContaining({ code: 'ERR_READER_CONFIG' }));
    expect(b.length).toBe(0);
    expect(() => b.acknowledge(1)).toThrow(expect.objectContaining({ code: 'ERR_BATON_CORRUPT' }));
    b.close();
  });
});

describe('audit baton durability modes', () => {
  it("strict mode ('always'): every entry is durable when append returns", () => {
    const b = AuditBaton.open(dir(), { fsync: 'always' });
    expect(b.mode).toBe('always');
    for (let i = 1; i <= 3; i++) {
      b.append(f(`op${i}`));
      expect(b.durable).toBe(i);
    }
    b.close();
  });

  it("group mode (default): written at once, durable after flush(), in one shared fdatasync", async () => {
    const d = dir();
    const b = AuditBaton.open(d, { groupMs: 10_000 });
    expect(b.mode).toBe('group');
    b.append(f('a'));
    b.append(f('b'));
    // written to the file (a process crash loses nothing) ...
    expect(readFileSync(join(d, 'baton.log'), 'utf8').trim().split('\n')).toHaveLength(2);
    // ... but not yet flushed to the device
    expect(b.durable).toBe(0);
    await Promise.all([b.flush(), b.flush()]);
    expect(b.durable).toBe(2);
    b.append(f('c'));
    expect(b.durable).toBe(2);
    await b.flush();
    expect(b.durable).toBe(3);
    b.close();
    expect(AuditBaton.open(d).all().map((e) => e.op)).toEqual(['a', 'b', 'c']);
  });

  it('group mode: the background timer and the entry threshold flush without being asked', async () => {
    const b = AuditBaton.open(dir(), { groupMs: 20, groupEntries: 1000 });
    b.append(f('a'));
    await vi.waitFor(() => expect(b.durable).toBe(1), { timeout: 10_000, interval: 10 });
    const c = AuditBaton.open(dir(), { groupMs: 10_000, groupEntries: 4 });
    for (let i = 0; i < 4; i++) c.append(f(`x${i}`));
    await vi.waitFor(() => expect(c.durable).toBe(4), { timeout: 10_000, interval: 10 });
    b.close();
    c.close();
  });

  it('close() flushes; an unclosed baton is reported as an unclean shutdown at the next open', () => {
    const d = dir();
    const b = AuditBaton.open(d, { groupMs: 10_000 });
    expect(b.uncleanShutdown).toBe(false);
    b.append(f('a'));
    b.close();
    expect(b.durable).toBe(1);
    const r = AuditBaton.open(d);
    expect(r.uncleanShutdown).toBe(false); // closed cleanly
    r.append(f('b')); // never closed: like a kill -9
    const r2 = AuditBaton.open(d);
    expect(r2.uncleanShutdown).toBe(true);
    expect(r2.all().map((e) => e.op)).toEqual(['a', 'b']);
    r2.close();
    expect(AuditBaton.open(d).uncleanShutdown).toBe(false);
  });

  it('refuses an unknown mode and bad group parameters (nothing opened)', () => {
    expect(() => AuditBaton.open(dir(), { fsync: 'sometimes' as never })).toThrow(expect.objectContaining({ code: 'ERR_READER_CONFIG' }));
    expect(() => AuditBaton.open(dir(), { groupEntries: 0 })).toThrow(expect.objectContaining({ code: 'ERR_READER_CONFIG' }));
  });
});

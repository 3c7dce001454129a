// The CMS side of the baton (BatonService) on SQLite and a real PostgreSQL: continuity, idempotency
// under concurrent duplicate uploads, alerts once, denylist.
import { afterAll, describe, expect, it } from 'vitest';
import { AUDIT_CHUNK, type BatonAudit, BatonService } from '../../src/cms/baton/service.js';
import type { AuditInput } from '../../src/cms/audit/entry.js';
import { GENESIS, batonHash, type BatonWireEntry } from '../../src/cms/baton/chain.js';
import { type Backend, postgresAvailable, postgresBackend, sqliteBackend } from '../cms/storage-backends.js';

function chain(readerId: string, n: number, from = 1, prev = GENESIS): BatonWireEntry[] {
  const out: BatonWireEntry[] = [];
  for (let seq = from; seq < from + n; seq++) {
    const e = { seq, time: 1_700_000_000_000 + seq, readerId, cardUid: '04A1B2C3D4E5F6', aid: 'CAFE01', keyNo: 1, keyVersion: 1, op: 'purse-debit', result: `ok:1:${seq}`, prev };
    const hash = batonHash(e);
    out.push({ ...e, hash });
    prev = hash;
  }
  return out;
}

const pg = await postgresAvailable();
const backends: (() => Backend)[] = [sqliteBackend, ...(pg ? [postgresBackend] : [])];
const cleanups: Backend[] = [];
afterAll(async () => {
  for (const b of cleanups) await b.cleanup();
});

describe.each(backends.map((b) => [b().name, b] as const))('baton service on %s', (_name, make) => {
  it('stores a chain once even when the same batch is uploaded concurrently; alerts once per anomaly', async () => {
    const b = make();
    cleanups.push(b);
    const h = await b.open();
    const svc = new BatonService(h.db);
    const all = chain('r1', 20);
    const rs = await Promise.allSettled([svc.sync('r1', all.slice(0, 10)), svc.sync('r1', all.slice(0, 10)), svc.sync('r1', all.slice(0, 12))]);
    const ok = rs.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<{ stored: number }>).value.stored);
    expect(ok.length).toBe(3); // serialised per reader: each later upload sees the earlier ones as duplicates
    expect(ok.reduce((s, x) => s + x, 0)).toBe(12);
    expect((await svc.sync('r1', all)).acked).toBe(20);
    expect((await svc.entries('r1')).map((e) => e.seq)).toEqual(all.map((e) => e.seq));
    // gap, twice: one alert
    const later = chain('r1', 2, 25, all[19]!.hash);
    await expect(svc.sync('r1', later)).rejects.toMatchObject({ code: 'ERR_BATON_GAP' });
    await expect(svc.sync('r1', later)).rejects.toMatchObject({ code: 'ERR_BATON_GAP' });
    const alerts = await h.db.selectFrom('audit_alerts').selectAll().where('subject', '=', 'reader:r1').execute();
    expect(alerts.map((a) => a.rule)).toEqual(['baton-gap']);
    // another reader's chain is independent
    expect((await svc.sync('r2', chain('r2', 3))).acked).toBe(3);
    // denylist
    await svc.deny('04a1b2c3d4e5f6', 'stolen', 'operator:t');
    expect(await svc.denylist()).toEqual(['04A1B2C3D4E5F6']);
    await expect(svc.deny('nothex', 'x', 'y')).rejects.toMatchObject({ code: 'ERR_BATON_BAD_INPUT' });
    expect(await svc.allow('04A1B2C3D4E5F6')).toBe(true);
    expect(await svc.denylist()).toEqual([]);
  }, 60_000);
  it('hands a batch of one chunk to the audit log at once, in order (one group commit, not one per entry); a failed audit record refuses the batch and stores nothing', async () => {
    const b = make();
    cleanups.push(b);
    const h = await b.open();
    // an audit log that settles each record on a later turn of the event loop, like the real one
    const seen: AuditInput[] = [];
    let pending = 0;
    let maxPending = 0;
    let failOn: number | undefined;
    const audit: BatonAudit = {
      record(input) {
        seen.push(input);
        pending++;
        maxPending = Math.max(maxPending, pending);
        const fail = failOn !== undefined && (input.details as { batonSeq?: number } | undefined)?.batonSeq === failOn;
        return new Promise((resolve, reject) =>
          setImmediate(() => {
            pending--;
            if (fail) reject(new Error('audit store failed'));
            else resolve(undefined);
          }),
        );
      },
    };
    const svc = new BatonService(h.db, Date.now, audit);
    const all = chain('r3', 30);
    const n = AUDIT_CHUNK - 1; // one chunk with the summary (a larger upload goes in chunks: test/cms/baton-chunks.test.ts)
    expect((await svc.sync('r3', all.slice(0, n))).acked).toBe(n);
    // all n operations + the batch summary were queued before the first settled
    expect(maxPending).toBe(n + 1);
    expect(seen.map((x) => x.operation)).toEqual([...Array(n).fill('reader.purse-debit'), 'reader.baton']);
    expect(seen.slice(0, n).map((x) => (x.details as { batonSeq: number }).batonSeq)).toEqual(all.slice(0, n).map((e) => e.seq));
    expect(seen[n]!.details).toMatchObject({ seqFrom: 1, seqTo: n });
    // fail closed: one entry's audit record fails -> the upload is refused, nothing stored or acknowledged
    failOn = 25;
    await expect(svc.sync('r3', all.slice(n))).rejects.toThrow('audit store failed');
    expect(pending).toBe(0); // every record settled before the refusal
    expect((await svc.head('r3')).seq).toBe(n);
    failOn = undefined;
    expect((await svc.sync('r3', all.slice(n))).acked).toBe(30);
    expect((await svc.entries('r3')).map((e) => e.seq)).toEqual(all.map((e) => e.seq));
  }, 60_000);
});

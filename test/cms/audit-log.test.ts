// The audit log on SQLite and a real PostgreSQL: group commit, proofs, checkpoints, export,
// verification that names the first bad entry (export and database), tenant views, fail-closed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/cms/storage/index.js';
import type { AuditLog } from '../../src/cms/audit/log.js';
import { verifyDatabase } from '../../src/cms/audit/db-verify.js';
import { exportLog } from '../../src/cms/audit/export.js';
import { verifyJsonl } from '../../src/cms/audit/verify.js';
import { verifyConsistency, verifyInclusion } from '../../src/cms/audit/merkle.js';
import { nodeAuditCrypto as c } from '../../src/cms/audit/node-crypto.js';
import { unhex } from '../../src/cms/audit/crypto.js';
import { pruneOlderThan } from '../../src/cms/audit/retention.js';
import { Ed25519CheckpointSigner, verifierKey } from '../../src/cms/audit/signer.js';
import { type Backend, postgresAvailable, postgresBackend, sqliteBackend } from './storage-backends.js';
import { ORIGIN, openLog, sampleEntry } from './audit-fixture.js';

const pgOk = await postgresAvailable();
const N = 60;

async function exportLines(log: AuditLog, opts: { tenant?: string } = {}): Promise<string[]> {
  const lines: string[] = [];
  await exportLog(log, { ...opts, write: (l) => void lines.push(l) });
  return lines;
}

for (const make of [sqliteBackend, postgresBackend]) {
  const kind = make === sqliteBackend ? 'sqlite' : 'postgres';
  describe.skipIf(kind === 'postgres' && !pgOk)(`audit log on ${kind}`, () => {
    let backend: Backend;
    let h: DatabaseHandle;
    let fx: Awaited<ReturnType<typeof openLog>>;
    let lines: string[];
    let cp20: { size: number; root: Uint8Array };

    beforeAll(async () => {
      backend = make();
      h = await backend.open();
      fx = await openLog(h);
      // the first 20 sequentially, then 40 concurrently (group commit)
      for (let i = 0; i < 20; i++) await fx.log.record(sampleEntry(i));
      cp20 = await fx.log.checkpoint();
      const rest = await Promise.all(Array.from({ length: N - 20 }, (_, k) => fx.log.record(sampleEntry(20 + k))));
      expect(rest.map((e) => e.index).sort((a, b) => a - b)).toEqual(Array.from({ length: N - 20 }, (_, k) => 20 + k));
      await fx.log.checkpoint();
      lines = await exportLines(fx.log);
    }, 60_000);
    afterAll(async () => {
      await fx?.log.close();
      await backend?.cleanup();
    }, 30_000);

    const verify = (ls: string[]) => verifyJsonl(ls, { crypto: c, key: fx.key, origin: ORIGIN });
    const entryLine = (ls: string[], index: number) => ls.findIndex((l) => l.includes('"type":"entry"') && JSON.parse(l).entry.index === index);

    it('assigns consecutive indexes and reports healthy', () => {
      expect(fx.log.size).toBe(N);
      expect(fx.log.health()).toMatchObject({ status: 'ok', treeSize: N, queued: 0, lastCheckpointSize: N });
    });

    it('a full export verifies offline, with both checkpoints and their consistency proof', () => {
      const r = verify(lines);
      expect(r.failure).toBeUndefined();
      expect(r).toMatchObject({ ok: true, mode: 'full', entries: N, checkpoints: 2, consistencyProofs: 1 });
      expect(r.latest?.size).toBe(N);
    });

    it('the live database verifies offline', async () => {
      const r = await verifyDatabase(h, fx.key, ORIGIN);
      expect(r.failure).toBeUndefined();
      expect(r.entries).toBe(N);
    });

    it('consistency between two checkpoints is proven (and a forged history is not)', async () => {
      const latest = (await fx.log.latestCheckpoint())!;
      const proof = (await fx.log.consistencyProof(cp20.size, latest.size)).map((x) => unhex(x)!);
      expect(verifyConsistency(c, cp20.size, latest.size, cp20.root, latest.root, proof)).toBe(true);
      const forged = new Uint8Array(cp20.root);
      forged[0]! ^= 1;
      expect(verifyConsistency(c, cp20.size, latest.size, forged, latest.root, proof)).toBe(false);
    });

    it('inclusion proofs over the API verify against the signed root', async () => {
      const latest = (await fx.log.latestCheckpoint())!;
      for (const i of [0, 1, 19, 20, 37, N - 1]) {
        const p = await fx.log.inclusionProof(i);
        expect(p.treeSize).toBe(N);
        expect(verifyInclusion(c, i, N, fx.log.leafHash(i), p.hashes.map((x) => unhex(x)!), latest.root)).toBe(true);
      }
      await expect(fx.log.inclusionProof(N)).rejects.toMatchObject({ code: 'ERR_AUDIT_PROOF' });
    });

    describe('tampering with the export is detected and names the entry', () => {
      const mutate = (fn: (ls: string[]) => void) => {
        const ls = [...lines];
        fn(ls);
        return verify(ls);
      };
      for (const target of [0, 7, 33, N - 1]) {
        it(`changing entry ${target}`, () => {
          const r = mutate((ls) => {
            const i = entryLine(ls, target);
            const o = JSON.parse(ls[i]!);
            o.entry.result = 'denied';
            ls[i] = JSON.stringify(o);
          });
          expect(r.ok).toBe(false);
          expect(r.failure?.index).toBe(target);
          expect(r.failure?.reason).toMatch(/changed/);
        });
        it(`deleting entry ${target}`, () => {
          const r = mutate((ls) => void ls.splice(entryLine(ls, target), 1));
          expect(r.ok).toBe(false);
          expect(r.failure?.index).toBe(target);
          expect(r.failure?.reason).toMatch(/missing/);
        });
      }
      it('inserting an entry (with a self-consistent leaf hash) in the middle', () => {
        const r = mutate((ls) => {
          const i = entryLine(ls, 12);
          ls.splice(i, 0, ls[i]!); // a duplicate of entry 12 before it
        });
        expect(r.failure?.index).toBe(13);
        expect(r.failure?.reason).toMatch(/inserted|duplicated|reordered/);
      });
      it('inserting an entry after the end', () => {
        const r = mutate((ls) => {
          const o = JSON.parse(ls[entryLine(ls, N - 1)]!);
          o.entry.index = N;
          delete o.leafHash;
          ls.push(JSON.stringify(o));
        });
        expect(r.failure?.index).toBe(N);
      });
      it('reordering two entries', () => {
        const r = mutate((ls) => {
          const a = entryLine(ls, 3);
          const b = entryLine(ls, 4);
          [ls[a], ls[b]] = [ls[b]!, ls[a]!];
        });
        expect(r.failure?.index).toBe(3);
      });
      it('reordering and renumbering two entries', () => {
        const r = mutate((ls) => {
          const a = entryLine(ls, 3);
          const b = entryLine(ls, 4);
          const oa = JSON.parse(ls[a]!);
          const ob = JSON.parse(ls[b]!);
          [oa.entry.index, ob.entry.index] = [4, 3];
          ls[a] = JSON.stringify(ob);
          ls[b] = JSON.stringify(oa);
        });
        expect(r.failure?.index).toBe(3);
      });
      it('changing an entry and its leaf hash together: the signed root disagrees', () => {
        const r = mutate((ls) => {
          const i = entryLine(ls, 25);
          const o = JSON.parse(ls[i]!);
          delete o.leafHash;
          o.entry.operation = 'nothing.to.see';
          ls[i] = JSON.stringify(o);
        });
        expect(r.ok).toBe(false);
        expect(r.failure?.index).toBe(20); // first entry after the last checkpoint that still verified
        expect(r.failure?.reason).toMatch(/signed root/);
      });
      it('a checkpoint with a bad signature, or signed by another key', () => {
        const bad = mutate((ls) => {
          const i = ls.findIndex((l) => l.includes('"type":"checkpoint"'));
          const o = JSON.parse(ls[i]!);
          o.note = o.note.replace(/\n20\n/, '\n21\n');
          ls[i] = JSON.stringify(o);
        });
        expect(bad.failure?.reason).toMatch(/signature/);
        const other = verifierKey(Ed25519CheckpointSigner.generate(ORIGIN).vkey);
        expect(verifyJsonl(lines, { crypto: c, key: other }).failure?.reason).toMatch(/signature/);
      });
      it('removing every checkpoint proves nothing', () => {
        const r = mutate((ls) => {
          for (let i = ls.length - 1; i >= 0; i--) if (ls[i]!.includes('"type":"checkpoint"')) ls.splice(i, 1);
        });
        expect(r.ok).toBe(false);
      });
    });

    describe('tenant views', () => {
      it("a tenant's auditor sees only its entries, each with a verifying inclusion proof", async () => {
        const { checkpoint, entries } = await fx.log.view({ tenant: 'tenant-b' });
        expect(entries.length).toBe(Math.ceil(N / 3));
        for (const v of entries) {
          expect(v.entry.tenant).toBe('tenant-b');
          expect(verifyInclusion(c, v.entry.index, checkpoint.size, unhex(v.leafHash)!, v.proof.hashes.map((x) => unhex(x)!), checkpoint.root)).toBe(true);
        }
        const vl = await exportLines(fx.log, { tenant: 'tenant-b' });
        expect(vl.some((l) => l.includes('tenant-a'))).toBe(false);
        const r = verify(vl);
        expect(r.failure).toBeUndefined();
        expect(r).toMatchObject({ ok: true, mode: 'view', entries: entries.length });
        // tamper: change one entry of the view
        const i = vl.findIndex((l) => l.includes('"type":"entry"') && JSON.parse(l).entry.index === 9);
        const o = JSON.parse(vl[i]!);
        o.entry.operation = 'key.release.forged';
        delete o.leafHash;
        const t = [...vl];
        t[i] = JSON.stringify(o);
        expect(verify(t).failure?.index).toBe(9);
        // an entry of another tenant slipped in
        const foreign = JSON.parse(lines[entryLine(lines, 1)]!);
        const t2 = [...vl];
        t2.splice(i, 0, JSON.stringify({ ...foreign, proof: { index: 1, treeSize: N, hashes: [] } }));
        expect(verify(t2).failure?.index).toBe(1);
      });
      it('a view needs a tenant or AIDs', async () => {
        await expect(fx.log.view({})).rejects.toMatchObject({ code: 'ERR_AUDIT_INPUT' });
      });
    });

    describe('tampering with the database is detected and names the entry', () => {
      const restore = async (idx: number, fn: () => Promise<void>) => {
        const row = await h.db.selectFrom('audit_entries').selectAll().where('idx', '=', idx).executeTakeFirstOrThrow();
        try {
          await fn();
        } finally {
          await h.db.deleteFrom('audit_entries').where('idx', '=', idx).execute();
          await h.db.insertInto('audit_entries').values(row).execute();
        }
      };
      it('changing a row', async () => {
        await restore(5, async () => {
          await h.db.updateTable('audit_entries').set({ result: 'error' }).where('idx', '=', 5).execute();
          const r = await verifyDatabase(h, fx.key);
          expect(r.failure).toMatchObject({ index: 5 });
          expect(r.failure?.reason).toMatch(/changed/);
        });
      });
      it('deleting a row', async () => {
        await restore(9, async () => {
          await h.db.deleteFrom('audit_entries').where('idx', '=', 9).execute();
          expect((await verifyDatabase(h, fx.key)).failure).toMatchObject({ index: 9 });
        });
      });
      it('deleting a row with its leaf', async () => {
        const leaf = await h.db.selectFrom('audit_leaves').selectAll().where('idx', '=', 11).executeTakeFirstOrThrow();
        await restore(11, async () => {
          await h.db.deleteFrom('audit_entries').where('idx', '=', 11).execute();
          await h.db.deleteFrom('audit_leaves').where('idx', '=', 11).execute();
          try {
            expect((await verifyDatabase(h, fx.key)).failure).toMatchObject({ index: 11 });
          } finally {
            await h.db.insertInto('audit_leaves').values(leaf).execute();
          }
        });
      });
      it('inserting a row', async () => {
        const row = await h.db.selectFrom('audit_entries').selectAll().where('idx', '=', 2).executeTakeFirstOrThrow();
        await h.db.insertInto('audit_entries').values({ ...row, idx: N + 5 }).execute();
        try {
          expect((await verifyDatabase(h, fx.key)).failure).toMatchObject({ index: N + 5 });
        } finally {
          await h.db.deleteFrom('audit_entries').where('idx', '=', N + 5).execute();
        }
      });
      it('swapping two rows (reorder)', async () => {
        const a = await h.db.selectFrom('audit_entries').selectAll().where('idx', '=', 14).executeTakeFirstOrThrow();
        const b = await h.db.selectFrom('audit_entries').selectAll().where('idx', '=', 15).executeTakeFirstOrThrow();
        await restore(14, () =>
          restore(15, async () => {
            await h.db.deleteFrom('audit_entries').where('idx', 'in', [14, 15]).execute();
            await h.db.insertInto('audit_entries').values([{ ...b, idx: 14 }, { ...a, idx: 15 }]).execute();
            expect((await verifyDatabase(h, fx.key)).failure).toMatchObject({ index: 14 });
          }),
        );
      });
      it('and the restored database verifies again', async () => {
        expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
      });
    });

    it('a second process appending to the same database interleaves consecutively and is seen by the first', async () => {
      const other = kind === 'postgres' ? await backend.open() : h;
      const fx2 = await openLog(other, {}, fx.signer);
      await Promise.all([
        ...Array.from({ length: 10 }, (_, i) => fx.log.record(sampleEntry(100 + i))),
        ...Array.from({ length: 10 }, (_, i) => fx2.log.record(sampleEntry(200 + i))),
      ]);
      await fx2.log.close();
      const cp = await fx.log.checkpoint();
      expect(cp.size).toBe(N + 20);
      const r = verify(await exportLines(fx.log));
      expect(r.failure).toBeUndefined();
      expect((await verifyDatabase(h, fx.key)).ok).toBe(true);
    }, 30_000);

    it('retention prunes bodies, keeps leaves: the database and exports still verify', async () => {
      const before = (await fx.log.latestCheckpoint())!.size;
      const res = await pruneOlderThan(fx.log, fx.store, 1_760_000_000_000 + 10 * 1000); // entries 0..9
      expect(res.pruned).toBe(10);
      const r = await verifyDatabase(h, fx.key);
      expect(r.failure).toBeUndefined();
      expect(r).toMatchObject({ pruned: 10, entries: before - 10 });
      const ex = await exportLines(fx.log);
      expect(ex.filter((l) => l.includes('"type":"leaf"'))).toHaveLength(10);
      expect(verify(ex).ok).toBe(true);
      // a body deleted above the retention watermark is still a deletion
      await h.db.deleteFrom('audit_entries').where('idx', '=', 30).execute();
      expect((await verifyDatabase(h, fx.key)).failure).toMatchObject({ index: 30 });
    });
  });
}

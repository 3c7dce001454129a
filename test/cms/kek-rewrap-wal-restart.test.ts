// The KEK rewrap run's page commit on SQLite with the native connection (its own BEGIN IMMEDIATE,
// not through the Kysely dialect) passes the file's WAL restart gate (src/cms/storage/checkpointer.ts):
// while the checkpointer thread's RESTART holds the write lock, the commit waits for it
// asynchronously — the event loop runs meanwhile (the timer that ends the RESTART fires) — and then
// commits. Without the gate it waited in SQLite's busy handler on the event loop, so the timer could
// not fire: 5 s blocked, then 'database is locked'. The RESTART is held for real, as in
// test/cms/storage-wal-restart.test.ts: a reader on another connection keeps it waiting (./wal-restart-hold.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { ApprovalService } from '../../src/cms/approvals/service.js';
import { KekService } from '../../src/cms/kek/rewrap.js';
import { NO_AUDIT } from '../../src/cms/rotation/audit.js';
import { leaseWalCheckpointer, walRestartGate } from '../../src/cms/storage/index.js';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import type { Custody } from '../../src/custody/custody.js';
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { MemoryVaultStore } from '../../src/custody/store.js';
import type { CallerContext, KeyBinding } from '../../src/custody/types.js';
import { walRestartHolder } from './wal-restart-hold.js';
import { tempSqliteFile } from './sqlite-file.js';

const CTX: CallerContext = { actor: 'test', purpose: 'rewrap wal restart test', correlationId: 'c-wal' };
const KEK = 'kek.acme';
const bind = (i: number): KeyBinding => ({ tenant: 'acme', aid: 'A1B2C3', uid: '04' + (0x400000 + i).toString(16).toUpperCase().padStart(6, '0') + 'A0B0C0', keyNo: 0, version: 1 });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('KEK rewrap page commit (SQLite, native) and the WAL restart gate', () => {
  it('waits for the checkpointer RESTART off the event loop, then commits the page', async () => {
    const { h, file } = await tempSqliteFile('dcms-kek-wal-', cleanups);
    const v = await EmbeddedVault.open(new MemoryVaultStore());
    cleanups.push(() => v.close());
    await v.init({ passphrase: 'correct horse battery staple', scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    const c = v.custody(new MemoryAuditSink());
    await h.db.insertInto('tenants').values({ id: 'acme', name: 'Acme', created_at: 1 }).execute();
    await h.db.insertInto('applications').values({ aid: 'A1B2C3', tenant_id: 'acme', name: 'doors', key_type: 'aes', key_count: 1, layout_name: 't', definition: '{}', created_at: 1 }).execute();
    await c.createKey(CTX, KEK, { purpose: 'wrap' });
    const n = 20;
    for (let i = 0; i < n; i++) {
      const b = bind(i);
      await h.db.insertInto('card_key_blobs').values({ uid: b.uid, aid: b.aid, key_no: 0, key_version: 1, kek: KEK, blob: (await c.generateKey(CTX, KEK, 'aes128', b)).blob, state: 'active', job_id: 'j', created_at: 1 }).execute();
    }
    await c.rotateKey(CTX, KEK);

    // a RESTART at every interval once the WAL holds a frame; it waits up to a minute for readers
    const lease = leaseWalCheckpointer(h.sqlite!, { intervalMs: 5, restartFrames: 1, restartWaitMs: 60_000 });
    cleanups.push(() => lease.release());
    const gate = walRestartGate(h.sqlite!)!;
    const holder = walRestartHolder(file, gate);
    cleanups.push(() => holder.close());
    let fired = false;
    let held = false;
    /** Hold the RESTART; a timer ends it in 20 ms. */
    const holdRestart = async (): Promise<void> => {
      held = await holder.hold();
      setTimeout(() => {
        fired = true;
        holder.release();
      }, 20);
    };

    // the page's blobs are rewrapped, then the RESTART is held: the page commit comes next
    const holding = Object.create(c) as Custody;
    holding.rewrapMany = async (ctx, kek, items) => {
      const out = await c.rewrapMany(ctx, kek, items);
      await holdRestart();
      return out;
    };
    const kek = new KekService({ db: h.db, custody: holding, audit: NO_AUDIT, approvals: new ApprovalService({ db: h.db, audit: NO_AUDIT }), sqlite: h.sqlite! });
    const run = await kek.startRewrap(CTX, KEK);
    const page = await kek.runRewrap(CTX, run.id, { pageSize: n, maxPages: 1 });
    expect(held).toBe(true); // the thread held the write lock when the commit came
    expect(fired).toBe(true); // the event loop ran while the commit waited
    expect(page).toMatchObject({ state: 'running', rewrapped: n, skipped: 0, failed: 0 });
    const rows = await h.db.selectFrom('card_key_blobs').select('blob').execute();
    expect(rows.every((r) => r.blob.startsWith('dcms1.emb.2.'))).toBe(true);
  }, 60_000);
});

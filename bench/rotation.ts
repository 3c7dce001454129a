// Rotation benchmarks (engineer J):
//  - a campaign over 100,000 in-process virtual cards (quick: 10,000), 5% torn mid-ChangeKey:
//    cards/s end to end, and CMS-side ms per card (runner + storage, card executor excluded);
//  - KEK rewrap of 1,000,000 blobs (quick: 100,000) on SQLite with the embedded vault: blobs/s and
//    peak heap growth during the run, measured at two sizes (N/10 and N) to show it flat;
//  - planning a campaign (targets -> items in batches) over 1,000,000 cards (quick: 100,000).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { sql } from 'kysely';
import { simulateCampaign } from '../src/cli/commands/rotation.js';
import { DEFAULT_APPROVAL_POLICY } from '../src/cms/approvals/policy.js';
import { ApprovalService } from '../src/cms/approvals/service.js';
import { KekService } from '../src/cms/kek/rewrap.js';
import { NO_AUDIT } from '../src/cms/rotation/audit.js';
import { CampaignService } from '../src/cms/rotation/campaigns.js';
import { openDatabase } from '../src/cms/storage/index.js';
import { EmbeddedVault } from '../src/custody/embedded.js';
import { MemoryVaultStore } from '../src/custody/store.js';
import type { BenchOptions, Figure } from './types.js';

// live (retained) heap: sampled after a full GC, so garbage awaiting collection does not count
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const CTX = { actor: 'bench', purpose: 'rotation bench', correlationId: 'b' };
const AID = 'A1B2C3';

async function tempDb() {
  const dir = mkdtempSync(path.join(tmpdir(), 'desfire-bench-rot-'));
  const h = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'cms.sqlite') });
  return { h, done: async () => (await h.close(), rmSync(dir, { recursive: true, force: true })) };
}

async function custody() {
  const vault = await EmbeddedVault.open(new MemoryVaultStore());
  await vault.init({ passphrase: 'benchmark only, not a secret', scrypt: { N: 2 ** 10, r: 8, p: 1 } });
  // custody events are counted, not kept: the bench measures rewrap, not an in-memory sink
  return vault.custody({ append: async () => undefined });
}

/** N cards on version 1 of key 0 of AID, generated inside SQLite (no per-row round trip). */
async function seedCards(h: Awaited<ReturnType<typeof tempDb>>['h'], n: number): Promise<void> {
  await h.db.insertInto('tenants').values({ id: 'bench', name: 'bench', created_at: 1 }).execute();
  await h.db.insertInto('applications').values({ aid: AID, tenant_id: 'bench', name: 'b', key_type: 'aes', key_count: 1, layout_name: 'b', definition: '{}', created_at: 1 }).execute();
  const gen = sql`with recursive s(i) as (select 0 union all select i + 1 from s where i + 1 < ${n})`;
  const uid = sql`'04' || substr('0000000000' || printf('%X', i), -10, 10) || 'C0'`;
  await sql`${gen} insert into cards (uid, state, random_uid, picc_key_version, created_at, updated_at) select ${uid}, 'active', 0, 1, 1, 1 from s`.execute(h.db);
  await sql`${gen} insert into card_applications (uid, aid, installed_at) select ${uid}, ${AID}, 1 from s`.execute(h.db);
  await sql`${gen} insert into card_keys (uid, aid, key_no, key_version, updated_at) select ${uid}, ${AID}, 0, 1, 1 from s`.execute(h.db);
}

async function rewrapRun(n: number): Promise<{ blobsPerSecond: number; peakHeapMiB: number; seconds: number }> {
  const { h, done } = await tempDb();
  const c = await custody();
  try {
    await h.db.insertInto('tenants').values({ id: 'bench', name: 'bench', created_at: 1 }).execute();
    await h.db.insertInto('applications').values({ aid: AID, tenant_id: 'bench', name: 'b', key_type: 'aes', key_count: 1, layout_name: 'b', definition: '{}', created_at: 1 }).execute();
    await c.createKey(CTX, 'kek.bench', { purpose: 'wrap' });
    let rows: Record<string, string | number>[] = [];
    const flush = async () => {
      if (rows.length) await h.db.insertInto('card_key_blobs').values(rows as never).execute();
      rows = [];
    };
    await h.db.transaction().execute(async (tx) => {
      for (let i = 0; i < n; i++) {
        const uid = '04' + i.toString(16).toUpperCase().padStart(10, '0') + 'C0';
        const w = await c.generateKey(CTX, 'kek.bench', 'aes128', { tenant: 'bench', aid: AID, uid, keyNo: 1, version: 1 });
        rows.push({ uid, aid: AID, key_no: 1, key_version: 1, kek: 'kek.bench', blob: w.blob, state: 'active', job_id: 'b', created_at: 1 });
        if (rows.length >= 500) {
          await tx.insertInto('card_key_blobs').values(rows as never).execute();
          rows = [];
        }
      }
    });
    await flush();
    await c.rotateKey(CTX, 'kek.bench');
    const svc = new KekService({ db: h.db, custody: c, audit: NO_AUDIT, approvals: new ApprovalService({ db: h.db, audit: NO_AUDIT }), ...(h.sqlite ? { sqlite: h.sqlite } : {}) });
    const run = await svc.startRewrap(CTX, 'kek.bench');
    gc();
    const base = process.memoryUsage().heapUsed;
    let peak = base;
    let gcMs = 0;
    const t0 = performance.now();
    const r = await svc.runRewrap(CTX, run.id, {
      pageSize: 5000,
      onProgress: () => {
        const g0 = performance.now();
        gc();
        peak = Math.max(peak, process.memoryUsage().heapUsed);
        gcMs += performance.now() - g0;
      },
    });
    const ms = performance.now() - t0 - gcMs;
    if (r.rewrapped !== n) throw new Error(`rewrap: ${r.rewrapped} of ${n}`);
    return { blobsPerSecond: (n / ms) * 1000, peakHeapMiB: (peak - base) / 2 ** 20, seconds: ms / 1000 };
  } finally {
    await c.close();
    await done();
  }
}

export async function figures(opts: BenchOptions): Promise<Figure[]> {
  const out: Figure[] = [];
  const cards = opts.quick ? 10_000 : 100_000;
  const sim = await simulateCampaign({ cards, tornPercent: 5, batchSize: 1000 });
  if (sim.unknown !== 0 || sim.done + sim.failed !== cards) throw new Error('rotation bench: some cards ended unknown');
  out.push({ name: 'rotation.campaign_cards_per_s', value: sim.cardsPerSecond, unit: 'cards/s', note: `${cards} in-process virtual cards, 5% torn mid-ChangeKey, EV2 auth + ChangeKey + verify` });
  out.push({ name: 'rotation.campaign_server_ms_per_card', value: sim.serverMsPerCard, unit: 'ms', note: 'CMS side (runner + SQLite), card executor excluded' });

  const blobs = opts.quick ? 100_000 : 1_000_000;
  const small = await rewrapRun(blobs / 10);
  const big = await rewrapRun(blobs);
  out.push({ name: 'rotation.kek_rewrap_blobs_per_s', value: big.blobsPerSecond, unit: 'blobs/s', target: { op: '>=', value: 50_000 }, note: `${blobs} blobs, SQLite (native prepared page commit), embedded vault (batch rewrap on worker threads, one audit event per page), pages of 5000` });
  out.push({ name: 'rotation.kek_rewrap_peak_heap_mib', value: big.peakHeapMiB, unit: 'MiB', baseline: { name: `rotation.kek_rewrap_peak_heap_mib@${blobs / 10}`, value: small.peakHeapMiB }, note: `live heap growth (after GC) during the run at ${blobs} blobs vs ${blobs / 10}: flat = bounded by the page size` });

  const planCards = opts.quick ? 100_000 : 1_000_000;
  const { h, done } = await tempDb();
  try {
    await seedCards(h, planCards);
    const approvals = new ApprovalService({ db: h.db, audit: NO_AUDIT, policy: { ...DEFAULT_APPROVAL_POLICY, campaignCardThreshold: Number.MAX_SAFE_INTEGER } });
    const campaigns = new CampaignService({ db: h.db, audit: NO_AUDIT, approvals });
    const t0 = performance.now();
    const c = await campaigns.create({ tenantId: 'bench', aid: AID, keyNo: 0, fromVersion: 1, toVersion: 2, target: { kind: 'all' }, batchSize: 1000 }, 'bench');
    const s = (performance.now() - t0) / 1000;
    if (c.cardCount !== planCards) throw new Error(`planning: ${c.cardCount} of ${planCards}`);
    out.push({ name: 'rotation.plan_campaign_s', value: s, unit: 's', target: { op: '<=', value: 10 }, note: `${planCards} cards into ${Math.ceil(planCards / 1000)} batches (one INSERT ... SELECT)` });
  } finally {
    await done();
  }
  return out;
}

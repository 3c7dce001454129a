// kill -9 mid-campaign and mid-rewrap: a real child process is SIGKILLed while it works, then a
// new one resumes. Nothing is lost (every card ends verified on the new version, every blob under
// the new KEK version) and nothing is repeated (at most one successful ChangeKey per card; the
// rewrap counters equal the number of blobs).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { VirtualCard, loadImageSync, saveImageAtomicSync } from '../../src/card/index.js';
import { ApprovalService } from '../../src/cms/approvals/service.js';
import { KekService } from '../../src/cms/kek/rewrap.js';
import { NO_AUDIT } from '../../src/cms/rotation/audit.js';
import { CampaignService } from '../../src/cms/rotation/campaigns.js';
import { openDatabase } from '../../src/cms/storage/index.js';
import { fromHex, toHex } from '../../src/core/crypto/bytes.js';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { SqliteVaultStore } from '../../src/custody/store-sqlite.js';
import { AID, CTX, MASTER, TENANT, divInput } from './rotation-fixture.js';

const WORKER = fileURLToPath(new URL('./rotation-crash-worker.ts', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'desfire-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Run the worker; kill -9 it once its progress reaches `killAt` (if given). */
function runWorker(args: string[], killAt?: number): Promise<{ killed: boolean; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let killed = false;
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = [...out.matchAll(/progress (\d+)/g)].pop();
      if (killAt !== undefined && !killed && m && Number(m[1]) >= killAt) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (killed && signal === 'SIGKILL') resolve({ killed, out });
      else if (code === 0) resolve({ killed, out });
      else reject(new Error(`worker exited ${code} ${signal}: ${err}`));
    });
  });
}

async function setup(sub: string) {
  const base = path.join(dir, sub);
  const cards = path.join(base, 'cards');
  await import('node:fs').then((fs) => fs.mkdirSync(cards, { recursive: true }));
  const dbFile = path.join(base, 'cms.sqlite');
  const vaultFile = path.join(base, 'vault.sqlite');
  const handle = await openDatabase({ kind: 'sqlite', file: dbFile });
  const vault = await EmbeddedVault.open(await SqliteVaultStore.open(vaultFile));
  await vault.init({ passphrase: 'correct horse battery staple', scrypt: { N: 2 ** 10, r: 8, p: 1 } });
  const custody = vault.custody(new MemoryAuditSink());
  const approvals = new ApprovalService({ db: handle.db, audit: NO_AUDIT });
  return { base, cards, dbFile, vaultFile, handle, vault, custody, approvals };
}

describe('kill -9 mid-campaign and mid-rewrap', () => {
  it('campaign: resumed after SIGKILL, every card verified on v2, no ChangeKey repeated', async () => {
    const s = await setup('campaign');
    const N = 120;
    await s.custody.createKey(CTX, MASTER, { purpose: 'diversify', alg: 'aes128' });
    const now = Date.now();
    const db = s.handle.db;
    await db.insertInto('tenants').values({ id: TENANT, name: 'Acme', created_at: now }).execute();
    await db.insertInto('applications').values({ aid: AID, tenant_id: TENANT, name: 'doors', key_type: 'aes', key_count: 1, layout_name: 't', definition: '{}', created_at: now }).execute();
    const template = VirtualCard.create({ uid: fromHex('04000000000000') }).toImage();
    const uids: string[] = [];
    for (let i = 0; i < N; i++) {
      const uid = '04' + (0x300000 + i).toString(16).toUpperCase().padStart(6, '0') + 'A0B0C0';
      uids.push(uid);
      const key = await s.custody.exportForCard(CTX, { kind: 'diversified', master: MASTER, masterVersion: 1, input: divInput(uid), binding: { tenant: TENANT, aid: AID, uid, keyNo: 0, version: 1 } });
      saveImageAtomicSync(path.join(s.cards, uid + '.json'), { ...template, uid, apps: [{ aid: AID, keySettings: 0x0f, keyType: 'aes', keys: [{ key: toHex(key), version: 1 }], isoFileIds: false, files: [] }] });
      key.fill(0);
      await db.insertInto('cards').values({ uid, state: 'active', random_uid: 0, picc_key_version: 1, created_at: now, updated_at: now }).execute();
      await db.insertInto('card_applications').values({ uid, aid: AID, installed_at: now }).execute();
      await db.insertInto('card_keys').values({ uid, aid: AID, key_no: 0, key_version: 1, updated_at: now }).execute();
    }
    writeFileSync(path.join(s.cards, 'changekeys.log'), '');
    const campaigns = new CampaignService({ db, audit: NO_AUDIT, approvals: s.approvals, newVersion: async () => (await s.custody.rotateKey(CTX, MASTER)).latestVersion });
    const c = await campaigns.create({ tenantId: TENANT, aid: AID, keyNo: 0, fromVersion: 1, target: { kind: 'all' }, batchSize: 25 }, 'alice');
    await campaigns.start(c.id, 'alice');
    await s.custody.close();
    await s.handle.close();

    const first = await runWorker(['campaign', s.dbFile, s.vaultFile, s.cards, c.id], 43);
    expect(first.killed).toBe(true);
    const mid = await openDatabase({ kind: 'sqlite', file: s.dbFile });
    const pendingAfterKill = await mid.db.selectFrom('rotation_items').select('uid').where('campaign_id', '=', c.id).where('state', '=', 'pending').execute();
    await mid.close();
    expect(pendingAfterKill.length).toBeGreaterThan(0);
    expect(pendingAfterKill.length).toBeLessThan(N);
    const second = await runWorker(['campaign', s.dbFile, s.vaultFile, s.cards, c.id]);
    expect(second.out).toContain('result finished');

    const h = await openDatabase({ kind: 'sqlite', file: s.dbFile });
    const items = await h.db.selectFrom('rotation_items').select(['uid', 'state', 'card_version']).where('campaign_id', '=', c.id).execute();
    expect(items).toHaveLength(N);
    for (const it of items) {
      expect(it.state).toBe('done');
      expect(it.card_version).toBe(2);
      expect(loadImageSync(path.join(s.cards, it.uid + '.json')).apps[0]!.keys[0]!.version).toBe(2);
    }
    const journal = readFileSync(path.join(s.cards, 'changekeys.log'), 'utf8').trim().split('\n');
    // one line per successful ChangeKey, written right after the card applied it (a SIGKILL can
    // at most fall between the two and lose one line): no card was changed twice
    expect(new Set(journal).size).toBe(journal.length);
    expect(journal.length).toBeGreaterThanOrEqual(N - 1);
    await h.close();
  }, 180_000);

  it('rewrap: resumed after SIGKILL, every blob under the new KEK version, counted once', async () => {
    const s = await setup('rewrap');
    const N = 1500;
    const KEK = 'kek.acme';
    await s.custody.createKey(CTX, KEK, { purpose: 'wrap' });
    const db = s.handle.db;
    await db.insertInto('tenants').values({ id: TENANT, name: 'Acme', created_at: 1 }).execute();
    await db.insertInto('applications').values({ aid: AID, tenant_id: TENANT, name: 'doors', key_type: 'aes', key_count: 1, layout_name: 't', definition: '{}', created_at: 1 }).execute();
    const rows = [];
    for (let i = 0; i < N; i++) {
      const uid = '04' + (0x400000 + i).toString(16).toUpperCase().padStart(6, '0') + 'A0B0C0';
      const w = await s.custody.generateKey(CTX, KEK, 'aes128', { tenant: TENANT, aid: AID, uid, keyNo: 1, version: 1 });
      rows.push({ uid, aid: AID, key_no: 1, key_version: 1, kek: KEK, blob: w.blob, state: 'active', job_id: 'j', created_at: 1 });
    }
    for (let i = 0; i < N; i += 500) await db.insertInto('card_key_blobs').values(rows.slice(i, i + 500)).execute();
    const kek = new KekService({ db, custody: s.custody, audit: NO_AUDIT, approvals: s.approvals });
    await s.custody.rotateKey(CTX, KEK);
    const run = await kek.startRewrap(CTX, KEK);
    await s.custody.close();
    await s.handle.close();

    const first = await runWorker(['rewrap', s.dbFile, s.vaultFile, run.id], 500);
    expect(first.killed).toBe(true);
    const mid = await openDatabase({ kind: 'sqlite', file: s.dbFile });
    const cp = await mid.db.selectFrom('kek_rewrap_runs').selectAll().where('id', '=', run.id).executeTakeFirstOrThrow();
    await mid.close();
    expect(cp.state).toBe('running');
    expect(Number(cp.rewrapped)).toBeGreaterThan(0);
    expect(Number(cp.rewrapped)).toBeLessThan(N);
    const second = await runWorker(['rewrap', s.dbFile, s.vaultFile, run.id]);
    expect(second.out).toMatch(new RegExp(`result done ${N}`));

    const h = await openDatabase({ kind: 'sqlite', file: s.dbFile });
    const vault = await EmbeddedVault.open(await SqliteVaultStore.open(s.vaultFile));
    await vault.unsealWithPassphrase('correct horse battery staple');
    const custody = vault.custody(new MemoryAuditSink());
    const k2 = new KekService({ db: h.db, custody, audit: NO_AUDIT, approvals: new ApprovalService({ db: h.db, audit: NO_AUDIT }) });
    expect(await k2.census(KEK)).toEqual([{ kek: KEK, kekVersion: 2, blobs: N }]);
    expect(await k2.getRun(run.id)).toMatchObject({ state: 'done', rewrapped: N, failed: 0 });
    const all = await h.db.selectFrom('card_key_blobs').selectAll().execute();
    for (const r of all.filter((_, i) => i % 50 === 0)) {
      expect(await custody.verifyWrapped(CTX, KEK, r.blob, { tenant: TENANT, aid: AID, uid: r.uid, keyNo: 1, version: 1 })).toEqual({ kekVersion: 2 });
    }
    await custody.close();
    await h.close();
  }, 180_000);
});

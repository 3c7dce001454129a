// kill -9 of the real `desfire-cms server` process in the middle of a KEK rewrap started through
// the API (four-eyes approved), then a restart: the server resumes the unfinished run by itself at
// start (src/cms/ops/resume.ts, no API call), from the checkpoint that survived the crash; every
// blob ends under the new KEK version, counted exactly once.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OperatorTokens } from '../../src/cms/api/tokens/service.js';
import { openDatabase } from '../../src/cms/storage/index.js';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { SqliteVaultStore } from '../../src/custody/store-sqlite.js';
import { httpsJson, startServerProcess, type ServerProcess } from './server-process.js';

const PASS = 'rotation server crash passphrase';
const CTX = { actor: 'test', purpose: 'seed blobs', correlationId: 't' };
const started: ServerProcess[] = [];
afterAll(() => {
  for (const p of started) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});

describe('desfire-cms server: kill -9 mid-rewrap', () => {
  it('resumes from the checkpoint after a SIGKILL; nothing lost, nothing counted twice', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'srv-rot-'));
    const env = { DESFIRE_VAULT_PASSPHRASE: PASS, DESFIRE_CMS_HTTP_PORT: '0', DESFIRE_CMS_LOG_LEVEL: 'warn' };
    const first = await startServerProcess(['--data-dir', dataDir], env);
    started.push(first);
    const admin = first.bootstrapToken!;
    first.child.kill('SIGTERM');
    expect(await first.exit).toBe(0);

    // seed: an application and N random card keys wrapped under kek.acme, with the server's vault
    const N = 40_000; // 20 API pages of 2000: the kill falls between them (the batch rewrap is fast)
    const h = await openDatabase({ kind: 'sqlite', file: join(dataDir, 'cms.sqlite') });
    const vault = await EmbeddedVault.open(await SqliteVaultStore.open(join(dataDir, 'vault.sqlite')));
    await vault.unsealWithPassphrase(PASS);
    const custody = vault.custody(new MemoryAuditSink());
    await custody.createKey(CTX, 'kek.acme', { purpose: 'wrap' });
    await h.db.insertInto('tenants').values({ id: 'acme', name: 'Acme', created_at: 1 }).execute();
    await h.db.insertInto('applications').values({ aid: 'A1B2C3', tenant_id: 'acme', name: 'doors', key_type: 'aes', key_count: 2, layout_name: 't', definition: '{}', created_at: 1 }).execute();
    let rows = [];
    for (let i = 0; i < N; i++) {
      const uid = '04' + (0x500000 + i).toString(16).toUpperCase().padStart(6, '0') + 'A0B0C0';
      const w = await custody.generateKey(CTX, 'kek.acme', 'aes128', { tenant: 'acme', aid: 'A1B2C3', uid, keyNo: 1, version: 1 });
      rows.push({ uid, aid: 'A1B2C3', key_no: 1, key_version: 1, kek: 'kek.acme', blob: w.blob, state: 'active', job_id: 'j', created_at: 1 });
      if (rows.length === 500) {
        await h.db.insertInto('card_key_blobs').values(rows).execute();
        rows = [];
      }
    }
    const tokens = new OperatorTokens(h.db);
    const bob = (await tokens.create({ label: 'bob', roles: ['issuer_admin'], tenants: ['*'], createdBy: null })).token;
    const carol = (await tokens.create({ label: 'carol', roles: ['issuer_admin'], tenants: ['*'], createdBy: null })).token;
    await custody.close();
    await h.close();

    const a = await startServerProcess(['--data-dir', dataDir], env);
    started.push(a);
    const caFile = join(dataDir, 'pki', 'ca.pem');
    const api = (p: ServerProcess, method: string, path: string, token: string, body?: unknown) => httpsJson(p.url, caFile, method, path, { token, ...(body !== undefined ? { body } : {}) });
    expect((await api(a, 'GET', '/v1/kek/kek.acme/census', admin)).body).toEqual({ kek: 'kek.acme', latestVersion: 1, census: [{ kek: 'kek.acme', kekVersion: 1, blobs: N }], toRewrap: 0 });
    const req = await api(a, 'POST', '/v1/kek/kek.acme/rotation-requests', admin, { reason: 'crash test' });
    expect(req.status).toBe(201);
    const approvalId = req.body.approvalId as string;
    expect((await api(a, 'POST', `/v1/approvals/${approvalId}/approve`, admin)).body.error.code).toBe('ERR_APPROVAL_SELF');
    await api(a, 'POST', `/v1/approvals/${approvalId}/approve`, bob);
    await api(a, 'POST', `/v1/approvals/${approvalId}/approve`, carol);
    const rot = await api(a, 'POST', '/v1/kek/kek.acme/rotate', admin, { approvalId });
    expect(rot.status).toBe(202);
    const runId = rot.body.run.id as string;
    // kill -9 as soon as the first page is committed
    for (let i = 0; ; i++) {
      const r = await api(a, 'GET', `/v1/kek/runs/${runId}`, admin);
      if (r.body.rewrapped > 0) break;
      if (i > 3000) throw new Error('rewrap did not start');
      await new Promise((res) => setTimeout(res, 10));
    }
    a.child.kill('SIGKILL');
    await a.exit;
    // what the crash left: a running run with some pages committed
    const h2 = await openDatabase({ kind: 'sqlite', file: join(dataDir, 'cms.sqlite') });
    const mid = await h2.db.selectFrom('kek_rewrap_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow();
    await h2.close();
    expect(mid.state).toBe('running');
    expect(Number(mid.rewrapped)).toBeGreaterThan(0);
    expect(Number(mid.rewrapped)).toBeLessThan(N);
    expect(Number(mid.rewrapped) % 2000).toBe(0); // whole pages only

    // the restarted server resumes it by itself
    const b = await startServerProcess(['--data-dir', dataDir], env);
    started.push(b);
    for (let i = 0; !b.out.some((l) => l.includes('parked background job')); i++) {
      if (i > 600) throw new Error(`server did not report resumed work: ${b.out.join('\n')}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(b.out.join('\n')).toContain(`resumed 1 parked background job kek-rewrap-${runId}`);
    let done;
    for (let i = 0; ; i++) {
      done = (await api(b, 'GET', `/v1/kek/runs/${runId}`, admin)).body;
      if (done.state === 'done') break;
      if (i > 2400) throw new Error('rewrap did not finish');
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(done).toMatchObject({ state: 'done', rewrapped: N, skipped: 0, failed: 0 });
    expect((await api(b, 'GET', '/v1/kek/kek.acme/census', admin)).body).toEqual({ kek: 'kek.acme', latestVersion: 2, census: [{ kek: 'kek.acme', kekVersion: 2, blobs: N }], toRewrap: 0 });
    b.child.kill('SIGTERM');
    expect(await b.exit).toBe(0);
  }, 300_000);
});

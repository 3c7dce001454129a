// Graceful shutdown (src/cms/ops/shutdown.ts, `desfire-cms server`): BackgroundWork parks jobs on
// abort; and for real: a spawned server (node --import tsx src/cli/dev.ts server) resumes a KEK
// rewrap run parked by an earlier stop, gets SIGTERM while the run and API requests are in flight,
// exits 0 having parked the run at a committed page and committed every audit batch; a restart
// resumes the run to the end with nothing rewrapped twice, and the audit log verifies.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { buildCmsApp } from '../../src/cms/app.js';
import { loadConfig, resolveSecrets } from '../../src/cms/config/index.js';
import { KekService } from '../../src/cms/kek/rewrap.js';
import { ApprovalService } from '../../src/cms/approvals/service.js';
import { BackgroundWork, gracefulStop, ShutdownError } from '../../src/cms/ops/shutdown.js';
import { openDatabase } from '../../src/cms/storage/index.js';

describe('BackgroundWork', () => {
  it('aborts every job on stop, waits for it to park, refuses new work, reports an unresponsive job', async () => {
    const w = new BackgroundWork();
    let pages = 0;
    w.run('pager', async (signal) => {
      while (!signal.aborted) {
        await new Promise((r) => setTimeout(r, 5));
        pages++;
      }
    });
    w.run('quick', async () => undefined);
    w.run('stuck', () => new Promise(() => undefined));
    await new Promise((r) => setTimeout(r, 30));
    expect(w.list().map((j) => j.name).sort()).toEqual(['pager', 'stuck']);
    const out = await w.stop(500);
    expect(out.map((j) => [j.name, j.outcome]).sort()).toEqual([
      ['pager', 'parked'],
      ['stuck', 'unresponsive'],
    ]);
    expect(pages).toBeGreaterThan(0);
    expect(w.accepting).toBe(false);
    expect(() => w.run('late', async () => undefined)).toThrow(ShutdownError);
  });

  it('gracefulStop closes the services even when the HTTP drain fails', async () => {
    const order: string[] = [];
    const lines: string[] = [];
    await gracefulStop({
      server: { close: async () => Promise.reject(new Error('boom')) },
      work: new BackgroundWork(),
      metricsListener: { close: async () => void order.push('metrics') },
      services: { close: async () => void order.push('services') },
      graceMs: 100,
      report: (l) => lines.push(l),
    });
    expect(order).toEqual(['metrics', 'services']);
    expect(lines.join('\n')).toContain('http drain: boom');
  });
});

const PASS = 'shutdown test vault passphrase';
const KEK = 'kek.shutdown';
const TENANT = 'acme';
const AID = 'A1B2C3';
const N = 1500;
const CTX = { actor: 'test', purpose: 'shutdown test', correlationId: 'shutdown-test' };
const dir = mkdtempSync(join(tmpdir(), 'cms-sigterm-'));
const env = { DESFIRE_VAULT_PASSPHRASE: PASS, DESFIRE_CMS_TLS_MODE: 'off', DESFIRE_CMS_LOG_LEVEL: 'warn', DESFIRE_CMS_HTTP_PORT: '0', DESFIRE_CMS_METRICS_ENABLED: 'true', DESFIRE_CMS_METRICS_PORT: '0' };
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Server {
  child: ChildProcess;
  out: string[];
  exit: Promise<number | null>;
  waitFor(re: RegExp): Promise<RegExpMatchArray>;
}

function spawnServer(): Server {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/dev.ts', 'server', '--data-dir', dir], { cwd: process.cwd(), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out: string[] = [];
  const waiters: (() => void)[] = [];
  let buf = '';
  const onData = (d: Buffer) => {
    buf += d.toString('utf8');
    const parts = buf.split('\n');
    buf = parts.pop()!;
    out.push(...parts);
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    out,
    exit,
    waitFor(re) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (const l of out) {
            const m = l.match(re);
            if (m) return resolve(m);
          }
          if (child.exitCode !== null) return reject(new Error(`server exited (${child.exitCode}) before ${re}:\n${out.join('\n')}`));
          waiters.push(check);
        };
        child.once('exit', () => setTimeout(check, 50));
        check();
      });
    },
  };
}

async function runState(id: string) {
  const h = await openDatabase({ kind: 'sqlite', file: join(dir, 'cms.sqlite') }, { migrate: false });
  try {
    return await h.db.selectFrom('kek_rewrap_runs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  } finally {
    await h.close();
  }
}

describe('SIGTERM against a spawned server', () => {
  it('parks the rewrap run and commits the audit batches; a restart resumes it to the end; the log verifies', async () => {
    // Prepare: N blobs under KEK v1, the KEK rotated to v2, a rewrap run started but not run
    // (as a crash or an earlier stop leaves it).
    const { config } = loadConfig({ env: { ...env, DESFIRE_CMS_METRICS_ENABLED: 'false' }, overrides: { dataDir: dir } });
    const cms = await buildCmsApp(config, resolveSecrets(config, env));
    let runId: string;
    let token: string;
    try {
      token = cms.bootstrapToken!;
      const db = cms.db.db;
      const now = Date.now();
      await db.insertInto('tenants').values({ id: TENANT, name: 'Acme', created_at: now }).execute();
      await db.insertInto('applications').values({ aid: AID, tenant_id: TENANT, name: 'doors', key_type: 'aes', key_count: 1, layout_name: 'test', definition: '{}', created_at: now }).execute();
      const custody = cms.custody!;
      await custody.createKey(CTX, KEK, { purpose: 'wrap' });
      const rows = [];
      for (let i = 0; i < N; i++) {
        const uid = '04' + (0x300000 + i).toString(16).toUpperCase().padStart(6, '0') + 'A0B0C0';
        const w = await custody.generateKey(CTX, KEK, 'aes128', { tenant: TENANT, aid: AID, uid, keyNo: 0, version: 1 });
        rows.push({ uid, aid: AID, key_no: 0, key_version: 1, kek: KEK, blob: w.blob, state: 'active', job_id: 'j', created_at: now });
      }
      for (let i = 0; i < rows.length; i += 500) await db.insertInto('card_key_blobs').values(rows.slice(i, i + 500)).execute();
      await custody.rotateKey(CTX, KEK);
      const kek = new KekService({ db, custody, audit: cms.deps.audit!, approvals: new ApprovalService({ db, audit: cms.deps.audit! }) });
      runId = (await kek.startRewrap(CTX, KEK)).id;
    } finally {
      await cms.close();
    }

    process.stderr.write(`[shutdown test] prepared ${N} blobs\n`);
    // First server: resumes the run; SIGTERM while it and API requests are in flight.
    const s1 = spawnServer();
    const url = (await s1.waitFor(/listening on (http:\/\/\S+)/))[1]!;
    process.stderr.write(`[shutdown test] first server listening\n`);
    await s1.waitFor(new RegExp(`resumed 1 parked background job kek-rewrap-${runId}`));
    await s1.waitFor(/metrics: http:\/\/127\.0\.0\.1:\d+\/metrics/);
    const requests = Array.from({ length: 20 }, (_, i) =>
      fetch(`${url}/v1/tenants`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ id: `t-${i}`, name: `T${i}` }) }).then(
        (r) => r.status,
        () => 0, // refused after the listener closed
      ),
    );
    s1.child.kill('SIGTERM');
    const statuses = await Promise.all(requests);
    expect(await s1.exit).toBe(0);
    const log1 = s1.out.join('\n');
    expect(log1).toContain('stopping (no new work');
    expect(log1).toMatch(new RegExp(`background job kek-rewrap-${runId}: (parked|finished)`));
    expect(log1).toMatch(/audit log committed and sealed by a signed checkpoint at size \d+/);
    expect(log1).toContain('desfire-cms server: stopped');
    for (const s of statuses) expect([0, 201, 503]).toContain(s);
    const parked = await runState(runId);
    const wasParked = /: parked/.test(log1);
    if (wasParked) {
      expect(parked.state).toBe('running');
      expect(parked.rewrapped % 250).toBe(0); // stopped at a committed page boundary
      expect(parked.rewrapped).toBeLessThan(N);
    }
    // every request answered 201 is durable, with its audit entry
    const created = statuses.filter((s) => s === 201).length;
    const h = await openDatabase({ kind: 'sqlite', file: join(dir, 'cms.sqlite') }, { migrate: false });
    try {
      expect((await h.db.selectFrom('tenants').select('id').where('id', 'like', 't-%').execute()).length).toBe(created);
      expect((await h.db.selectFrom('audit_entries').select('idx').where('operation', '=', 'api.tenant.create').execute()).length).toBe(created);
    } finally {
      await h.close();
    }

    process.stderr.write(`[shutdown test] first server stopped (${wasParked ? 'parked' : 'finished'} at ${parked.rewrapped})\n`);
    // Second server: resumes what was parked and finishes it; SIGTERM when idle.
    const s2 = spawnServer();
    await s2.waitFor(/listening on/);
    process.stderr.write(`[shutdown test] second server listening\n`);
    await s2.waitFor(wasParked ? new RegExp(`resumed 1 parked background job kek-rewrap-${runId}`) : /resumed 0 parked background jobs/);
    for (let i = 0; i < 600 && (await runState(runId)).state !== 'done'; i++) await new Promise((r) => setTimeout(r, 200));
    s2.child.kill('SIGTERM');
    expect(await s2.exit).toBe(0);
    const done = await runState(runId);
    expect(done.state).toBe('done');
    expect(done.rewrapped).toBe(N); // every blob once: nothing lost, nothing counted twice
    expect(done.failed).toBe(0);

    const lines: string[] = [];
    const code = await main(['audit', 'verify', '--data-dir', dir, '--key-file', join(dir, 'audit', 'audit-checkpoint.vkey')], { out: (l) => lines.push(l), err: () => undefined, env: {}, cwd: dir });
    expect(lines.join('\n')).toMatch(/^OK full/);
    expect(code).toBe(0);
  }, 300_000);
});

// Backup and restore of the embedded deployment (src/cms/ops/backup.ts, `desfire-cms backup|restore`):
// an online backup while the server writes, restore verified (digests, audit log), the restored
// data directory starts a CMS that unseals its vault; refusals leave the target untouched.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/io.js';
import { buildCmsApp } from '../../src/cms/app.js';
import { loadConfig, resolveSecrets } from '../../src/cms/config/index.js';
import { type BackupManifest, readBackup } from '../../src/cms/ops/backup.js';
import { tarPack, tarUnpack } from '../../src/cms/ops/tar.js';
import { startCms, TEST_PASSPHRASE } from './api-harness.js';

const work = mkdtempSync(join(tmpdir(), 'cms-backup-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function io(): CliIO & { lines: string[]; errs: string[] } {
  const lines: string[] = [];
  const errs: string[] = [];
  return { out: (l) => lines.push(l), err: (l) => errs.push(l), env: {}, cwd: work, lines, errs };
}

function repack(archive: string, out: string, edit: (entries: ReturnType<typeof tarUnpack>) => void): void {
  const entries = tarUnpack(gunzipSync(readFileSync(archive)));
  edit(entries);
  writeFileSync(out, gzipSync(tarPack(entries)));
}

describe('tar', () => {
  it('round-trips and refuses unsafe names', () => {
    const e = [{ name: 'manifest.json', data: Buffer.from('{}') }, { name: 'data/audit/x.key', data: Buffer.alloc(1000, 7) }];
    expect(tarUnpack(tarPack(e)).map((x) => [x.name, x.data.length])).toEqual([
      ['manifest.json', 2],
      ['data/audit/x.key', 1000],
    ]);
    for (const bad of ['../etc/passwd', '/abs', 'data/../../x', 'data//x']) {
      expect(() => tarUnpack(tarPack([{ name: bad, data: Buffer.from('x') }]))).toThrow(/refused/);
    }
    const t = tarPack(e);
    t[1034] = t[1034]! ^ 1; // header of the second entry
    expect(() => tarUnpack(t)).toThrow(/checksum/);
    expect(() => tarUnpack(tarPack(e).subarray(0, 700))).toThrow(/truncated/);
  });
});

describe('desfire-cms backup / restore', () => {
  const archive = join(work, 'b1.tar.gz');
  let tenantsAtBackup = 0;

  it('backs up online while the server writes; the archive lists every file with its digest and the verified audit log', async () => {
    const h = await startCms();
    try {
      expect((await h.call('POST', '/v1/tenants', { token: h.admin, body: { id: 'library', name: 'Library' } })).status).toBe(201);
      await h.cms.deps.audit!.checkpoint();
      // a writer keeps appending audit entries during the backup
      let stop = false;
      let written = 0;
      const writer = (async () => {
        while (!stop) {
          await h.cms.deps.audit!.record({ actor: 'test', operation: 'test.load', result: 'ok', details: { n: written } });
          written++;
        }
      })();
      const o = io();
      writer.catch(() => undefined);
      expect(await main(['backup', '--data-dir', h.dataDir, '--out', archive], o), o.errs.join('\n')).toBe(0);
      stop = true;
      await writer.catch(() => undefined);
      expect(written).toBeGreaterThan(0);
      expect(o.lines.join('\n')).toMatch(/audit log verified in the snapshot: \d+ entries/);
      tenantsAtBackup = 1;
      const { manifest, files } = readBackup(archive);
      const paths = manifest.files.map((f) => f.path).sort();
      expect(paths).toEqual(expect.arrayContaining(['cms.sqlite', 'vault.sqlite', 'audit/audit-checkpoint.key', 'audit/audit-checkpoint.vkey']));
      expect(manifest.files.find((f) => f.path === 'cms.sqlite')!.kind).toBe('sqlite');
      expect(paths.some((p) => p.endsWith('-wal') || p.endsWith('-shm'))).toBe(false);
      expect(manifest.audit!.checkpointSize).toBeGreaterThan(0);
      expect(files.size).toBe(manifest.files.length);
      // a second backup never overwrites the first
      const o2 = io();
      expect(await main(['backup', '--data-dir', h.dataDir, '--out', archive], o2)).toBe(1);
      expect(o2.errs.join('')).toMatch(/ERR_BACKUP_INPUT.*exists/);
    } finally {
      await h.close();
    }
  }, 240_000);

  it('restores into an empty directory; the audit log verifies; a CMS started on it unseals the vault and sees the data', async () => {
    const dir = join(work, 'restored');
    const o = io();
    expect(await main(['restore', '--in', archive, '--data-dir', dir], o)).toBe(0);
    expect(o.lines.join('\n')).toMatch(/audit log verified after restore/);
    const v = io();
    expect(await main(['audit', 'verify', '--data-dir', dir, '--key-file', join(dir, 'audit', 'audit-checkpoint.vkey')], v)).toBe(0);
    expect(v.lines.join('\n')).toMatch(/^OK full/);
    const env = { DESFIRE_VAULT_PASSPHRASE: TEST_PASSPHRASE, DESFIRE_CMS_LOG_LEVEL: 'silent', DESFIRE_CMS_TLS_MODE: 'off' };
    const { config } = loadConfig({ env, overrides: { dataDir: dir } });
    const cms = await buildCmsApp(config, resolveSecrets(config, env));
    try {
      expect(cms.bootstrapToken).toBeUndefined(); // the operator tokens came back too
      expect((await cms.deps.domain!.tenants.tenants()).map((t) => t.id)).toEqual(tenantsAtBackup === 1 ? ['library'] : []);
      expect(cms.deps.health.find((x) => x.name === 'custody')).toBeDefined();
      expect(await cms.deps.health.find((x) => x.name === 'custody')!.check()).toEqual({ ok: true });
    } finally {
      await cms.close();
    }
  }, 240_000);

  it('refuses a non-empty data directory without --force; with --force keeps the old contents aside', async () => {
    const dir = join(work, 'busy');
    mkdirSync(dir);
    writeFileSync(join(dir, 'keep.txt'), 'old');
    const o = io();
    expect(await main(['restore', '--in', archive, '--data-dir', dir], o)).toBe(1);
    expect(o.errs.join('')).toMatch(/ERR_BACKUP_TARGET/);
    expect(readdirSync(dir)).toEqual(['keep.txt']);
    const f = io();
    expect(await main(['restore', '--in', archive, '--data-dir', dir, '--force'], f)).toBe(0);
    expect(existsSync(join(dir, 'cms.sqlite'))).toBe(true);
    const aside = f.lines.join('\n').match(/moved to (\S+)/)![1]!;
    expect(readFileSync(join(aside, 'keep.txt'), 'utf8')).toBe('old');
  }, 120_000);

  it('refuses an altered archive (a changed byte, a file not in the manifest, a missing file) and writes nothing', async () => {
    const cases: [string, (e: ReturnType<typeof tarUnpack>) => void, RegExp][] = [
      ['flip', (e) => {
        const d = e.find((x) => x.name === 'data/vault.sqlite')!.data;
        d[200] = d[200]! ^ 1;
      }, /ERR_BACKUP_DIGEST.*vault\.sqlite/],
      ['extra', (e) => void e.push({ name: 'data/evil.sh', data: Buffer.from('x') }), /ERR_BACKUP_DIGEST.*not in the manifest/],
      ['missing', (e) => void e.splice(e.findIndex((x) => x.name === 'data/audit/audit-checkpoint.vkey'), 1), /ERR_BACKUP_DIGEST.*missing/],
    ];
    for (const [name, edit, re] of cases) {
      const bad = join(work, `${name}.tar.gz`);
      repack(archive, bad, edit);
      const dir = join(work, `t-${name}`);
      const o = io();
      expect(await main(['restore', '--in', bad, '--data-dir', dir], o)).toBe(1);
      expect(o.errs.join('')).toMatch(re);
      expect(existsSync(dir)).toBe(false);
    }
    const o = io();
    writeFileSync(join(work, 'junk.tar.gz'), 'not an archive');
    expect(await main(['restore', '--in', join(work, 'junk.tar.gz'), '--data-dir', join(work, 't-junk')], o)).toBe(1);
    expect(o.errs.join('')).toMatch(/ERR_BACKUP_ARCHIVE/);
  }, 120_000);

  it('refuses a restore whose audit log does not verify even when the digests were recomputed', async () => {
    // an attacker edits an audit entry in the database and fixes up the manifest digest
    const Driver = (await import('better-sqlite3')).default;
    const scratch = join(work, 'scratch.sqlite');
    const entries = tarUnpack(gunzipSync(readFileSync(archive)));
    const db = entries.find((x) => x.name === 'data/cms.sqlite')!;
    writeFileSync(scratch, db.data);
    const s = new Driver(scratch);
    s.prepare("update audit_entries set actor = 'someone-else' where idx = (select min(idx) from audit_entries)").run();
    s.pragma('journal_mode = DELETE');
    s.close();
    db.data = readFileSync(scratch);
    const m = JSON.parse(entries[0]!.data.toString()) as BackupManifest;
    const mf = m.files.find((f) => f.path === 'cms.sqlite')!;
    const { createHash } = await import('node:crypto');
    mf.size = db.data.length;
    mf.sha256 = createHash('sha256').update(db.data).digest('hex');
    entries[0]!.data = Buffer.from(JSON.stringify(m));
    const bad = join(work, 'audit-edit.tar.gz');
    writeFileSync(bad, gzipSync(tarPack(entries)));
    const dir = join(work, 't-audit');
    const o = io();
    expect(await main(['restore', '--in', bad, '--data-dir', dir], o)).toBe(1);
    expect(o.errs.join('')).toMatch(/ERR_BACKUP_AUDIT/);
    expect(existsSync(dir)).toBe(false);
  }, 120_000);

  it('usage errors', async () => {
    expect(await main(['backup', '--out', 'x'], io())).toBe(2);
    expect(await main(['restore', '--in', 'x'], io())).toBe(2);
    expect(await main(['restore', '--in', 'x', '--data-dir', 'y', '--bogus'], io())).toBe(2);
  });
});

// Reader agent metrics (src/reader/metrics.ts): the textfile export for node_exporter.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OfflineKeyCache } from '../../src/reader/key-cache.js';
import { exportReaderMetrics, readerMetricsText } from '../../src/reader/metrics.js';

describe('reader metrics', () => {
  it('cache age, offline time, pending baton entries; no key bytes', () => {
    let now = 1_000_000;
    const cache = new OfflineKeyCache(600_000, () => now);
    const key = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
    cache.put({ tenant: 'acme', uid: '04112233445566', aid: 'A1B2C3', keyNo: 1 }, 1, 'aes', key);
    now += 30_000;
    cache.put({ tenant: 'acme', uid: '04112233445577', aid: 'A1B2C3', keyNo: 1 }, 1, 'aes', key);
    now += 12_000;
    const t = readerMetricsText({ readerId: 'till-1', offlineForMs: 90_500, stopped: undefined, cache, baton: { head: { seq: 17 }, acknowledged: 12 } });
    expect(t).toContain('desfire_reader_cache_age_seconds{reader="till-1"} 42\n');
    expect(t).toContain('desfire_reader_cache_keys{reader="till-1"} 2\n');
    expect(t).toContain('desfire_reader_offline_seconds{reader="till-1"} 90.5\n');
    expect(t).toContain('desfire_reader_baton_pending_entries{reader="till-1"} 5\n');
    expect(t).toContain('desfire_reader_stopped{reader="till-1"} 0\n');
    expect(t.toLowerCase()).not.toContain('a0a1a2a3');
    const never = readerMetricsText({ readerId: 'x"y', offlineForMs: Infinity, stopped: 'revoked', cache: { size: 0, oldestAgeMs: 0 }, baton: { head: { seq: 0 }, acknowledged: 0 } });
    expect(never).toContain('desfire_reader_offline_seconds{reader="x\\"y"} +Inf');
    expect(never).toContain('desfire_reader_stopped{reader="x\\"y"} 1');
  });

  it('writes the textfile atomically', () => {
    const dir = mkdtempSync(join(tmpdir(), 'reader-metrics-'));
    try {
      const f = join(dir, 'desfire-reader.prom');
      const stop = exportReaderMetrics({ readerId: 'door-1', offlineForMs: 0, stopped: undefined, cache: { size: 0, oldestAgeMs: 0 }, baton: { head: { seq: 3 }, acknowledged: 3 } }, f, 60_000);
      stop();
      expect(readFileSync(f, 'utf8')).toContain('desfire_reader_baton_pending_entries{reader="door-1"} 0');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('reader metrics end to end: `reader run --metrics-file` against the real CMS', () => {
  it('the textfile shows the synced baton; the CMS counts the online release and the reader as online', async () => {
    const { startStationCms } = await import('../reader/e2e-helpers.js');
    const { saveImageAtomicSync } = await import('../../src/card/image-file.js');
    const { main } = await import('../../src/cli/main.js');
    const s = await startStationCms();
    const dir = mkdtempSync(join(tmpdir(), 'reader-metrics-e2e-'));
    try {
      const { card } = await s.personalisedCard();
      const image = join(dir, 'card.json');
      saveImageAtomicSync(image, card.toImage());
      const door = await s.enrolled('door-m', [{ tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver', 'offline'] }]);
      const prom = join(dir, 'reader.prom');
      const out: string[] = [];
      const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l), env: {}, cwd: process.cwd() };
      expect(await main(['reader', 'run', '--dir', door.dir, '--cms', s.url, '--servername', 'localhost', '--passphrase-file', door.passFile, '--image', image, '--tx', 'access', '--zone', '1', '--metrics-file', prom], io), out.join('\n')).toBe(0);
      const t = readFileSync(prom, 'utf8');
      expect(t).toContain('desfire_reader_baton_pending_entries{reader="door-m"} 0\n');
      expect(t).toContain('desfire_reader_stopped{reader="door-m"} 0\n');
      expect(Number(/desfire_reader_offline_seconds\{reader="door-m"\} (\S+)/.exec(t)![1])).toBeLessThan(600);
      const m = await s.cms.metrics.text();
      expect(m).toMatch(/desfire_cms_key_releases_total\{tenant="access",aid="A1C001",result="ok"\} [1-9]/);
      // every active reader (the station readers and door-m) made an authenticated request just now
      const active = (await s.cms.db.db.selectFrom('readers').select('id').where('state', '=', 'active').execute()).length;
      expect(m).toContain(`desfire_cms_readers{presence="online"} ${active}\n`);
      expect(m).toContain('desfire_cms_readers{presence="offline"} 0\n');
      expect(m).toMatch(/desfire_cms_http_request_duration_seconds_count\{method="POST",route="\/v1\/keys\/deliver",status="200"\} [1-9]/);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});

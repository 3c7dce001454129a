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

// The disk's own flush latency, measured in the same run as the figures it explains: the CMS
// answers a key delivery only once its audit entry is on disk (an fdatasync of the SQLite WAL,
// src/cms/storage/wal-sync.ts), so no delivery's latency percentile can be below this one's. A
// file beside the CMS's data (the same file system), preallocated, overwritten 4 KiB at a time
// like the WAL after its restart, fdatasync after each write.
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile } from './types.js';

export interface SyncLatency {
  p50: number;
  p99: number;
  max: number;
  n: number;
}

/** `n` (4 KiB write + fdatasync) in a fresh file under `dir` (default: the OS temp directory); milliseconds. */
export function fdatasyncLatency(n = 300, dir = tmpdir()): SyncLatency {
  const d = mkdtempSync(join(dir, 'bench-disk-'));
  const file = join(d, 'probe');
  const page = Buffer.alloc(4096, 0xa5);
  const slots = 256;
  const fd = openSync(file, 'w');
  try {
    for (let i = 0; i < slots; i++) writeSync(fd, page, 0, page.length, i * page.length);
    fdatasyncSync(fd);
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      writeSync(fd, page, 0, page.length, (i % slots) * page.length);
      fdatasyncSync(fd);
      ms.push(performance.now() - t);
    }
    ms.sort((a, b) => a - b);
    return { p50: percentile(ms, 50), p99: percentile(ms, 99), max: ms[ms.length - 1]!, n };
  } finally {
    closeSync(fd);
    rmSync(d, { recursive: true, force: true });
  }
}

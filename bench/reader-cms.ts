// The CMS side of bench/reader.ts's online figures, in its own process (as in a deployment: the
// reader's process then holds only the reader — its CPU figures are the reader's, and the CMS's
// synchronous work, e.g. SQLite writes while it ingests baton uploads, no longer runs on the
// reader's event loop). The whole CMS (embedded: SQLite, vault; station jobs + key delivery) over
// HTTPS + mTLS; a card personalised through station jobs (image file); readers enrolled (keystore
// directories). Prints one JSON line, then serves until stdin closes or SIGTERM.
import { mkdtempSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveImageAtomicSync } from '../src/card/image-file.js';
import { type StationCms, startStationCms } from '../test/reader/e2e-helpers.js';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { percentile } from './types.js';

// One reader driven back to back makes ~10,000 deliveries a minute here: far above the default
// per-reader limit (6,000 a minute), an operator's setting for real readers
const s = await startStationCms({ readerRequests: 1_000_000 });
// BENCH_CMS_TIMING=1 (bench/reader-phases.ts sets it): every response carries `x-bench-cms-t:
// <request event>,<writeHead>` — CLOCK_MONOTONIC in microseconds, the same clock the reader's
// process.hrtime reads (one machine), so the reader can split a delivery's round trip into the way
// in (its send -> the CMS's request event: network, TLS, the CMS's event-loop queue), the CMS's own
// handling and the way back. Diagnostic of the benchmark only: the product sends no such header.
if (process.env.BENCH_CMS_TIMING === '1') {
  const us = () => Number(process.hrtime.bigint() / 1000n);
  s.server.app.server.on('request', (_req: unknown, res: ServerResponse) => {
    const t1 = us();
    const writeHead = res.writeHead;
    res.writeHead = function (this: typeof res, ...a: Parameters<typeof res.writeHead>) {
      if (!this.headersSent) this.setHeader('x-bench-cms-t', `${t1},${us()}`);
      return writeHead.apply(this, a);
    } as typeof res.writeHead;
  });
}
// BENCH_CMS_TAIL=1 (bench/reader-phases.ts sets it): where the CMS's slowest deliveries spend
// their time, printed on stderr when the process stops (see watchTail)
const tail = process.env.BENCH_CMS_TAIL === '1' ? watchTail(s) : undefined;
const { card, uid } = await s.personalisedCard();
const image = join(mkdtempSync(join(tmpdir(), 'bench-card-')), 'card.json');
saveImageAtomicSync(image, card.toImage());
const readers: Record<string, { dir: string }> = {};
for (const [id, operations] of [
  ['bench-on', ['deliver', 'offline']],
  ['bench-on-strict', ['deliver']],
] as const) {
  const r = await s.enrolled(id, [{ tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: [...operations] }]);
  readers[id] = { dir: r.dir };
}
process.stdout.write(JSON.stringify({ url: s.url, uid, image, readers }) + '\n');
let closing = false;
const stop = async () => {
  if (closing) return;
  closing = true;
  if (tail) process.stderr.write(tail.report() + '\n');
  await s.close();
  process.exit(0);
};
process.stdin.on('end', () => void stop());
process.stdin.resume();
process.on('SIGTERM', () => void stop());

/** A window of time on the CMS's performance clock (ms). */
interface Span {
  a: number;
  b: number;
}

const overlap = (x: Span, y: Span): number => Math.max(0, Math.min(x.b, y.b) - Math.max(x.a, y.a));
const q = (sorted: number[], p: number): string => percentile(sorted, p).toFixed(2);

/**
 * Diagnostic of the benchmark only: every delivery's handling here (request event -> response
 * finished), the GC pauses of this process, the baton uploads being handled, and each audit-log
 * batch's store append (its commit and WAL sync: the durability a delivery waits for) through the
 * metrics hook the audit log already calls. `report()` attributes the slowest 1% of deliveries.
 */
function watchTail(s: StationCms): { report(): string } {
  const deliveries: (Span & { upload: boolean })[] = [];
  const uploads: Span[] = [];
  const gcs: Span[] = [];
  const commits: (Span & { n: number })[] = [];
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) gcs.push({ a: e.startTime, b: e.startTime + e.duration });
  }).observe({ entryTypes: ['gc'] });
  let uploading = 0;
  s.server.app.server.on('request', (req: { url?: string }, res: ServerResponse) => {
    const a = performance.now();
    const path = (req.url ?? '').split('?')[0]!;
    const upload = path.endsWith('/baton');
    const behindUpload = uploading > 0;
    if (upload) uploading++;
    res.once('finish', () => {
      const b = performance.now();
      if (upload) {
        uploading--;
        uploads.push({ a, b });
      } else if (path === '/v1/keys/deliver') deliveries.push({ a, b, upload: behindUpload });
    });
  });
  const m = s.cms.deps.metrics;
  if (!m) throw new Error('bench: the CMS has no metrics to hook the audit batches on');
  const batch = m.auditBatch.bind(m);
  m.auditBatch = (n: number, ms: number) => {
    const b = performance.now();
    commits.push({ a: b - ms, b, n });
    batch(n, ms);
  };
  return {
    report() {
      const dur = (x: Span) => x.b - x.a;
      const all = [...deliveries].sort((x, y) => dur(y) - dur(x));
      const worst = all.slice(0, Math.ceil(all.length / 100));
      if (!worst.length) return 'CMS tail: no deliveries';
      const T = worst.reduce((t, d) => t + dur(d), 0);
      const share = (f: (d: Span) => number) => `${((100 * worst.reduce((t, d) => t + f(d), 0)) / T).toFixed(0)}%`;
      const within = (xs: Span[]) => (d: Span) => xs.reduce((t, x) => t + overlap(d, x), 0);
      // a delivery's own audit entry: a one-entry batch inside its handling
      const own = commits.filter((c) => c.n === 1);
      const ownIn = within(own);
      const upIn = within(uploads);
      const gcIn = within(gcs);
      const ownMs = own.map(dur).sort((x, y) => x - y);
      const gcMs = gcs.map(dur).sort((x, y) => x - y);
      return [
        `CMS tail: the slowest 1% of ${all.length} deliveries (${worst.length}, >= ${dur(worst.at(-1)!).toFixed(2)} ms, handled request event -> response finished), share of their time:`,
        `  in the delivery's own audit commit (one-entry batch: insert + commit + WAL sync) ${share(ownIn)} (>= 2 ms in ${worst.filter((d) => ownIn(d) >= 2).length})`,
        `  in a GC pause of the CMS ${share(gcIn)} (${worst.filter((d) => gcIn(d) > 0).length} of them)`,
        `  while a baton upload was handled ${share(upIn)} (${worst.filter((d) => upIn(d) > 0).length} of them; ${worst.filter((d) => d.upload).length} arrived during one)`,
        `CMS one-entry audit commits (${ownMs.length}): p50 ${q(ownMs, 50)} p90 ${q(ownMs, 90)} p99 ${q(ownMs, 99)} max ${q(ownMs, 100)} ms; GC pauses ${gcMs.length}: p50 ${q(gcMs, 50)} max ${q(gcMs, 100)} ms`,
      ].join('\n');
    },
  };
}

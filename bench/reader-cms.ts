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
import { startStationCms } from '../test/reader/e2e-helpers.js';

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
  await s.close();
  process.exit(0);
};
process.stdin.on('end', () => void stop());
process.stdin.resume();
process.on('SIGTERM', () => void stop());

// Diagnostic (not a bench module): where the online transaction's tail comes from. Runs the same
// online access-check as bench/reader.ts (CMS in its own process, bench/reader-cms.ts) N times and
// times each phase of every transaction: key delivery (HTTP round trip), unseal, card exchanges,
// baton append; flags per transaction whether a background baton upload, a group-commit
// fdatasync or a GC overlapped it; the event-loop delay. Prints percentiles per phase and the
// p99 of the transaction split by what overlapped it.
//   npx tsx bench/reader-phases.ts [N=3000] [--sync-ms 200] [--fsync group|always|never] [--batch N] [--warm W]
//   (--warm W: W online transactions, untimed, before the timed ones — bench/reader.ts times its
//   target figure after 3,000: a fresh CMS's first few thousand are slower, see there)
//   (BENCH_CMS_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR' profiles the CMS process; '--trace-gc-nvp'
//   traces its GC: the trace, on the CMS's stdout, comes out on this process's stderr)
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { loadImageSync } from '../src/card/image-file.js';
import { VirtualCard } from '../src/card/virtual-card.js';
import { ReaderKeystore } from '../src/reader/keystore.js';
import { PASS } from '../test/reader/e2e-helpers.js';
import { ReaderUnsealer } from '../src/custody/sealed.js';
import { type KeyDelivery, type OnlineKeySource, ReaderAgent } from '../src/reader/agent.js';
import { AuditBaton } from '../src/reader/baton.js';
import { CmsClient } from '../src/reader/cms-client.js';
import { accessCheck } from '../src/reader/transactions.js';
import { HttpKeySource } from '../src/reader/http-keys.js';
import { InProcessTransport } from '../src/transport/in-process.js';
import type { Transport } from '../src/core/transport.js';
import { cardOnlyTx, procCpuMs, startReaderCms } from './reader.js';
import { percentile } from './types.js';

const argv = process.argv.slice(2);
const N = Number(argv.find((a, i) => /^\d+$/.test(a) && !argv[i - 1]?.startsWith('--')) ?? 3000);
const si = argv.indexOf('--sync-ms');
const syncDelayMs = si >= 0 ? Number(argv[si + 1]) : undefined;
const fi = argv.indexOf('--fsync');
const bi = argv.indexOf('--batch');
const syncBatchMax = bi >= 0 ? Number(argv[bi + 1]) : undefined;
const fsyncMode = (fi >= 0 ? argv[fi + 1] : 'group') as 'group' | 'always' | 'never';
const wi = argv.indexOf('--warm');
const warm = wi >= 0 ? Number(argv[wi + 1]) : 0;

const now = () => Number(process.hrtime.bigint()) / 1e6;

// BENCH_CMS_NODE_ARGS: extra node options for the CMS process (e.g. '--cpu-prof --cpu-prof-dir=/tmp/p')
const cmsArgs = (process.env.BENCH_CMS_NODE_ARGS ?? '').split(' ').filter(Boolean);
// BENCH_CMS_TIMING (set by startReaderCms): the CMS process stamps every response with its
// request-event and writeHead times (same monotonic clock as this process): the delivery round trip
// split into way in / CMS / way back
// BENCH_CMS_TAIL: the CMS process attributes its slowest 1% of deliveries (its audit commit, its
// GC, baton uploads) and prints that on stderr when it stops, after this process's report
process.env.BENCH_CMS_TAIL = '1';
const { child, ready } = await startReaderCms(cmsArgs);

try {
  const ks = ReaderKeystore.open(ready.readers['bench-on']!.dir, new TextEncoder().encode(PASS));
  const c = ks.certificates();
  const cms = new CmsClient({ url: ready.url, ca: c.ca, servername: 'localhost' }, { key: ks.tlsKeyPem(), cert: c.cert });
  const card = VirtualCard.fromImage(loadImageSync(ready.image));
  const inner = new InProcessTransport(card);

  // per-transaction phase accumulators
  // fetchUp / fetchFlush: the delivery request itself overlapped an upload request / a baton fdatasync
  // wayIn / cms / wayBack: the delivery request's send -> the CMS's request event -> its writeHead -> the response's end here
  let cur = { fetch: 0, unseal: 0, card: 0, append: 0, syncOverlap: false, flushOverlap: false, gc: 0, fetchUp: false, fetchFlush: false, wayIn: 0, cms: 0, wayBack: 0 };
  const reset = () => (cur = { fetch: 0, unseal: 0, card: 0, append: 0, syncOverlap: false, flushOverlap: false, gc: 0, fetchUp: false, fetchFlush: false, wayIn: 0, cms: 0, wayBack: 0 });
  let fetchInFlight = 0;
  let upInFlight = 0;
  let fsyncInFlight = 0;
  const t: Transport = {
    ...inner,
    transmit: async (apdu: Uint8Array) => {
      const a = now();
      try {
        return await inner.transmit(apdu);
      } finally {
        cur.card += now() - a;
      }
    },
  } as Transport;
  const origRaw = cms.raw.bind(cms);
  cms.raw = (async <T>(m: string, p: string, b?: unknown, o?: Parameters<typeof origRaw>[3]) => {
    if (p !== '/v1/keys/deliver') return origRaw<T>(m, p, b, o);
    const t0 = Number(process.hrtime.bigint() / 1000n);
    const r = await origRaw<T>(m, p, b, o);
    const t3 = Number(process.hrtime.bigint() / 1000n);
    const h = r.headers?.['x-bench-cms-t'];
    if (typeof h === 'string') {
      const [t1, t2] = h.split(',').map(Number) as [number, number];
      cur.wayIn += (t1 - t0) / 1000;
      cur.cms += (t2 - t1) / 1000;
      cur.wayBack += (t3 - t2) / 1000;
    }
    return r;
  }) as typeof cms.raw;
  const http = new HttpKeySource(cms);
  const keys: OnlineKeySource = {
    async fetch(r): Promise<KeyDelivery> {
      const a = now();
      fetchInFlight++;
      if (upInFlight > 0) cur.fetchUp = true;
      if (fsyncInFlight > 0) cur.fetchFlush = true;
      try {
        return await http.fetch(r);
      } finally {
        fetchInFlight--;
        cur.fetch += now() - a;
      }
    },
  };
  const unsealer = new ReaderUnsealer('bench-on', ks.privateKey);
  const origUnseal = unsealer.unseal.bind(unsealer);
  unsealer.unseal = async (s, b) => {
    const a = now();
    try {
      return await origUnseal(s, b);
    } finally {
      cur.unseal += now() - a;
    }
  };
  const baton = AuditBaton.open(mkdtempSync(join(tmpdir(), 'bench-phases-')), { fsync: fsyncMode });
  const origAppend = baton.append.bind(baton);
  baton.append = (f) => {
    const a = now();
    try {
      return origAppend(f);
    } finally {
      cur.append += now() - a;
    }
  };
  let syncInFlight = 0;
  let flushInFlight = 0;
  const origFlush = baton.flush.bind(baton);
  baton.flush = async () => {
    flushInFlight++;
    cur.flushOverlap = true;
    try {
      return await origFlush();
    } finally {
      flushInFlight--;
    }
  };
  // every fdatasync of the baton (group commit timer, entry threshold, before an upload)
  const bAny = baton as unknown as { inflight?: { done: Promise<void> } };
  let fsyncs = 0;
  let lastInflight: unknown;
  const watchInflight = () => {
    const f = bAny.inflight;
    if (f && f !== lastInflight) {
      lastInflight = f;
      fsyncs++;
      fsyncInFlight++;
      if (fetchInFlight > 0) cur.fetchFlush = true;
      void f.done.finally(() => fsyncInFlight--);
    }
  };
  const origAppend2 = baton.append;
  baton.append = (f) => {
    const e = origAppend2(f);
    queueMicrotask(watchInflight);
    return e;
  };
  const origFlush2 = baton.flush;
  baton.flush = () => {
    const p = origFlush2();
    watchInflight();
    return p;
  };
  const roles = [{ tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver'] }];
  const agent = new ReaderAgent({ readerId: 'bench-on', roles, baton, unsealer, keys, cms, ...(syncDelayMs !== undefined ? { syncDelayMs } : {}), ...(syncBatchMax !== undefined ? { syncBatchMax } : {}) });
  const origSync = agent.sync.bind(agent);
  agent.sync = () => {
    syncInFlight++;
    cur.syncOverlap = true;
    return origSync().finally(() => syncInFlight--);
  };
  let uploads = 0;
  const uploadMs: number[] = [];
  const uploadSizes: number[] = [];
  // TLS connections opened by the client's delivery pool (a delivery that finds its keep-alive
  // sockets busy opens one: a full handshake inside a timed transaction) and by its background
  // (upload) pool where it has one
  let connections = 0;
  let bgConnections = 0;
  const pools = cms as unknown as Record<'agent' | 'background', { createConnection: (...a: unknown[]) => unknown } | undefined>;
  for (const k of ['agent', 'background'] as const) {
    const pool = pools[k];
    if (!pool) continue;
    const origConnect = pool.createConnection.bind(pool);
    pool.createConnection = (...a: unknown[]) => {
      if (k === 'agent') connections++;
      else bgConnections++;
      return origConnect(...a);
    };
  }
  const origCall = cms.call.bind(cms);
  cms.call = (<T>(m: string, p: string, b?: unknown, o?: Parameters<typeof origCall>[3]) => {
    if (!p.startsWith('/v1/readers/self/')) return origCall<T>(m, p, b, o);
    uploads++;
    uploadSizes.push((b as { entries?: unknown[] } | undefined)?.entries?.length ?? 0);
    const a = now();
    upInFlight++;
    if (fetchInFlight > 0) cur.fetchUp = true;
    return origCall<T>(m, p, b, o).finally(() => {
      upInFlight--;
      uploadMs.push(now() - a);
    });
  }) as typeof cms.call;

  const gcKinds = new Map<number, number[]>();
  const gcObs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      cur.gc += e.duration;
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
      gcKinds.set(kind, [...(gcKinds.get(kind) ?? []), e.duration]);
    }
  });
  gcObs.observe({ entryTypes: ['gc'] });

  const uid = ready.uid;
  // card-only on this card
  const k = await agent.obtainKey(uid, 'A1C001', 1);
  const key1 = k.key.slice();
  const baseMs: number[] = [];
  for (let i = 0; i < Math.min(N, 2000) + 50; i++) {
    const a = now();
    await cardOnlyTx(inner, key1, 1);
    if (i >= 50) baseMs.push(now() - a);
  }

  for (let i = 0; i < 50 + warm; i++) await accessCheck(agent, t, { zone: 1 });
  gcKinds.clear();
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const rows: { total: number; fetch: number; unseal: number; card: number; append: number; sync: boolean; flush: boolean; gc: number; fetchUp: boolean; fetchFlush: boolean; wayIn: number; cms: number; wayBack: number }[] = [];
  const cpu0 = process.cpuUsage();
  const cms0 = procCpuMs(child.pid);
  const t0 = now();
  uploads = 0;
  uploadMs.length = 0;
  uploadSizes.length = 0;
  fsyncs = 0;
  const connections0 = connections;
  for (let i = 0; i < N; i++) {
    reset();
    cur.syncOverlap = syncInFlight > 0;
    cur.flushOverlap = flushInFlight > 0;
    const a = now();
    const r = await accessCheck(agent, t, { zone: 1 });
    const total = now() - a;
    if (r.mode !== 'online' || !r.ok) throw new Error('online tx failed');
    rows.push({ total, fetch: cur.fetch, unseal: cur.unseal, card: cur.card, append: cur.append, sync: cur.syncOverlap || syncInFlight > 0, flush: cur.flushOverlap || flushInFlight > 0, gc: cur.gc, fetchUp: cur.fetchUp, fetchFlush: cur.fetchFlush, wayIn: cur.wayIn, cms: cur.cms, wayBack: cur.wayBack });
  }
  const fsyncsInRun = fsyncs;
  const connectionsInRun = connections - connections0;
  const wall = now() - t0;
  const cpu = process.cpuUsage(cpu0);
  h.disable();
  gcObs.disconnect();
  await agent.sync();
  const cmsCpu = (procCpuMs(child.pid) - cms0) / N;
  agent.close();
  cms.close();

  const q = (xs: number[]) => {
    const s = [...xs].sort((x, y) => x - y);
    return `p50 ${percentile(s, 50).toFixed(3)}  p90 ${percentile(s, 90).toFixed(3)}  p99 ${percentile(s, 99).toFixed(3)}  p99.9 ${percentile(s, 99.9).toFixed(3)}  max ${s[s.length - 1]!.toFixed(3)}  mean ${(s.reduce((x, y) => x + y, 0) / s.length).toFixed(3)}  (n ${s.length})`;
  };
  const out: string[] = [];
  out.push(`online tx: ${N} in ${(wall / 1000).toFixed(2)} s = ${((N * 1000) / wall).toFixed(0)} tx/s, reader CPU ${((cpu.user + cpu.system) / 1000 / N).toFixed(3)} ms/tx, ${uploads} background syncs, CMS process CPU ${cmsCpu.toFixed(3)} ms/tx`);
  if (uploadMs.length) out.push(`upload     ${q(uploadMs)}  entries per upload: mean ${(uploadSizes.reduce((x, y) => x + y, 0) / uploadSizes.length).toFixed(1)}`);
  out.push(`card-only  ${q(baseMs)}`);
  out.push(`total      ${q(rows.map((r) => r.total))}`);
  out.push(`fetch      ${q(rows.map((r) => r.fetch))}`);
  out.push(`  way in   ${q(rows.map((r) => r.wayIn))}  (reader send -> CMS request event: TLS, loopback, the CMS's event-loop queue)`);
  out.push(`  CMS      ${q(rows.map((r) => r.cms))}  (CMS request event -> its writeHead: checks, derive + seal, audit durable)`);
  out.push(`  way back ${q(rows.map((r) => r.wayBack))}  (CMS writeHead -> response end here: TLS, loopback, the reader's event loop)`);
  out.push(`unseal     ${q(rows.map((r) => r.unseal))}`);
  out.push(`card       ${q(rows.map((r) => r.card))}`);
  out.push(`append     ${q(rows.map((r) => r.append))}`);
  out.push(`other      ${q(rows.map((r) => r.total - Math.max(r.fetch + r.unseal, 0) - r.card - r.append))}  (total - fetch - unseal - card - append; select overlaps fetch)`);
  const fq = (label: string, rs: typeof rows) => out.push(`${label.padEnd(34)}${rs.length ? q(rs.map((r) => r.fetch)) : '-'}`);
  out.push(`baton fdatasyncs during the run: ${fsyncsInRun}; TLS connections opened during the run: ${connectionsInRun} by the delivery pool (${connections} in all), ${bgConnections} by the upload pool in all`);
  fq('fetch | upload request in flight', rows.filter((r) => r.fetchUp));
  fq('fetch | baton fdatasync in flight', rows.filter((r) => r.fetchFlush && !r.fetchUp));
  fq('fetch | neither', rows.filter((r) => !r.fetchFlush && !r.fetchUp));
  const withSync = rows.filter((r) => r.sync);
  const noSync = rows.filter((r) => !r.sync);
  out.push(`total | sync overlapped     ${withSync.length ? q(withSync.map((r) => r.total)) : '-'}`);
  out.push(`total | no sync overlapped  ${noSync.length ? q(noSync.map((r) => r.total)) : '-'}`);
  const withGc = rows.filter((r) => r.gc > 0);
  out.push(`total | gc during tx        ${withGc.length ? q(withGc.map((r) => r.total)) : '-'}  gc ms in those: ${withGc.length ? q(withGc.map((r) => r.gc)) : '-'}`);
  const withFlush = rows.filter((r) => r.flush);
  out.push(`total | fdatasync flush     ${withFlush.length ? q(withFlush.map((r) => r.total)) : '-'}`);
  // kinds: 1 scavenge (minor), 2 mark-sweep-compact (major), 4 incremental marking, 8 weak callbacks
  for (const [kind, ds] of gcKinds) out.push(`gc kind ${kind}: ${ds.length} x, total ${ds.reduce((x, y) => x + y, 0).toFixed(1)} ms, max ${Math.max(...ds).toFixed(2)} ms`);
  out.push(`heap used after: ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1)} MiB`);
  out.push(`event loop delay: p50 ${(h.percentile(50) / 1e6).toFixed(3)} p99 ${(h.percentile(99) / 1e6).toFixed(3)} max ${(h.max / 1e6).toFixed(3)} ms`);
  // the slowest transactions
  const slow = [...rows].sort((x, y) => y.total - x.total).slice(0, 12);
  out.push('slowest: total fetch (in cms back) unseal card append sync flush gc');
  for (const r of slow) out.push(`  ${r.total.toFixed(2)} ${r.fetch.toFixed(2)} (${r.wayIn.toFixed(2)} ${r.cms.toFixed(2)} ${r.wayBack.toFixed(2)}) ${r.unseal.toFixed(2)} ${r.card.toFixed(2)} ${r.append.toFixed(2)} ${r.sync ? 'S' : '-'} ${r.flush ? 'F' : '-'} ${r.gc.toFixed(2)}`);
  // the tail: of the transactions at or above the p99, the share of their time in each part
  const sorted = [...rows].sort((x, y) => x.total - y.total);
  const tail = sorted.slice(Math.floor(sorted.length * 0.99));
  const sum = (f: (r: (typeof rows)[number]) => number) => tail.reduce((x, r) => x + f(r), 0);
  const T = sum((r) => r.total);
  const pc = (v: number) => `${((100 * v) / T).toFixed(0)}%`;
  out.push(`tail (${tail.length} tx >= p99): way in ${pc(sum((r) => r.wayIn))}, CMS ${pc(sum((r) => r.cms))}, way back ${pc(sum((r) => r.wayBack))}, unseal ${pc(sum((r) => r.unseal))}, card ${pc(sum((r) => r.card))}, append ${pc(sum((r) => r.append))}, gc in tx ${pc(sum((r) => r.gc))}; behind an upload ${tail.filter((r) => r.fetchUp).length}, fdatasync overlapping ${tail.filter((r) => r.fetchFlush).length}, gc ${tail.filter((r) => r.gc > 0).length}`);
  console.log(out.join('\n'));
} finally {
  child.stdin!.end();
  await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
}

// Reader agent runtime transactions per second, per reader, with an in-process virtual card:
// GET DATA (UID) + SelectApplication + EV2 authenticate + read the 32-byte credential (full mode)
// + decide. In the same run:
//   card-only  the key already in hand: no agent (the baseline)
//   offline    the agent with the CMS unreachable: key from the in-memory cache (AES-GCM under the
//              local key), denylist check, baton entry appended — once with the default durability
//              (fsync 'group': written before the tx returns, fdatasync group-committed in the
//              background) and once strict (fsync 'always': fdatasync inside every tx)
//   online     the agent with a real CMS over HTTPS + mTLS (in its own process, bench/reader-cms.ts,
//              as in a deployment; station jobs and key delivery attached): per transaction POST
//              /v1/keys/deliver (overlapping the SelectApplication), unseal, the baton entry and its
//              background sync to the CMS; card personalised by station jobs; both durability modes
// Figures: tx/s wall clock, tx per CPU-second (this process's CPU time, user + system: the reader
// and the emulated card, not the CMS), what the agent adds per transaction (offline: mean; online:
// p99), and the agent's own CPU per transaction (differences of CPU time per tx: robust to the
// machine's load).
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { loadImageSync } from '../src/card/image-file.js';
import { VirtualCard } from '../src/card/virtual-card.js';
import { ReaderKeystore } from '../src/reader/keystore.js';
import { PASS } from '../test/reader/e2e-helpers.js';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DesfireClient } from '../src/core/client/client.js';
import { ReaderUnsealer, generateReaderKeyPair } from '../src/custody/sealed.js';
import { type KeyDelivery, type OnlineKeySource, ReaderAgent } from '../src/reader/agent.js';
import { AuditBaton, type FsyncMode } from '../src/reader/baton.js';
import { CmsClient } from '../src/reader/cms-client.js';
import { ReaderError } from '../src/reader/errors.js';
import { accessCheck, decide, decodeCredential, readUid } from '../src/reader/transactions.js';
import { HttpKeySource } from '../src/reader/http-keys.js';
import { InProcessTransport } from '../src/transport/in-process.js';
import { CAMPUS_ROLES, makeCard, SealingKeySource } from '../test/reader/fixture.js';
import { type BenchOptions, type Figure, percentile } from './types.js';
import { fdatasyncLatency, type SyncLatency } from './disk.js';

interface Timing {
  perSec: number;
  perCpuSec: number;
  mean: number;
  p99: number;
}

const sortNum = (xs: number[]) => [...xs].sort((x, y) => x - y);
const p99 = (xs: number[]) => (xs.length ? percentile(sortNum(xs), 99) : NaN);

async function timeEach(n: number, fn: () => Promise<void>): Promise<Timing> {
  for (let i = 0; i < Math.min(50, n); i++) await fn();
  const ms: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    await fn();
    ms.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  const total = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  ms.sort((x, y) => x - y);
  return { perSec: n / total, perCpuSec: n / ((cpu.user + cpu.system) / 1e6), mean: ms.reduce((s, x) => s + x, 0) / n, p99: percentile(ms, 99) };
}

/** The card-only transaction (the baseline): GET DATA + select + EV2 auth + 32-byte full read + decide, key in hand. */
export async function cardOnlyTx(t: InProcessTransport, key: Uint8Array, zone: number): Promise<void> {
  await readUid(t);
  const c = new DesfireClient(t);
  await c.selectApplication(0xa1c001);
  await c.authenticate(1, key, { method: 'ev2' });
  const d = await c.readData(1, 0, 32, { comm: 'full' });
  if (decide(decodeCredential(d), zone, Date.now()) !== 'granted') throw new Error('bench: not granted');
}

/** What bench/reader-cms.ts prints when it is ready: its URL, the personalised card, the enrolled readers. */
export interface ReaderCmsReady {
  url: string;
  uid: string;
  image: string;
  readers: Record<string, { dir: string }>;
}

/**
 * Start bench/reader-cms.ts (with `BENCH_CMS_TIMING=1`, and `nodeArgs` before the script: e.g.
 * '--cpu-prof') and wait for its ready line. Its other stdout lines (a `--trace-gc` trace, which
 * V8 writes to stdout) go to this process's stderr, before and after the ready line: the pipe is
 * always drained, so a chatty child never blocks on it.
 */
export async function startReaderCms(nodeArgs: string[] = []): Promise<{ child: ChildProcess; ready: ReaderCmsReady }> {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'bench/reader-cms.ts'], { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, BENCH_CMS_TIMING: '1' } });
  const ready = await new Promise<ReaderCmsReady>((resolve, reject) => {
    let done = false;
    createInterface({ input: child.stdout! }).on('line', (l) => {
      if (!done && l.startsWith('{')) {
        done = true;
        resolve(JSON.parse(l) as ReaderCmsReady);
      } else process.stderr.write(l + '\n');
    });
    child.once('exit', (code) => reject(new Error(`bench: the CMS process exited (${code}) before it was ready`)));
  });
  return { child, ready };
}

/** CPU time (user + system) of another process so far, in ms (Linux /proc; NaN elsewhere). */
export function procCpuMs(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (CLK_TCK 100)
  } catch {
    return NaN;
  }
}

/**
 * Counts over an online run: key deliveries that had one of the reader's own baton upload requests
 * in flight at some point while they were (the CMS makes those wait), uploads, and the TLS
 * connections the client opened (one opened for a delivery is a full handshake inside a
 * transaction). Wraps `keys` and the client's `call`; `reset()` starts a new count.
 */
export function watchOnline(cms: CmsClient, keys: OnlineKeySource): { keys: OnlineKeySource; reset(): void; counts(): { deliveries: number; behindUpload: number; uploads: number; connections: number; uploadConnections: number } } {
  const zero = { deliveries: 0, behindUpload: 0, uploads: 0, connections: 0, uploadConnections: 0 };
  const c = { ...zero };
  const current = new Set<{ behind: boolean }>();
  let uploading = 0;
  const wrapped: OnlineKeySource = {
    async fetch(r) {
      const d = { behind: uploading > 0 };
      current.add(d);
      c.deliveries++;
      try {
        return await keys.fetch(r);
      } finally {
        current.delete(d);
        if (d.behind) c.behindUpload++;
      }
    },
  };
  const call = cms.call.bind(cms);
  cms.call = (<T>(m: string, p: string, b?: unknown, o?: Parameters<typeof call>[3]) => {
    // the path carries `?denylist=<version>` once the reader holds a denylist
    if (!p.split('?')[0]!.endsWith('/baton')) return call<T>(m, p, b, o);
    c.uploads++;
    uploading++;
    for (const d of current) d.behind = true;
    return call<T>(m, p, b, o).finally(() => uploading--);
  }) as typeof cms.call;
  // the client's connection pools (private: a diagnostic of this benchmark only): 'agent' serves
  // deliveries (and, before uploads had a pool of their own, uploads too), 'background' uploads
  const pools = cms as unknown as Record<string, { createConnection: (...a: unknown[]) => unknown } | undefined>;
  for (const k of ['agent', 'background']) {
    const pool = pools[k];
    if (!pool) continue;
    const connect = pool.createConnection.bind(pool);
    pool.createConnection = (...a: unknown[]) => {
      if (k === 'agent') c.connections++;
      else c.uploadConnections++;
      return connect(...a);
    };
  }
  return {
    keys: wrapped,
    reset: () => Object.assign(c, zero),
    counts: () => ({ ...c }),
  };
}

/** Online transactions (the cold run's included) before the steady-state online run is timed. */
const ONLINE_WARM = 3000;

class Down implements OnlineKeySource {
  down = false;
  constructor(private readonly inner: OnlineKeySource) {}
  fetch(r: Parameters<OnlineKeySource['fetch']>[0]): Promise<KeyDelivery> {
    return this.down ? Promise.reject(new ReaderError('ERR_READER_CMS_UNREACHABLE', 'bench: offline')) : this.inner.fetch(r);
  }
}

export async function figures(opts: BenchOptions): Promise<Figure[]> {
  const n = opts.quick ? 300 : 2000;
  // online p99 figures: at least 1,000 transactions per mode even in --quick (a p99 over 150, as
  // before, was the second-largest sample: one scheduling hiccup decided the figure)
  const nOn = opts.quick ? 1000 : 2000;
  const card = await makeCard({ balance: 100 });
  const t = card.transport;
  const key = card.keys.A1C001![1]!;

  // card-only baseline
  const base = await timeEach(n, () => cardOnlyTx(t, key, 0));

  // offline: cache filled once, then the CMS is gone; per durability mode
  const kp = generateReaderKeyPair();
  const offline = async (id: string, fsync: FsyncMode): Promise<Timing> => {
    const src = new Down(new SealingKeySource(id, kp.publicKey, () => [card]));
    const agent = new ReaderAgent({ readerId: id, roles: CAMPUS_ROLES, baton: AuditBaton.open(mkdtempSync(join(tmpdir(), 'bench-baton-')), { fsync }), unsealer: new ReaderUnsealer(id, kp.privateKey), keys: src });
    await accessCheck(agent, t);
    src.down = true;
    const r = await timeEach(n, async () => {
      const x = await accessCheck(agent, t);
      if (x.mode !== 'offline' || !x.ok) throw new Error('bench: offline tx failed');
    });
    agent.close(); // flushes (group mode)
    return r;
  };
  const off = await offline('bench-off', 'group');
  const offStrict = await offline('bench-off-strict', 'always');
  // the same without any flush to disk (what the agent itself costs; NOT a durable mode)
  const offNoFlush = await offline('bench-off-never', 'never');

  // online: the whole CMS (embedded: SQLite, sealed vault; station jobs + key delivery attached; log
  // level warn) over HTTPS + mTLS in a child process; a card personalised through station jobs, the
  // key delivered by POST /v1/keys/deliver for every transaction
  // BENCH_CMS_TIMING: the CMS process stamps each response with when its request event fired and
  // when it wrote the head (same monotonic clock): the CMS's own handling of each delivery
  const { child, ready } = await startReaderCms();
  const pass = new TextEncoder().encode(PASS);
  const enrolled = (id: string) => {
    const ks = ReaderKeystore.open(ready.readers[id]!.dir, pass);
    const c = ks.certificates();
    return { ks, cms: new CmsClient({ url: ready.url, ca: c.ca, servername: 'localhost' }, { key: ks.tlsKeyPem(), cert: c.cert }) };
  };
  let on: Timing;
  let onStrict: Timing;
  let rtt: Timing;
  let onBase: Timing;
  let onCold: Timing;
  let cmsCpuPerTx = NaN;
  let onCounts = { deliveries: NaN, behindUpload: NaN, uploads: NaN, connections: NaN, uploadConnections: NaN };
  // per online tx: the CMS's own handling of its delivery (request event -> writeHead), and the
  // tx time without it (the reader, the card, both ways over TLS, the wait in the CMS's queue)
  const cmsHandling: number[] = [];
  let disk: SyncLatency | undefined;
  const withoutCms: number[] = [];
  try {
    const uid = ready.uid;
    const st = new InProcessTransport(VirtualCard.fromImage(loadImageSync(ready.image)));
    const { ks: doorKs, cms } = enrolled('bench-on');
    let cmsAcc = 0;
    const raw = cms.raw.bind(cms);
    cms.raw = (async <T>(m: string, p: string, b?: unknown, o?: Parameters<typeof raw>[3]) => {
      const r = await raw<T>(m, p, b, o);
      const h = p === '/v1/keys/deliver' ? r.headers?.['x-bench-cms-t'] : undefined;
      if (typeof h === 'string') {
        const [t1, t2] = h.split(',').map(Number) as [number, number];
        cmsAcc += (t2 - t1) / 1000;
      }
      return r;
    }) as typeof cms.raw;
    const keys = new HttpKeySource(cms);
    const watch = watchOnline(cms, keys);
    const onRoles = [{ tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver'] }];
    const onAgent = new ReaderAgent({ readerId: 'bench-on', roles: onRoles, baton: AuditBaton.open(mkdtempSync(join(tmpdir(), 'bench-baton-')), { fsync: 'group' }), unsealer: new ReaderUnsealer('bench-on', doorKs.privateKey), keys: watch.keys, cms });
    // card-only on this card (same key, obtained once)
    const k = await onAgent.obtainKey(uid, 'A1C001', 1);
    const key1 = k.key.slice();
    onBase = await timeEach(nOn, () => cardOnlyTx(st, key1, 1));
    disk = fdatasyncLatency();
    rtt = await timeEach(nOn / 2, async () => void (await keys.fetch({ tenant: 'access', aid: 'A1C001', uid, keyNo: 1 })));
    // Cold, then steady. Over a fresh CMS's first ~3,000 online transactions the slowest ones
    // come in clusters about one baton upload apart: the CMS's upload path runs once a second,
    // so V8 optimises it only after several uploads — the first ones take 0.15-0.3 ms per entry,
    // later ones 0.08-0.1 (docs/reader-agent.md "Round 11"; the clusters stay with the young
    // generation at full size from the start, after 15 s idle first, and with WAL restarts 8x as
    // often; no major GC of the CMS falls in the run). A deployed reader and CMS run for days:
    // the target figure is the steady state, measured after ONLINE_WARM online transactions;
    // the first nOn of them are timed too and reported as the cold figure.
    const onlineTx = async () => {
      const r = await accessCheck(onAgent, st, { zone: 1 });
      if (r.mode !== 'online' || !r.ok) throw new Error('bench: online tx failed');
    };
    onCold = await timeEach(nOn, onlineTx);
    for (let i = nOn + 50; i < ONLINE_WARM; i++) await onlineTx();
    await onAgent.sync();
    const cms0 = procCpuMs(child.pid);
    watch.reset();
    let measuring = 0;
    on = await timeEach(nOn, async () => {
      cmsAcc = 0;
      const a = process.hrtime.bigint();
      const r = await accessCheck(onAgent, st, { zone: 1 });
      if (r.mode !== 'online' || !r.ok) throw new Error('bench: online tx failed');
      // timeEach's warm-up calls come first: keep the timed ones only
      if (++measuring > Math.min(50, nOn)) {
        cmsHandling.push(cmsAcc);
        withoutCms.push(Number(process.hrtime.bigint() - a) / 1e6 - cmsAcc);
      }
    });
    onCounts = watch.counts();
    await onAgent.sync();
    cmsCpuPerTx = (procCpuMs(child.pid) - cms0) / (nOn + 50);
    onAgent.close();
    // strict durability, same reader and connection (its own baton directory: a second chain the
    // CMS would see as a fork is avoided by a second reader identity)
    const { ks: ks2, cms: cms2 } = enrolled('bench-on-strict');
    const strictAgent = new ReaderAgent({ readerId: 'bench-on-strict', roles: onRoles, baton: AuditBaton.open(mkdtempSync(join(tmpdir(), 'bench-baton-')), { fsync: 'always' }), unsealer: new ReaderUnsealer('bench-on-strict', ks2.privateKey), keys: new HttpKeySource(cms2), cms: cms2 });
    onStrict = await timeEach(nOn, async () => {
      const r = await accessCheck(strictAgent, st, { zone: 1 });
      if (r.mode !== 'online' || !r.ok) throw new Error('bench: online tx (strict) failed');
    });
    await strictAgent.sync();
    strictAgent.close();
    cms2.close();
    cms.close();
  } finally {
    child.stdin!.end();
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
  }

  const baseline = { name: 'reader.card_only_tx', value: base.perSec };
  const baseCpu = { name: 'reader.card_only_tx_per_cpu_s', value: base.perCpuSec };
  const baseMs = { name: 'reader.card_only_tx', value: base.mean };
  const tm = (x: Timing) => `mean ${x.mean.toFixed(3)} ms, p99 ${x.p99.toFixed(3)} ms`;
  const onB = { name: 'reader.card_only_tx (station card)', value: onBase!.perSec };
  const onBp99 = { name: 'reader.card_only_tx_p99 (station card)', value: onBase!.p99 };
  return [
    { name: 'reader.card_only_tx', value: base.perSec, unit: 'tx/s', note: `EV2 auth + 32-byte full-mode read + decide, key in hand; ${tm(base)}` },
    { name: 'reader.card_only_tx_per_cpu_s', value: base.perCpuSec, unit: 'tx/CPU-s', note: 'same, per process CPU-second' },
    { name: 'reader.offline_tx', value: off.perSec, unit: 'tx/s', baseline, note: `fsync=group (default): cache + denylist + baton write, fdatasync group-committed in the background; ${tm(off)}` },
    { name: 'reader.offline_tx_per_cpu_s', value: off.perCpuSec, unit: 'tx/CPU-s', baseline: baseCpu, note: 'fsync=group, per process CPU-second' },
    { name: 'reader.offline_tx_strict', value: offStrict.perSec, unit: 'tx/s', baseline, note: `fsync=always: fdatasync inside every tx; ${tm(offStrict)}` },
    { name: 'reader.offline_tx_strict_per_cpu_s', value: offStrict.perCpuSec, unit: 'tx/CPU-s', baseline: baseCpu, note: 'fsync=always, per process CPU-second' },
    { name: 'reader.online_tx', value: on!.perSec, unit: 'tx/s', baseline: onB, note: `fsync=group: key delivery (mTLS, keep-alive) overlapping SelectApplication + unseal + baton write + background sync; ${tm(on!)}` },
    { name: 'reader.online_tx_per_cpu_s', value: on!.perCpuSec, unit: 'tx/CPU-s', note: 'fsync=group, per CPU-second of the reader process (reader + emulated card; the CMS runs in its own process)' },
    { name: 'reader.online_tx_strict', value: onStrict!.perSec, unit: 'tx/s', baseline: onB, note: `fsync=always; ${tm(onStrict!)}` },
    { name: 'reader.online_tx_strict_per_cpu_s', value: onStrict!.perCpuSec, unit: 'tx/CPU-s', note: 'fsync=always, per CPU-second of the reader process' },
    { name: 'reader.offline_added_ms', value: off.mean - base.mean, unit: 'ms', baseline: baseMs, target: { op: '<=', value: 1 }, note: 'fsync=group (default): mean offline tx time minus mean card-only time' },
    { name: 'reader.offline_added_ms_strict', value: offStrict.mean - base.mean, unit: 'ms', baseline: baseMs, note: 'fsync=always: the same with an fdatasync per tx (the disk flush dominates)' },
    { name: 'reader.offline_added_ms_without_flush', value: offNoFlush.mean - base.mean, unit: 'ms', baseline: baseMs, note: 'diagnostic: fsync=never (not a durable mode): the agent itself' },
    { name: 'reader.offline_agent_cpu_ms', value: 1000 / off.perCpuSec - 1000 / base.perCpuSec, unit: 'CPU-ms', note: 'fsync=group: process CPU per offline tx minus per card-only tx (the agent\'s own CPU; load-independent, unlike wall clock)' },
    { name: 'reader.offline_agent_cpu_ms_strict', value: 1000 / offStrict.perCpuSec - 1000 / base.perCpuSec, unit: 'CPU-ms', note: 'fsync=always: the same (the fdatasync system call included)' },
    { name: 'reader.online_agent_cpu_ms', value: 1000 / on!.perCpuSec - 1000 / rtt!.perCpuSec - 1000 / onBase!.perCpuSec, unit: 'CPU-ms', note: 'fsync=group: reader-process CPU per online tx minus per bare delivery round trip (TLS client, HTTP, JSON) minus per card-only tx: unseal, baton, key checks, the background baton sync (client side)' },
    { name: 'reader.online_reader_cpu_ms', value: 1000 / on!.perCpuSec - 1000 / onBase!.perCpuSec, unit: 'CPU-ms', note: 'fsync=group: reader-process CPU per online tx minus per card-only tx: everything the reader adds online, its delivery round trip (TLS, HTTP, JSON) included' },
    { name: 'reader.online_cms_cpu_ms', value: cmsCpuPerTx, unit: 'CPU-ms', note: 'fsync=group: CPU of the CMS process per online tx (its delivery and its share of the background baton uploads; /proc, 10 ms ticks); load-independent' },
    { name: 'reader.online_deliveries_behind_upload', value: (onCounts.behindUpload * 1000) / onCounts.deliveries, unit: 'per 1k tx', note: `fsync=group: key deliveries with one of the reader's own baton uploads in flight at the CMS at the same time, per 1,000 online tx (${onCounts.behindUpload} of ${onCounts.deliveries}, ${onCounts.uploads} upload requests; warm-up included); the CMS stores an upload before it serves much else` },
    { name: 'reader.online_delivery_connections', value: onCounts.connections, unit: 'count', note: `fsync=group: TLS connections the reader's delivery pool opened during the online run (the one of the runs before it is warm): each is an mTLS handshake inside a transaction; the upload pool opened ${onCounts.uploadConnections}` },
    { name: 'reader.delivery_roundtrip_p99_ms', value: rtt!.p99, unit: 'ms', note: `diagnostic: one POST /v1/keys/deliver over mTLS to the CMS process (CMS-side checks, derive + seal, audit) without the card; mean ${rtt!.mean.toFixed(3)} ms` },
    { name: 'reader.online_added_p99_ms', value: on!.p99 - onBase!.p99, unit: 'ms', baseline: onBp99, target: { op: '<=', value: 5 }, note: `fsync=group: p99 online tx time minus p99 card-only time on the same card (${nOn} tx each)` },
    { name: 'reader.online_cms_handling_p99_ms', value: p99(cmsHandling), unit: 'ms', baseline: { name: 'disk_fdatasync_p99_ms', value: disk!.p99 }, note: `fsync=group: diagnostic: the CMS's own handling of the online run's deliveries, p99 (its request event -> its writeHead, stamped by the bench's CMS process: checks, derive + seal, the audit entry durable); p50 ${percentile(sortNum(cmsHandling), 50).toFixed(3)} ms; baseline: the disk's own 4 KiB write + fdatasync in the same run (bench/disk.ts), p50 ${disk!.p50.toFixed(3)} ms, max ${disk!.max.toFixed(1)} ms — a delivery is answered only after such a sync of the CMS's WAL` },
    { name: 'reader.online_added_p99_ms_without_cms', value: p99(withoutCms) - onBase!.p99, unit: 'ms', baseline: onBp99, note: 'fsync=group: diagnostic: p99 over the online tx of (tx time minus the CMS\'s own handling of its delivery) minus the card-only p99: the reader, the card, TLS both ways and the wait in the CMS\'s queue (behind an upload, another delivery) — what is left of online_added_p99_ms when the CMS handled in 0 ms' },
    { name: 'reader.online_added_p99_ms_strict', value: onStrict!.p99 - onBase!.p99, unit: 'ms', baseline: onBp99, note: 'fsync=always: the same' },
    { name: 'reader.online_added_p99_ms_cold', value: onCold!.p99 - onBase!.p99, unit: 'ms', baseline: onBp99, note: `fsync=group: diagnostic: the same over the first ${nOn} online tx after the CMS started (its first deliveries after the round-trip figure's ${nOn / 2}); online_added_p99_ms is measured after ${ONLINE_WARM.toLocaleString('en-US')}` },
  ];
}

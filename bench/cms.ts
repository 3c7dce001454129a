// CMS benchmarks (engineer H):
//  1. issuance + installation of the campus layout (examples/campus.yaml: 4 applications) on N
//     in-process virtual cards through the station client over HTTPS + mTLS (N = 1,000; --quick 30):
//     cards/s, server-side ms per installed application (Fastify's elapsed time of every station
//     route, issue job included, divided by the applications installed), and in the same run the
//     card-side ms per application (the station executor driving the virtual card: host crypto +
//     card emulation) as the baseline.
//  2. online key delivery over HTTPS with mTLS: 50 concurrent readers (50 enrolled certificates,
//     one keep-alive connection each) in a separate process, for a few seconds: requests/s, p50,
//     p99 — on SQLite + memory sessions, and on PostgreSQL + Redis when both are reachable.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:https';
import { type ConnectionOptions, connect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { VirtualCard } from '../src/card/virtual-card.js';
import { type CmsClient, StationClient } from '../src/reader/station/client.js';
import { InProcessTransport } from '../src/transport/in-process.js';
import { parseLayout } from '../src/cms/layout/index.js';
import { CAMPUS, CAMPUS_AIDS, type E2e, startE2e } from '../test/e2e/harness.js';
import { type BenchOptions, type Figure, percentile } from './types.js';
import { fdatasyncLatency } from './disk.js';

/** One phase of the delivery load: closed loop (every reader back to back) or open loop (a fixed offered rate). */
type LoadPhase = { kind: 'closed'; ms: number } | { kind: 'open'; ms: number; rate: number };
interface LoadJob {
  port: number;
  ca: string;
  readers: { cert: string; key: string }[];
  uids: string[];
  aid: string;
  keyNo: number;
  phases: LoadPhase[];
}
interface PhaseResult {
  count: number;
  errors: number;
  elapsedMs: number;
  p50: number;
  p99: number;
  /** CPU time of the load generator process (user+sys) during the phase. */
  clientCpuMs: number;
}

// ---- the load generator (child process) ----------------------------------------------------------
// Each phase is bracketed by 'mark' messages so the server process reads its CPU clock exactly
// around it. Closed loop: 50 readers send back to back (saturation throughput; its latency is
// mostly queueing: with 50 in flight, p50 ~ 50 / throughput). Open loop: request j is DUE at
// start + j / rate and goes to reader j mod 50; its latency is measured from the due time (not
// from when it could be sent), so a server that falls behind shows its backlog in the
// percentiles (no coordinated omission). Each reader keeps one keep-alive mTLS connection and
// has at most one request on it: a request due while the reader's previous one is in flight
// waits for it (as node:https with an Agent of maxSockets 1 did).
//
// The client: the load generator shares the machine's 2 cores with the CMS, while a real
// deployment's readers run elsewhere. node:https (Agent + ClientRequest + IncomingMessage +
// header parsing per request) cost about half of the CMS's CPU per delivery, so by default each
// reader is one `tls.connect` socket (same mTLS: the reader's certificate and key, the CMS CA,
// servername 'localhost') writing a prebuilt HTTP/1.1 request and reading only the response's
// status line and content-length (RawReader). DCMS_BENCH_CMS_CLIENT=https selects the node:https
// client (for comparison).

/** A delivery request's bytes: the same request node:https sent (keep-alive is HTTP/1.1's default). */
function deliverRequest(port: number, uid: string, aid: string, keyNo: number): Buffer {
  const body = JSON.stringify({ uid, aid, keyNo });
  return Buffer.from(`POST /v1/keys/deliver HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, 'latin1');
}

const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n/i;
const CONNECTION_CLOSE = /\r\nconnection:[ \t]*close[ \t]*\r\n/i;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

/**
 * One reader's keep-alive mTLS connection, one request at a time (the next waits for the
 * answer). A response is read as far as the status line and content-length (Fastify answers
 * every delivery, success or refusal, with a content-length body); anything else (no
 * content-length, a connection closed or failing mid-request) counts as status 0 and the
 * connection is reopened for the next request.
 */
class RawReader {
  private sock: TLSSocket | undefined;
  private buf: Buffer | undefined;
  /** The current response's total length once its head is read; -1 before. */
  private need = -1;
  private status = 0;
  private close = false;
  private readonly queue: ({ req: Buffer; resolve: (status: number) => void } | undefined)[] = [];
  private head = 0;

  constructor(private readonly opts: ConnectionOptions) {}

  post(req: Buffer): Promise<number> {
    return new Promise<number>((resolve) => {
      this.queue.push({ req, resolve });
      if (this.queue.length - this.head === 1) this.send();
    });
  }

  destroy(): void {
    this.sock?.destroy();
  }

  private send(): void {
    (this.sock ?? this.open()).write(this.queue[this.head]!.req);
  }

  private open(): TLSSocket {
    const s = connect(this.opts);
    s.setNoDelay(true);
    s.on('data', (d: Buffer) => this.onData(d));
    const fail = () => {
      if (this.sock !== s) return;
      this.sock = undefined;
      this.buf = undefined;
      this.need = -1;
      this.settle(0);
    };
    s.on('error', fail);
    s.on('close', fail);
    this.sock = s;
    return s;
  }

  private onData(d: Buffer): void {
    let b: Buffer | undefined = this.buf ? Buffer.concat([this.buf, d]) : d;
    while (b) {
      if (this.need < 0) {
        const end = b.indexOf(HEAD_END);
        if (end < 0) break;
        const head = b.toString('latin1', 0, end + 2);
        const len = CONTENT_LENGTH.exec(head);
        if (!head.startsWith('HTTP/1.1 ') || !len) {
          this.sock?.destroy(); // not a response this client reads: count it as failed ('close' settles it)
          return;
        }
        this.status = Number(head.slice(9, 12));
        this.close = CONNECTION_CLOSE.test(head);
        this.need = end + 4 + Number(len[1]);
      }
      if (b.length < this.need) break;
      const rest: Buffer = b.subarray(this.need);
      this.need = -1;
      b = rest.length > 0 ? rest : undefined;
      if (this.close) {
        // the server closes after this answer: the next request goes on a new connection
        const s = this.sock;
        this.sock = undefined;
        s?.destroy();
        b = undefined;
      }
      this.settle(this.status);
    }
    this.buf = b;
  }

  /** Answer the request in flight and send the next queued one. */
  private settle(status: number): void {
    const q = this.queue[this.head];
    if (!q) return;
    this.queue[this.head++] = undefined;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
    q.resolve(status);
    if (this.head < this.queue.length) this.send();
  }
}

/** A reader as the load generator uses it: post the delivery request for `uid`, get the status (0: failed). */
interface LoadClient {
  post(uid: string): Promise<number>;
  destroy(): void;
}

function rawClients(job: LoadJob): LoadClient[] {
  const reqs = new Map(job.uids.map((u) => [u, deliverRequest(job.port, u, job.aid, job.keyNo)]));
  return job.readers.map((r) => {
    const rr = new RawReader({ host: '127.0.0.1', port: job.port, ca: job.ca, cert: r.cert, key: r.key, servername: 'localhost' });
    return { post: (uid: string) => rr.post(reqs.get(uid)!), destroy: () => rr.destroy() };
  });
}

function httpsClients(job: LoadJob): LoadClient[] {
  return job.readers.map((r) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: job.ca, cert: r.cert, key: r.key, servername: 'localhost' });
    const post = (uid: string) =>
      new Promise<number>((resolve) => {
        const body = JSON.stringify({ uid, aid: job.aid, keyNo: job.keyNo });
        const req = request(
          { host: '127.0.0.1', port: job.port, method: 'POST', path: '/v1/keys/deliver', agent, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', () => resolve(0));
        req.end(body);
      });
    return { post, destroy: () => agent.destroy() };
  });
}

async function runLoad(job: LoadJob, mark: (m: object) => Promise<void>): Promise<PhaseResult[]> {
  const agents = process.env.DCMS_BENCH_CMS_CLIENT === 'https' ? httpsClients(job) : rawClients(job);
  const post = (a: LoadClient, uid: string) => a.post(uid);
  // warm-up: one request per reader (TLS handshakes), then a short closed-loop burst (JIT)
  await Promise.all(agents.map((a, i) => post(a, job.uids[i % job.uids.length]!)));
  const warmEnd = performance.now() + 500;
  await Promise.all(agents.map(async (a, i) => {
    while (performance.now() < warmEnd) await post(a, job.uids[i % job.uids.length]!);
  }));
  const out: PhaseResult[] = [];
  for (const ph of job.phases) {
    const lat: number[] = [];
    let errors = 0;
    let k = 0;
    await mark({ phase: 'start' });
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const end = start + ph.ms;
    if (ph.kind === 'closed') {
      await Promise.all(
        agents.map(async (a, i) => {
          let j = i;
          while (performance.now() < end) {
            const t0 = performance.now();
            const status = await post(a, job.uids[j++ % job.uids.length]!);
            lat.push(performance.now() - t0);
            if (status !== 200) errors++;
          }
        }),
      );
    } else {
      const gap = 1000 / ph.rate;
      const total = Math.floor(ph.ms / gap);
      const inflight: Promise<void>[] = [];
      while (k < total) {
        const now = performance.now();
        // send every request that is due (a late timer sends a burst; latency still counts from the due time)
        while (k < total && start + k * gap <= now) {
          const due = start + k * gap;
          const status = post(agents[k % agents.length]!, job.uids[k % job.uids.length]!);
          inflight.push(
            status.then((s) => {
              lat.push(performance.now() - due);
              if (s !== 200) errors++;
            }),
          );
          k++;
        }
        await new Promise<void>((r) => setTimeout(r, Math.max(0, Math.min(1, start + k * gap - performance.now()))));
      }
      await Promise.all(inflight);
    }
    const elapsedMs = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    await mark({ phase: 'end' });
    lat.sort((x, y) => x - y);
    out.push({ count: lat.length, errors, elapsedMs, p50: percentile(lat, 50), p99: percentile(lat, 99), clientCpuMs: (cpu.user + cpu.system) / 1000 });
  }
  for (const a of agents) a.destroy();
  return out;
}

interface StationLoad {
  port: number;
  ca: string;
  cert: string;
  key: string;
  cards: number;
  stations: number;
}
interface StationLoadResult {
  uids: string[];
  wallMs: number;
  cardMs: number;
}

/** K stations (one connection each) personalise `cards` virtual cards between them. */
async function runStations(job: StationLoad): Promise<StationLoadResult> {
  const { CmsClient } = await import('../src/reader/station/client.js');
  const uids: string[] = [];
  let cardMs = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: job.stations }, async () => {
      const cms = new CmsClient({ host: '127.0.0.1', port: job.port, ca: job.ca, cert: job.cert, key: job.key, maxSockets: 1 });
      const station = new StationClient(cms, { readerId: 'station-1' });
      while (next < job.cards) {
        next++;
        const p = await station.personalise(new InProcessTransport(VirtualCard.create()), CAMPUS_AIDS, PICC);
        // one personalise job per card (issue + 4 installs): one request, one receipt
        if (!p.recorded || !p.runs.every((r) => r.ok && r.recorded) || p.runs.length !== 5) throw new Error('card not personalised');
        cardMs += p.cardMs;
        uids.push(p.uid);
      }
      cms.close();
    }),
  );
  return { uids, wallMs: performance.now() - t0, cardMs };
}

if (process.env.DCMS_BENCH_CMS_LOAD && process.send) {
  process.once('message', (job: LoadJob | StationLoad) => {
    // a 'mark' is answered by the parent ('ack') once it has read its CPU clock
    const mark = (m: object) =>
      new Promise<void>((resolve) => {
        process.once('message', () => resolve());
        process.send!(m);
      });
    const run = process.env.DCMS_BENCH_CMS_LOAD === 'stations' ? runStations(job as StationLoad) : runLoad(job as LoadJob, mark);
    void run.then(
      (r) => {
        process.send!(r);
        process.exit(0);
      },
      (e: unknown) => {
        process.stderr.write(`bench child: ${(e as Error).stack ?? String(e)}\n`);
        process.exit(1);
      },
    );
  });
}

function inChild<T>(kind: 'load' | 'stations', job: unknown, onMark?: (phase: string) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [], { execArgv: ['--import', 'tsx'], env: { ...process.env, DCMS_BENCH_CMS_LOAD: kind }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.on('message', (m) => {
      const phase = (m as { phase?: string }).phase;
      if (phase !== undefined) {
        onMark?.(phase);
        child.send({ ack: true });
      } else resolve(m as T);
    });
    child.once('error', reject);
    child.once('exit', (code) => (code ? reject(new Error(`bench child exited with ${code}`)) : undefined));
    child.send(job as object);
  });
}
const loadInChild = (job: LoadJob, onMark: (phase: string) => void) => inChild<PhaseResult[]>('load', job, onMark);

// ---- the CMS side ---------------------------------------------------------------------------------
const campus = parseLayout(CAMPUS, 'campus.yaml');
const PICC = { keySettings: { ...campus.picc.keySettings }, randomUid: campus.picc.randomUid };

export async function setup(env: Record<string, string>): Promise<{ h: E2e; station: StationClient; cms: CmsClient }> {
  const h = await startE2e(env, { limits: false });
  const up = await h.op('POST', '/v1/layouts', CAMPUS, 'application/yaml');
  if (up.status !== 201) throw new Error(`layout upload: ${up.status}`);
  const cms = await h.reader('station-1', CAMPUS_AIDS.map((aid, i) => ({ aid, keyNo: 0, operations: i === 0 ? ['install', 'issue'] : ['install'] })));
  return { h, station: new StationClient(cms, { readerId: 'station-1' }), cms };
}

export async function personalise(h: E2e, station: StationClient, n: number): Promise<{ uids: string[]; wallMs: number; cardMs: number }> {
  const uids: string[] = [];
  let cardMs = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = new InProcessTransport(VirtualCard.create());
    const p = await station.personalise(t, CAMPUS_AIDS, PICC);
    if (!p.recorded || !p.runs.every((r) => r.ok && r.recorded) || p.runs.length !== 5) throw new Error(`card ${i} not personalised`);
    cardMs += p.cardMs;
    uids.push(p.uid);
  }
  const wallMs = performance.now() - t0;
  for (const uid of uids) await h.cms.deps.domain!.cards.transition(uid, 'active');
  return { uids, wallMs, cardMs };
}

export async function deliveryFigures(tag: string, h: E2e, uids: string[], quick: boolean, target: { rps: number; p99: number; openRate: number }): Promise<Figure[]> {
  const readers: { cert: string; key: string }[] = [];
  for (let i = 0; i < 50; i++) {
    const c: CmsClient = await h.reader(`door-${i}`, [{ aid: 'A1C001', keyNo: 1, operations: ['deliver'] }]);
    readers.push({ cert: c.conn.cert, key: c.conn.key });
  }
  // The load generator is a child process, so this process's CPU time is the server's; each
  // phase's CPU clock is read when the child marks its start and end (after the warm-up: TLS
  // handshakes, first-seen certificate checks, JIT), so these are readers on open connections.
  // Phases: closed loop (saturation throughput), open loop at the target rate (the latency target
  // is judged here), open loop at a light rate (latency of an unloaded server, for reference).
  const ms = quick ? 2000 : 8000;
  const light = 500;
  const phases: LoadPhase[] = [
    { kind: 'closed', ms },
    { kind: 'open', ms, rate: target.openRate },
    { kind: 'open', ms, rate: light },
  ];
  const serverCpu: number[] = [];
  // the server's event loop delay per phase (the server runs in this process): its p99 and max
  // are the stalls every request queued behind pays (audit commit, GC, TLS, JSON)
  const loopDelay: { p99: number; max: number }[] = [];
  const eld = monitorEventLoopDelay({ resolution: 1 });
  const disk = fdatasyncLatency();
  let cpu0 = process.cpuUsage();
  const res = await loadInChild({ port: h.server.port, ca: h.ca, readers, uids, aid: 'A1C001', keyNo: 1, phases }, (phase) => {
    if (phase === 'start') {
      cpu0 = process.cpuUsage();
      eld.reset();
      eld.enable();
    } else {
      const c = process.cpuUsage(cpu0);
      serverCpu.push((c.user + c.system) / 1000);
      eld.disable();
      loopDelay.push({ p99: eld.percentile(99) / 1e6, max: eld.max / 1e6 });
    }
  });
  const [closed, open, idle] = res as [PhaseResult, PhaseResult, PhaseResult];
  const errors = res.reduce((s, r) => s + r.errors, 0);
  if (errors > 0) throw new Error(`${errors} delivery requests failed`);
  const rps = (closed.count * 1000) / closed.elapsedMs;
  const cpuMsPerReq = serverCpu[0]! / closed.count;
  const openRps = (open.count * 1000) / open.elapsedMs;
  const conn = '50 readers (mTLS, each keeps one keep-alive connection open like a real reader; load generator in its own process)';
  return [
    { name: `cms.delivery.${tag}.rps`, value: rps, unit: 'req/s', target: { op: '>=', value: target.rps }, note: `closed loop (saturation): ${conn} send back to back, ${closed.count} deliveries in ${(closed.elapsedMs / 1000).toFixed(1)} s; the throughput target is judged here` },
    { name: `cms.delivery.${tag}.closed_p50`, value: closed.p50, unit: 'ms', note: 'closed loop: with 50 requests always in flight the latency is queueing (p50 ~ 50 / throughput); not the latency target' },
    { name: `cms.delivery.${tag}.closed_p99`, value: closed.p99, unit: 'ms' },
    {
      name: `cms.delivery.${tag}.open_p50`,
      value: open.p50,
      unit: 'ms',
      note: `open loop: ${target.openRate.toLocaleString('en-US')} req/s offered over the same 50 connections (request j due at j / rate, latency from its due time, so a backlog counts); achieved ${Math.round(openRps).toLocaleString('en-US')} req/s`,
    },
    { name: `cms.delivery.${tag}.open_p99`, value: open.p99, unit: 'ms', target: { op: '<=', value: target.p99 }, note: `open loop at ${target.openRate.toLocaleString('en-US')} req/s offered: the latency target is judged here` },
    { name: `cms.delivery.${tag}.open_rps`, value: openRps, unit: 'req/s', note: `completed per second of the open-loop phase (offered ${target.openRate.toLocaleString('en-US')})` },
    { name: `cms.delivery.${tag}.light_p50`, value: idle.p50, unit: 'ms', note: `open loop at ${light} req/s offered (reference: latency of a lightly loaded server)` },
    {
      name: `cms.delivery.${tag}.light_p99`,
      value: idle.p99,
      unit: 'ms',
      baseline: { name: 'disk_fdatasync_p99_ms', value: disk.p99 },
      note: `baseline: the disk's own 4 KiB write + fdatasync measured before the phases (bench/disk.ts; p50 ${disk.p50.toFixed(3)} ms, max ${disk.max.toFixed(1)} ms): every delivery waits for such a sync of the WAL before its answer${tag === 'pg_redis' ? ' (here PostgreSQL\'s commit flush, on the same disk)' : ''}`,
    },
    {
      name: `cms.delivery.${tag}.server_cpu_ms_per_req`,
      value: cpuMsPerReq,
      unit: 'ms',
      note: 'closed loop: CPU time (user+sys, all threads) of the CMS process per delivery; largely independent of how loaded the shared machine is (database/Redis servers not counted)',
    },
    { name: `cms.delivery.${tag}.req_per_server_cpu_s`, value: 1000 / cpuMsPerReq, unit: 'req/CPU-s', note: 'deliveries per CPU-second of the CMS process (2 cores = 2 CPU-seconds per second)' },
    { name: `cms.delivery.${tag}.open_server_cpu_ms_per_req`, value: serverCpu[1]! / open.count, unit: 'ms', note: 'open loop at the target rate: CMS CPU per delivery' },
    {
      name: `cms.delivery.${tag}.light_server_cpu_ms_per_req`,
      value: serverCpu[2]! / idle.count,
      unit: 'ms',
      note: `open loop at ${light} req/s: CMS CPU per delivery at a fixed request rate (batching as in a lightly loaded deployment; the most comparable figure between runs and machines)`,
    },
    {
      name: `cms.delivery.${tag}.open_loop_delay_p99`,
      value: loopDelay[1]!.p99,
      unit: 'ms',
      note: `open loop at the target rate: p99 of the CMS event loop delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution); max ${loopDelay[1]!.max.toFixed(1)} ms; closed loop p99 ${loopDelay[0]!.p99.toFixed(1)} / max ${loopDelay[0]!.max.toFixed(1)} ms`,
    },
    { name: `cms.delivery.${tag}.open_loop_delay_max`, value: loopDelay[1]!.max, unit: 'ms', note: 'open loop at the target rate: the longest event loop stall of the CMS' },
    { name: `cms.delivery.${tag}.loadgen_cpu_ms_per_req`, value: closed.clientCpuMs / closed.count, unit: 'ms', note: 'closed loop: CPU of the load generator (50 mTLS clients) per delivery — it shares the 2 cores with the CMS' },
  ];
}

/**
 * Drop the run's PostgreSQL schema: left behind, every run's tables stayed in the shared server
 * (and in each of its checkpoints' file syncs: 6,184 files at one checkpoint on this machine).
 */
async function dropSchema(url: string, schema: string): Promise<void> {
  const pgm = (await import('pg')).default;
  const c = new pgm.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await c.end();
  }
}

async function reachable(port: number): Promise<boolean> {
  const { createConnection } = await import('node:net');
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.setTimeout(1000, () => (s.destroy(), resolve(false)));
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/**
 * Issuance + installation of the campus layout on `n` cards by 4 stations in a child process,
 * against `h`: the figures, and the UIDs personalised (activated).
 */
export async function issueInstallFigures(h: E2e, cms: CmsClient, n: number): Promise<{ figures: Figure[]; uids: string[] }> {
  h.station.timings.reset();
  const stations = 4;
  const cpu0 = process.cpuUsage();
  const p = await inChild<StationLoadResult>('stations', { port: h.server.port, ca: h.ca, cert: cms.conn.cert, key: cms.conn.key, cards: n, stations } satisfies StationLoad);
  const cpu = process.cpuUsage(cpu0);
  for (const uid of p.uids) await h.cms.deps.domain!.cards.transition(uid, 'active');
  const apps = n * CAMPUS_AIDS.length;
  const elapsed = Object.entries(h.station.timings.snapshot())
    .filter(([route]) => route.includes('/station/jobs'))
    .reduce((s, [, v]) => s + v.ms, 0);
  const serverCpuPerApp = (cpu.user + cpu.system) / 1000 / apps;
  const cardPerApp = p.cardMs / apps;
  const figures: Figure[] = [
    { name: 'cms.issue_install.cards_per_s', value: (n * 1000) / p.wallMs, unit: 'cards/s', note: `${n} cards x (issue + ${CAMPUS_AIDS.length} applications), ${stations} stations in parallel (own process), HTTPS+mTLS` },
    {
      name: 'cms.issue_install.server_ms_per_app',
      value: serverCpuPerApp,
      unit: 'ms',
      baseline: { name: 'card_ms_per_app', value: cardPerApp },
      target: { op: '<=', value: 2 },
      note: 'server CPU time (user+sys of the CMS process: HTTPS, routes, custody, audit log, SQLite) / applications installed, issue jobs included',
    },
    {
      name: 'cms.issue_install.server_latency_ms_per_app',
      value: elapsed / apps,
      unit: 'ms',
      note: "sum of Fastify elapsed times of the station job routes (one 'personalise' job per card: create with claim, receipt) / applications: includes waiting for SQLite and audit commits (fsync) under concurrency",
    },
    { name: 'cms.issue_install.card_ms_per_app', value: cardPerApp, unit: 'ms', note: 'station executor on the in-process virtual card (host crypto + card emulation) per application, issue included, measured in the station process' },
  ];
  return { figures, uids: p.uids };
}

export async function figures(opts: BenchOptions): Promise<Figure[]> {
  const out: Figure[] = [];
  const n = opts.quick ? 30 : 1000;
  // 1. issuance + installation (SQLite, embedded vault, memory sessions); the stations run in a
  //    child process, so this process's CPU time is the server's
  const { h, cms } = await setup({});
  let sqliteRps = 0;
  try {
    const ii = await issueInstallFigures(h, cms, n);
    out.push(...ii.figures);
    const d = await deliveryFigures('sqlite', h, ii.uids, opts.quick, { rps: 3000, p99: 20, openRate: 3000 });
    sqliteRps = d[0]!.value;
    out.push(...d);
  } finally {
    await h.close();
  }
  // 2. delivery on PostgreSQL + Redis
  if ((await reachable(5432)) && (await reachable(6379))) {
    const suffix = randomBytes(4).toString('hex');
    const pgUrl = process.env.DESFIRE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
    const schema = `bench_${suffix}`;
    const pg = await setup({
      DESFIRE_CMS_STORAGE: 'postgres',
      DESFIRE_CMS_POSTGRES_URL: pgUrl,
      DESFIRE_CMS_POSTGRES_SCHEMA: schema,
      DESFIRE_CMS_SESSIONS: 'redis',
      DESFIRE_CMS_REDIS_URL: process.env.DESFIRE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0',
      DESFIRE_CMS_REDIS_KEY_PREFIX: `bench:${suffix}:`,
    });
    try {
      const p = await personalise(pg.h, pg.station, opts.quick ? 10 : 50);
      const d = await deliveryFigures('pg_redis', pg.h, p.uids, opts.quick, { rps: 0.7 * Math.max(sqliteRps, 1), p99: 20, openRate: 2100 });
      d[0]!.baseline = { name: 'cms.delivery.sqlite.rps', value: sqliteRps };
      d[0]!.note += '; target: within 30% of SQLite';
      out.push(...d);
    } finally {
      await pg.h.close();
      await dropSchema(pgUrl, schema);
    }
  } else {
    out.push({ name: 'cms.delivery.pg_redis.rps', value: NaN, unit: 'req/s', note: 'skipped: PostgreSQL or Redis not reachable on 127.0.0.1' });
  }
  return out;
}

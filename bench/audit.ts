// Audit log benchmarks: durable appends/s with group commit on SQLite and PostgreSQL (many
// concurrent appenders) against a baseline of one un-batched durable transaction per append,
// measured in the same run; inclusion proofs/s; offline verification of 1,000,000 entries
// (quick mode: 100,000).
import { appendFileSync, closeSync, createReadStream, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { openDatabase, type DatabaseConfig, type DatabaseHandle } from '../src/cms/storage/index.js';
import { AuditLog } from '../src/cms/audit/log.js';
import { SqlAuditStore } from '../src/cms/audit/store.js';
import { Ed25519CheckpointSigner, verifierKey } from '../src/cms/audit/signer.js';
import type { AuditInput } from '../src/cms/audit/entry.js';
import { encodeEntry, exportEntryText, normalizeInput } from '../src/cms/audit/entry.js';
import { checkpointBody, signedNote } from '../src/cms/audit/checkpoint.js';
import { hex, utf8 } from '../src/cms/audit/crypto.js';
import { leafHash } from '../src/cms/audit/merkle.js';
import { nodeAuditCrypto as c } from '../src/cms/audit/node-crypto.js';
import { MerkleTree } from '../src/cms/audit/tree.js';
import { LogVerifier, verifyJsonlLine } from '../src/cms/audit/verify.js';
import { verifyJsonlStream } from '../src/cms/audit/verify-parallel.js';
import type { BenchOptions, Figure } from './types.js';

const PG_URL = process.env.DESFIRE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

function input(i: number): AuditInput {
  return {
    readerId: `reader-${i % 50}`,
    cardUid: '04A1B2C3D4' + (i % 65536).toString(16).padStart(4, '0').toUpperCase(),
    tenant: i % 2 ? 'tenant-a' : 'tenant-b',
    aid: i % 2 ? 'F00001' : 'F00002',
    keyNo: i % 4,
    keyVersion: 1,
    operation: 'key.release',
    result: 'ok',
    correlationId: `c-${i}`,
    details: { address: '10.0.0.' + (i % 250) },
  };
}

/** `appenders` concurrent loops, each awaiting its own durable append, for about `ms`. */
async function appendRate(log: AuditLog, appenders: number, ms: number): Promise<{ rate: number; n: number }> {
  let n = 0;
  let stop = false;
  const start = process.hrtime.bigint();
  setTimeout(() => (stop = true), ms).unref();
  await Promise.all(
    Array.from({ length: appenders }, async (_, a) => {
      let i = a;
      while (!stop) {
        await log.record(input(i));
        i += appenders;
        n++;
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  return { rate: n / secs, n };
}

async function appendFigures(name: string, config: DatabaseConfig, opts: BenchOptions, cleanup: (h: DatabaseHandle) => Promise<void>): Promise<Figure[]> {
  const h = await openDatabase(config);
  try {
    const signer = Ed25519CheckpointSigner.generate('bench');
    const store = new SqlAuditStore(h);
    // baseline: one durable transaction per append (no batching), 8 appenders
    const single = await AuditLog.open({ store, signer, origin: 'bench', maxBatch: 1, maxQueue: 100_000 });
    const base = await appendRate(single, 8, opts.quick ? 1500 : 4000);
    await single.close();
    const grouped = await AuditLog.open({ store, signer, origin: 'bench', maxBatch: 2000, maxQueue: 100_000 });
    const cpu0 = process.cpuUsage();
    const rate = await appendRate(grouped, 1000, opts.quick ? 3000 : 8000);
    const cpu = process.cpuUsage(cpu0);
    // CPU per batch of a given size: k appends queued in one turn (one batch), awaited, repeated
    const perBatch = async (k: number, entries: number) => {
      let i = 0;
      const c0 = process.cpuUsage();
      while (i < entries) {
        const ps: Promise<unknown>[] = [];
        for (let j = 0; j < k; j++) ps.push(grouped.record(input(i++)));
        await Promise.all(ps);
      }
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / (entries / k);
    };
    const lone = await perBatch(1, opts.quick ? 1000 : 3000);
    const b64 = await perBatch(64, opts.quick ? 64 * 100 : 64 * 400);
    await grouped.close();
    return [
      {
        name: `audit.${name}_lone_batch_cpu_us`,
        value: lone,
        unit: 'us',
        note: 'CPU (user+system, all threads: the WAL sync in the thread pool, the checkpointer) per lone append, sequential (every append its own durable batch: a key delivery at light load)',
      },
      {
        name: `audit.${name}_batch64_cpu_us_per_entry`,
        value: b64 / 64,
        unit: 'us',
        note: 'CPU per entry in batches of 64 appends queued together (user+system, all threads)',
      },
      {
        name: `audit.${name}_group_commit_appends_per_cpu_s`,
        value: rate.n / ((cpu.user + cpu.system) / 1e6),
        unit: 'appends/CPU-s',
        note: 'the same run per CPU-second of this process (user+system; the machine is shared, wall clock depends on its load and on fsync latency)',
      },
      {
        name: `audit.${name}_group_commit_appends`,
        value: rate.rate,
        unit: 'appends/s',
        baseline: { name: `audit.${name}_unbatched_appends`, value: base.rate },
        ...(name === 'sqlite' ? { target: { op: '>=' as const, value: 20_000 } } : {}),
        note: `1,000 concurrent appenders, each append durable (${name === 'sqlite' ? 'WAL, synchronous=FULL' : 'synchronous_commit=on'}) before it resolves; baseline: one transaction per append, 8 appenders`,
      },
    ];
  } finally {
    await cleanup(h);
    await h.close();
  }
}

function proofFigures(opts: BenchOptions): Figure[] {
  const n = opts.quick ? 100_000 : 1_000_000;
  const t = new MerkleTree(c);
  const seed = randomBytes(32);
  for (let i = 0; i < n; i++) t.append(c.sha256(seed, new Uint8Array([i & 255, (i >> 8) & 255, (i >> 16) & 255])));
  let k = 0;
  const start = process.hrtime.bigint();
  const until = start + BigInt(opts.quick ? 1000 : 3000) * 1_000_000n;
  while (process.hrtime.bigint() < until) {
    for (let j = 0; j < 100; j++) t.inclusionProof((k++ * 7919) % n, n);
  }
  const rate = k / (Number(process.hrtime.bigint() - start) / 1e9);
  return [{ name: 'audit.inclusion_proofs', value: rate, unit: 'proofs/s', note: `tree of ${n.toLocaleString('en-US')} leaves, in-memory levels` }];
}

export async function verifyFigures(opts: BenchOptions, dir: string): Promise<Figure[]> {
  const n = opts.quick ? 100_000 : 1_000_000;
  const signer = Ed25519CheckpointSigner.generate('bench');
  // an export file as `audit export` writes it (checkpoint lines first, then entries)
  const t = new MerkleTree(c);
  const bodyFile = path.join(dir, 'entries.jsonl');
  const fd = openSync(bodyFile, 'w');
  let chunk: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = { ...normalizeInput({ ...input(i), time: 1_760_000_000_000 + i }, 0), index: i };
    const lh = leafHash(c, encodeEntry(e));
    t.append(lh);
    chunk.push(`{"type":"entry","entry":${exportEntryText(e)},"leafHash":"${hex(lh)}"}`);
    if (chunk.length === 10_000) {
      writeSync(fd, chunk.join('\n') + '\n');
      chunk = [];
    }
  }
  if (chunk.length) writeSync(fd, chunk.join('\n') + '\n');
  closeSync(fd);
  const cpBody = checkpointBody({ origin: 'bench', size: n, root: t.root() });
  const note = signedNote(cpBody, signer.name, signer.keyHash, await signer.sign(utf8.encode(cpBody)));
  const file = path.join(dir, 'export.jsonl');
  writeFileSync(file, JSON.stringify({ type: 'header', format: 'desfire-cms-audit/1', origin: 'bench', treeSize: n }) + '\n' + JSON.stringify({ type: 'checkpoint', size: n, note }) + '\n');
  appendFileSync(file, readFileSync(bodyFile));
  rmSync(bodyFile);
  // baseline, same file and run: every line through readline and the pure verifier on one thread
  const serial = await measure(async () => {
    const v = new LogVerifier({ crypto: c, key: verifierKey(signer.vkey), origin: 'bench' });
    const rl = createInterface({ input: createReadStream(file, { highWaterMark: 1 << 20 }), crlfDelay: Infinity });
    let ln = 0;
    for await (const line of rl) verifyJsonlLine(v, line, ++ln);
    return v.finish();
  });
  // what `desfire-cms audit verify --file` does: verifyJsonlStream, entries hashed in worker threads
  const par = await measure(() => verifyJsonlStream(createReadStream(file, { highWaterMark: 1 << 20 }), { crypto: c, key: verifierKey(signer.vkey), origin: 'bench' }));
  for (const r of [serial.r, par.r]) if (!r.ok || r.entries !== n) throw new Error(`bench export did not verify: ${r.failure?.reason}`);
  const tag = opts.quick ? '100k' : '1m';
  return [
    {
      name: `audit.verify_${tag}_entries`,
      value: par.secs,
      unit: 's',
      baseline: { name: `audit.verify_${tag}_entries_serial_readline`, value: serial.secs },
      ...(opts.quick ? {} : { target: { op: '<=' as const, value: 10 } }),
      note: `offline verification of a JSONL export file streamed from disk (entries hashed as written in ${workerCount()} worker thread(s), leaf hash vs recorded, tree root vs signed checkpoint), ${n.toLocaleString('en-US')} entries; baseline: readline + the pure verifier on one thread, same file${opts.quick ? '; the 1,000,000 target applies to the full run' : ''}`,
    },
    {
      name: `audit.verify_${tag}_entries_cpu`,
      value: par.cpu,
      unit: 's',
      baseline: { name: `audit.verify_${tag}_entries_serial_readline_cpu`, value: serial.cpu },
      note: 'CPU time (user+system, all threads) of the same verification: what it costs on otherwise idle cores when the machine is shared',
    },
  ];
}

async function measure<T>(fn: () => Promise<T>): Promise<{ r: T; secs: number; cpu: number }> {
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const r = await fn();
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { r, secs, cpu: (cpu.user + cpu.system) / 1e6 };
}

function workerCount(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

export async function figures(opts: BenchOptions): Promise<Figure[]> {
  const out: Figure[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'desfire-bench-audit-'));
  try {
    out.push(...(await appendFigures('sqlite', { kind: 'sqlite', file: path.join(dir, 'bench.sqlite') }, opts, async () => undefined)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  try {
    out.push(
      ...(await appendFigures('postgres', { kind: 'postgres', url: PG_URL, schema, poolSize: 4 }, opts, async (h) => {
        await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(h.db);
      })),
    );
  } catch (e) {
    process.stderr.write(`bench audit: PostgreSQL skipped: ${(e as Error).message}\n`);
  }
  out.push(...proofFigures(opts));
  const vdir = mkdtempSync(path.join(tmpdir(), 'desfire-bench-verify-'));
  try {
    out.push(...(await verifyFigures(opts, vdir)));
  } finally {
    rmSync(vdir, { recursive: true, force: true });
  }
  return out;
}

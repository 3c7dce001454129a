// `desfire-cms audit <verify|export|checkpoint|prune|alerts>`: the tamper-evident audit log
// from the command line, offline.
//
//   audit verify --file LOG.jsonl --key VKEY|--key-file FILE [--origin O]
//   audit verify (--data-dir DIR | --db URL) [--key VKEY|--key-file FILE] [--origin O]
//   audit export (--data-dir DIR | --db URL) --out FILE [--tenant T] [--aid AID[,AID...]] [--key-dir DIR]
//   audit checkpoint (--data-dir DIR | --db URL) [--key-dir DIR]
//   audit prune (--data-dir DIR | --db URL) --older-than-days N --out FILE [--key-dir DIR]
//   audit alerts (--data-dir DIR | --db URL) [--since ISO] [--limit N]
//
// --db is sqlite:PATH or postgres://...; --data-dir DIR means sqlite:DIR/cms.sqlite with the
// checkpoint key in DIR. Exit codes: 0 ok, 1 verification failed (first bad entry printed), 2 usage.
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { OpenedAudit } from '../../cms/audit/index.js';
import type { AuditLog } from '../../cms/audit/log.js';
import type { VerifyReport } from '../../cms/audit/verify.js';
import type { DatabaseConfig } from '../../cms/storage/index.js';
import { type CliIO, type Command, UsageError } from '../io.js';

type Flags = Record<string, string>;

function parse(args: string[], allowed: string[]): Flags {
  const v: Flags = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}'`);
    const name = a.slice(2);
    if (!allowed.includes(name)) throw new UsageError(`unknown option --${name}`);
    const val = args[i + 1];
    if (val === undefined || val.startsWith('--')) throw new UsageError(`--${name} needs a value`);
    v[name] = val;
    i++;
  }
  return v;
}

function dbConfig(v: Flags, cwd: string): { config: DatabaseConfig; keyDir: string } {
  if (v['data-dir'] && v.db) throw new UsageError('give either --data-dir or --db, not both');
  if (v['data-dir']) {
    const dir = path.resolve(cwd, v['data-dir']);
    const file = path.join(dir, 'cms.sqlite');
    if (!existsSync(file)) throw new UsageError(`--data-dir: no database at ${file}`);
    return { config: { kind: 'sqlite', file }, keyDir: v['key-dir'] ? path.resolve(cwd, v['key-dir']) : dir };
  }
  if (v.db) {
    const keyDir = v['key-dir'] ? path.resolve(cwd, v['key-dir']) : cwd;
    if (v.db.startsWith('sqlite:')) {
      const file = path.resolve(cwd, v.db.slice(7));
      if (!existsSync(file)) throw new UsageError(`--db: no database at ${file}`);
      return { config: { kind: 'sqlite', file }, keyDir };
    }
    if (/^postgres(ql)?:\/\//.test(v.db)) return { config: { kind: 'postgres', url: v.db }, keyDir };
    throw new UsageError('--db must be sqlite:PATH or postgres://...');
  }
  throw new UsageError('missing --data-dir or --db');
}

async function trustedKey(v: Flags, cwd: string, fallbackDir: string | undefined, io: CliIO) {
  const { verifierKey } = await import('../../cms/audit/signer.js');
  let text = v.key;
  if (!text && v['key-file']) {
    try {
      text = readFileSync(path.resolve(cwd, v['key-file']), 'utf8').trim();
    } catch {
      throw new UsageError(`--key-file: cannot read ${v['key-file']}`);
    }
  }
  if (!text && fallbackDir) {
    const f = path.join(fallbackDir, 'audit-checkpoint.vkey');
    if (existsSync(f)) {
      text = readFileSync(f, 'utf8').trim();
      io.err(`audit: using the verifier key found in ${f} (pin it with --key for an independent check)`);
    }
  }
  if (!text) throw new UsageError('missing --key or --key-file (the trusted checkpoint verifier key)');
  try {
    return verifierKey(text);
  } catch (e) {
    throw new UsageError(`--key: ${(e as Error).message}`);
  }
}

function report(io: CliIO, r: VerifyReport): number {
  if (r.ok) {
    const root = r.latest ? Buffer.from(r.latest.root).toString('hex') : '-';
    io.out(`OK ${r.mode}: ${r.entries} entries${r.pruned ? ` (+${r.pruned} pruned leaves)` : ''}, ${r.checkpoints} checkpoints, ${r.consistencyProofs} consistency proofs; tree size ${r.latest?.size ?? 0}, root ${root}`);
    return 0;
  }
  const f = r.failure!;
  io.out(`FAIL: ${f.index === null ? 'log' : `entry ${f.index}`}: ${f.reason}${f.line !== undefined ? ` (line ${f.line})` : ''}`);
  return 1;
}

async function withAudit<T>(v: Flags, io: CliIO, fn: (a: OpenedAudit) => Promise<T>): Promise<T> {
  const { config, keyDir } = dbConfig(v, io.cwd);
  const { openDatabase } = await import('../../cms/storage/index.js');
  const { openAudit } = await import('../../cms/audit/index.js');
  const h = await openDatabase(config);
  try {
    const a = await openAudit({ handle: h, keyDir });
    try {
      return await fn(a);
    } finally {
      await a.close();
    }
  } finally {
    await h.close();
  }
}

async function writeExport(log: AuditLog, out: string, opts: { tenant?: string; aids?: string[] }) {
  const { exportLog } = await import('../../cms/audit/export.js');
  const f = await openFile(out, 'wx', 0o640).catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(`--out: cannot create ${out}: ${e.code === 'EEXIST' ? 'file exists' : e.message}`);
  });
  try {
    let buf: string[] = [];
    const summary = await exportLog(log, {
      ...opts,
      write: async (line) => {
        buf.push(line);
        if (buf.length >= 1000) {
          await f.write(buf.join('\n') + '\n');
          buf = [];
        }
      },
    });
    if (buf.length) await f.write(buf.join('\n') + '\n');
    await f.sync();
    return summary;
  } finally {
    await f.close();
  }
}

const SUB: Record<string, { usage: string; run(args: string[], io: CliIO): Promise<number> }> = {
  verify: {
    usage: 'audit verify (--file LOG.jsonl | --data-dir DIR | --db URL) [--key VKEY | --key-file FILE] [--origin O]',
    async run(args, io) {
      const v = parse(args, ['file', 'data-dir', 'db', 'key', 'key-file', 'origin', 'key-dir']);
      if (v.file) {
        if (v['data-dir'] || v.db) throw new UsageError('give either --file or a database, not both');
        const file = path.resolve(io.cwd, v.file);
        if (!existsSync(file)) throw new UsageError(`--file: ${v.file} not found`);
        const key = await trustedKey(v, io.cwd, undefined, io);
        // streamed; entries hashed in worker threads, every line checked in order (stops at the first failure)
        const { verifyJsonlStream } = await import('../../cms/audit/verify-parallel.js');
        const { nodeAuditCrypto } = await import('../../cms/audit/node-crypto.js');
        const input = createReadStream(file, { highWaterMark: 1 << 20 });
        try {
          return report(io, await verifyJsonlStream(input, { crypto: nodeAuditCrypto, key, ...(v.origin ? { origin: v.origin } : {}) }));
        } finally {
          input.destroy();
        }
      }
      const { config, keyDir } = dbConfig(v, io.cwd);
      const key = await trustedKey(v, io.cwd, keyDir, io);
      const { openDatabase } = await import('../../cms/storage/index.js');
      const { verifyDatabase } = await import('../../cms/audit/db-verify.js');
      const h = await openDatabase(config, { migrate: false });
      try {
        return report(io, await verifyDatabase(h, key, v.origin));
      } finally {
        await h.close();
      }
    },
  },
  export: {
    usage: 'audit export (--data-dir DIR | --db URL) --out FILE [--tenant T] [--aid AID,...] [--key-dir DIR]',
    async run(args, io) {
      const v = parse(args, ['data-dir', 'db', 'out', 'tenant', 'aid', 'key-dir']);
      if (!v.out) throw new UsageError('missing --out FILE');
      const aids = v.aid ? v.aid.split(',').map((a) => a.trim().toUpperCase()) : undefined;
      if (aids?.some((a) => !/^[0-9A-F]{6}$/.test(a))) throw new UsageError('--aid: each AID is 6 hex digits');
      const out = path.resolve(io.cwd, v.out);
      return withAudit(v, io, async (a) => {
        const s = await writeExport(a.log, out, { ...(v.tenant ? { tenant: v.tenant } : {}), ...(aids ? { aids } : {}) });
        io.out(`exported ${s.entries} entries${s.pruned ? ` and ${s.pruned} pruned leaves` : ''} (tree size ${s.treeSize}, ${s.checkpoints} checkpoints) to ${out}`);
        io.out(`verifier key: ${a.signer.vkey}`);
        return 0;
      });
    },
  },
  checkpoint: {
    usage: 'audit checkpoint (--data-dir DIR | --db URL) [--key-dir DIR]',
    async run(args, io) {
      const v = parse(args, ['data-dir', 'db', 'key-dir']);
      return withAudit(v, io, async (a) => {
        const cp = await a.log.checkpoint();
        io.out(cp.note.trimEnd());
        return 0;
      });
    },
  },
  prune: {
    usage: 'audit prune (--data-dir DIR | --db URL) --older-than-days N --out EXPORT.jsonl [--key-dir DIR]',
    async run(args, io) {
      const v = parse(args, ['data-dir', 'db', 'older-than-days', 'out', 'key-dir']);
      const days = Number(v['older-than-days']);
      if (!v['older-than-days'] || !Number.isInteger(days) || days < 1) throw new UsageError('--older-than-days must be a positive integer');
      if (!v.out) throw new UsageError('missing --out FILE (prune always exports first)');
      const out = path.resolve(io.cwd, v.out);
      return withAudit(v, io, async (a) => {
        const s = await writeExport(a.log, out, {});
        // the export must verify before anything is pruned
        const { LogVerifier, verifyJsonlLine } = await import('../../cms/audit/verify.js');
        const { nodeAuditCrypto } = await import('../../cms/audit/node-crypto.js');
        const { verifierKey } = await import('../../cms/audit/signer.js');
        const ver = new LogVerifier({ crypto: nodeAuditCrypto, key: verifierKey(a.signer.vkey) });
        const rl = createInterface({ input: createReadStream(out), crlfDelay: Infinity });
        let n = 0;
        for await (const line of rl) verifyJsonlLine(ver, line, ++n);
        const r = ver.finish();
        if (!r.ok) {
          io.err(`audit prune: the export does not verify (${r.failure?.reason}); nothing pruned`);
          return 1;
        }
        const { pruneOlderThan } = await import('../../cms/audit/retention.js');
        const res = await pruneOlderThan(a.log, a.store, Date.now() - days * 86_400_000);
        io.out(`exported ${s.entries} entries to ${out}; pruned ${res.pruned} entry bodies older than ${days} days (leaf hashes kept)`);
        return 0;
      });
    },
  },
  alerts: {
    usage: 'audit alerts (--data-dir DIR | --db URL) [--since ISO-TIME] [--limit N]',
    async run(args, io) {
      const v = parse(args, ['data-dir', 'db', 'since', 'limit', 'key-dir']);
      const since = v.since ? Date.parse(v.since) : undefined;
      if (v.since && !Number.isFinite(since)) throw new UsageError('--since must be an ISO time');
      const limit = v.limit ? Number(v.limit) : 100;
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
      return withAudit(v, io, async (a) => {
        for (const al of await a.alerts.list({ ...(since !== undefined ? { since } : {}), limit })) {
          io.out(`${new Date(al.time).toISOString()} ${al.severity.padEnd(8)} ${al.rule.padEnd(20)} ${al.subject} ${al.message}`);
        }
        return 0;
      });
    },
  },
};

export const command: Command = {
  async run(args, io) {
    const [sub, ...rest] = args;
    if (!sub || sub === '--help' || sub === 'help') {
      for (const s of Object.values(SUB)) io.out(`usage: desfire-cms ${s.usage}`);
      return sub ? 0 : 2;
    }
    const s = SUB[sub];
    if (!s) throw new UsageError(`unknown subcommand '${sub}' (verify, export, checkpoint, prune, alerts)`);
    return s.run(rest, io);
  },
};

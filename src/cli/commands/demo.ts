// `desfire-cms demo [--cards N] [--keep] [--pcsc]`: the whole system in one command on embedded
// defaults — a CMS in-process (SQLite, embedded vault, memory sessions, HTTPS + mTLS), the campus
// layout, N virtual cards issued through a station reader, runtime transactions per tenant,
// cross-tenant refusals, offline readers until their TTL, and a verified audit log. Progress on
// stderr (bars on a terminal, step lines otherwise), a summary table on stdout; exit 1 when any
// step does not end as expected.
import { type CliIO, type Command, UsageError, processIO } from '../io.js';

const USAGE = 'usage: desfire-cms demo [--cards N] [--keep] [--pcsc]';

export function parseDemoArgs(args: string[]): { cards: number; keep: boolean; pcsc: boolean } {
  const o = { cards: 100, keep: false, pcsc: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--keep') o.keep = true;
    else if (a === '--pcsc') o.pcsc = true;
    else if (a === '--cards' || a.startsWith('--cards=')) {
      const v = a.includes('=') ? a.slice(8) : args[++i];
      if (v === undefined || !/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 10_000) throw new UsageError('--cards must be an integer in 1..10000');
      o.cards = Number(v);
    } else throw new UsageError(`unknown option '${a}' (${USAGE})`);
  }
  return o;
}

export const command: Command = {
  async run(args: string[], io: CliIO): Promise<number> {
    if (args.includes('--help') || args.includes('-h')) {
      io.out(USAGE);
      return 0;
    }
    const o = parseDemoArgs(args);
    const { runDemo } = await import('../demo/run.js');
    const { BarProgress, LineProgress } = await import('../demo/progress.js');
    const progress = io === processIO && process.stderr.isTTY ? new BarProgress(process.stderr) : new LineProgress(io);
    const t0 = performance.now();
    const r = await runDemo(o, io, progress);
    const w = Math.max(...r.summary.map(([k]) => k.length));
    io.out('');
    io.out(`desfire-cms demo: ${o.cards} cards in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (const [k, v] of r.summary) io.out(`  ${k.padEnd(w)}  ${v}`);
    const out = r.steps.filter((s) => s.status === 'left out');
    if (out.length) {
      io.out('');
      io.out('left out (not in this build):');
      for (const s of out) io.out(`  - ${s.title}: ${s.detail}`);
    }
    const bad = r.steps.find((s) => s.status === 'failed');
    if (bad) io.err(`desfire-cms demo: FAILED at '${bad.title}': ${bad.detail}`);
    if (r.kept) {
      io.out('');
      io.out(`data kept in ${r.dataDir}${r.ok ? '' : ' (the run failed: kept for inspection)'}; start the CMS on it with:`);
      io.out(`  DESFIRE_CMS_VAULT_PASSPHRASE_FILE=${r.dataDir}/vault-passphrase npx desfire-cms server --data-dir ${r.dataDir}`);
    }
    return r.ok ? 0 : 1;
  },
};

// The whole `desfire-cms demo` story as a figure: cards taken through everything (issue through the
// station, credentials, four runtime transactions, cross-tenant refusals, rotation, audit
// verification) per minute of wall time, on embedded defaults. Target: 100 cards in under a
// minute (issue 9). Also the station's issue+install rate inside the same run.
import type { CliIO } from '../src/cli/io.js';
import type { ProgressSink } from '../src/cli/demo/progress.js';
import { runDemo } from '../src/cli/demo/run.js';
import type { BenchOptions, Figure } from './types.js';

const quiet: ProgressSink = { begin: () => undefined, tick: () => undefined, end: () => undefined, note: () => undefined };
const io: CliIO = { out: () => undefined, err: () => undefined, env: {}, cwd: process.cwd() };

export async function figures(opts: BenchOptions): Promise<Figure[]> {
  const cards = opts.quick ? 25 : 100;
  const t0 = performance.now();
  const r = await runDemo({ cards, keep: false, pcsc: false }, io, quiet);
  const wall = performance.now() - t0;
  const failed = r.steps.find((s) => s.status === 'failed');
  if (failed) throw new Error(`demo step failed: ${failed.title}: ${failed.detail}`);
  const issue = r.steps.find((s) => s.title.startsWith('issue '));
  const out: Figure[] = [
    { name: 'demo.cards_per_min', value: (cards * 60_000) / wall, unit: 'cards/min', target: { op: '>=', value: 100 }, note: `${cards} cards, whole story, wall ${(wall / 1000).toFixed(1)} s` },
  ];
  if (issue) out.push({ name: 'demo.station_issue_install_cards_per_s', value: (cards * 1000) / issue.ms, unit: 'cards/s', note: 'issue + 4 installs per card, 4 cards in flight, real HTTPS+mTLS' });
  return out;
}

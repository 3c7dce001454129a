// `npm run bench [-- --quick] [-- --json FILE]`: runs every benchmark module and prints one table
// (figure, value, unit, baseline, ratio, target, met).
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import type { BenchModule, Figure } from './types.js';

/** Every benchmark module, one line each. */
const MODULES: Record<string, () => Promise<BenchModule>> = {
  transport: () => import('./transport.js'),
  card: () => import('./card.js'),
  core: () => import('./core.js'),
  custody: () => import('./custody.js'),
  reader: () => import('./reader.js'),
  audit: () => import('./audit.js'),
  api: () => import('./api.js'),
  cms: () => import('./cms.js'),
};

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(v >= 10 ? 1 : 3);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  const ji = argv.indexOf('--json');
  const jsonFile = ji >= 0 ? argv[ji + 1] : undefined;
  const only = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--json');
  const all: Figure[] = [];
  for (const [name, load] of Object.entries(MODULES)) {
    if (only.length && !only.includes(name)) continue;
    process.stderr.write(`bench: ${name}...\n`);
    const mod = await load();
    all.push(...(await mod.figures({ quick })));
  }
  const rows = all.map((f) => {
    const ratio = f.baseline ? f.value / f.baseline.value : undefined;
    const met = f.target ? (f.target.op === '>=' ? f.value >= f.target.value : f.value <= f.target.value) : undefined;
    return {
      figure: f.name,
      value: fmt(f.value),
      unit: f.unit,
      baseline: f.baseline ? `${f.baseline.name} ${fmt(f.baseline.value)}` : '',
      ratio: ratio === undefined ? '' : ratio.toFixed(3),
      target: f.target ? `${f.target.op} ${fmt(f.target.value)}` : '',
      met: met === undefined ? '' : met ? 'yes' : 'NO',
    };
  });
  const cols = ['figure', 'value', 'unit', 'baseline', 'ratio', 'target', 'met'] as const;
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(c.length, ...rows.map((r) => r[c].length))]));
  const line = (r: Record<string, string>) => cols.map((c) => r[c]!.padEnd(width[c]!)).join('  ');
  console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`);
  console.log(line(Object.fromEntries(cols.map((c) => [c, c]))));
  for (const r of rows) console.log(line(r));
  if (jsonFile) {
    writeFileSync(jsonFile, JSON.stringify({ machine: { cpus: os.cpus().length, node: process.version }, quick, figures: all }, null, 2) + '\n');
    console.log(`wrote ${jsonFile}`);
  }
}

await main();

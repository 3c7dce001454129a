// `npm run bench [-- --quick] [-- --json FILE] [-- MODULE...]`: runs every benchmark module and
// prints one table (figure, value, unit, baseline, ratio, target, met), preceded by the machine
// line. --json FILE writes the same rows as JSON (stable figure names, raw numbers). A module that
// throws is reported as a row `<module>.FAILED` and makes the run exit 1; the others still run.
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
  demo: () => import('./demo.js'),
  rotation: () => import('./rotation.js'),
};

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(v >= 10 ? 1 : 3);
}

interface Row {
  figure: string;
  value: number;
  unit: string;
  baseline: { name: string; value: number } | null;
  ratio: number | null;
  target: { op: '>=' | '<='; value: number } | null;
  met: boolean | null;
  note: string | null;
  module: string;
}

function toRow(module: string, f: Figure): Row {
  const ratio = f.baseline && Number.isFinite(f.value) && f.baseline.value ? f.value / f.baseline.value : null;
  const met = f.target && Number.isFinite(f.value) ? (f.target.op === '>=' ? f.value >= f.target.value : f.value <= f.target.value) : f.target ? false : null;
  return { figure: f.name, value: f.value, unit: f.unit, baseline: f.baseline ?? null, ratio, target: f.target ?? null, met, note: f.note ?? null, module };
}

function machineLine(): string {
  const cpus = os.cpus();
  return `machine: ${cpus.length} x ${cpus[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}, node ${process.version}, load ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`;
}

function table(rows: Row[]): string[] {
  const cells = rows.map((r) => ({
    figure: r.figure,
    value: fmt(r.value),
    unit: r.unit,
    baseline: r.baseline ? `${r.baseline.name} ${fmt(r.baseline.value)}` : '',
    ratio: r.ratio === null ? '' : r.ratio.toFixed(3),
    target: r.target ? `${r.target.op} ${fmt(r.target.value)}` : '',
    met: r.met === null ? '' : r.met ? 'yes' : 'NO',
  }));
  const cols = ['figure', 'value', 'unit', 'baseline', 'ratio', 'target', 'met'] as const;
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(c.length, ...cells.map((r) => r[c].length))]));
  const line = (r: Record<string, string>) =>
    cols
      .map((c) => r[c]!.padEnd(width[c]!))
      .join('  ')
      .trimEnd();
  return [line(Object.fromEntries(cols.map((c) => [c, c]))), ...cells.map(line)];
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  const ji = argv.indexOf('--json');
  const jsonFile = ji >= 0 ? argv[ji + 1] : undefined;
  if (ji >= 0 && (!jsonFile || jsonFile.startsWith('--'))) {
    process.stderr.write('usage: npm run bench -- [--quick] [--json FILE] [MODULE...]\n');
    return 2;
  }
  const only = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--json');
  const unknown = only.filter((m) => !(m in MODULES));
  if (unknown.length) {
    process.stderr.write(`bench: unknown module(s) ${unknown.join(', ')} (known: ${Object.keys(MODULES).join(', ')})\n`);
    return 2;
  }
  const rows: Row[] = [];
  const failures: { module: string; error: string }[] = [];
  const t0 = performance.now();
  for (const [name, load] of Object.entries(MODULES)) {
    if (only.length && !only.includes(name)) continue;
    const m0 = performance.now();
    process.stderr.write(`bench: ${name}...\n`);
    try {
      const mod = await load();
      for (const f of await mod.figures({ quick })) rows.push(toRow(name, f));
      process.stderr.write(`bench: ${name} done (${((performance.now() - m0) / 1000).toFixed(1)} s)\n`);
    } catch (e) {
      const error = `${(e as { code?: string }).code ? `${(e as { code?: string }).code}: ` : ''}${(e as Error).message ?? String(e)}`;
      failures.push({ module: name, error });
      rows.push({ figure: `${name}.FAILED`, value: NaN, unit: '', baseline: null, ratio: null, target: null, met: false, note: error, module: name });
      process.stderr.write(`bench: ${name} FAILED: ${error}\n`);
    }
  }
  const machine = machineLine();
  console.log(machine);
  for (const l of table(rows)) console.log(l);
  for (const f of failures) console.log(`FAILED ${f.module}: ${f.error}`);
  const seconds = (performance.now() - t0) / 1000;
  console.log(`${rows.length} figures from ${new Set(rows.map((r) => r.module)).size} modules in ${seconds.toFixed(0)} s${quick ? ' (--quick)' : ''}`);
  if (jsonFile) {
    const cpus = os.cpus();
    const doc = {
      machine: { line: machine, cpus: cpus.length, model: cpus[0]?.model ?? null, memGiB: Math.round(os.totalmem() / 2 ** 30), platform: os.platform(), release: os.release(), node: process.version, loadavg: os.loadavg() },
      date: new Date().toISOString(),
      quick,
      seconds,
      figures: rows,
      failures,
    };
    // JSON has no NaN: a figure that could not be measured is null
    writeFileSync(jsonFile, JSON.stringify(doc, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
    console.log(`wrote ${jsonFile}`);
  }
  return failures.length ? 1 : 0;
}

process.exitCode = await main();

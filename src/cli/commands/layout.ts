// desfire-cms layout: lint layout files against the isolation rules, print the published JSON
// Schema, or show the DESFire parameters a layout maps to.
import { type CliIO, type Command, UsageError } from '../io.js';
import { resolve } from 'node:path';
import {
  LayoutError,
  formatPos,
  layoutPlan,
  lintLayout,
  loadLayoutFile,
  publishedSchema,
  type Finding,
} from '../../cms/layout/index.js';
import { toHex } from '../../core/crypto/bytes.js';

const USAGE = [
  'usage: desfire-cms layout lint [--json] FILE...   check isolation rules (exit 0 clean, 1 findings, 2 invalid input)',
  '       desfire-cms layout schema                   print the layout JSON Schema',
  '       desfire-cms layout plan FILE                print the DESFire parameters of a layout (JSON)',
];

interface FileResult {
  file: string;
  status: 'clean' | 'findings' | 'invalid';
  findings: Finding[];
  error?: { code: string; message: string; issues: LayoutError['issues'] };
}

async function lint(args: string[], io: CliIO): Promise<number> {
  let json = false;
  const files: string[] = [];
  for (const a of args) {
    if (a === '--json') json = true;
    else if (a.startsWith('-')) throw new UsageError(`unknown option '${a}'`);
    else files.push(a);
  }
  if (files.length === 0) throw new UsageError('lint needs at least one FILE');
  const results: FileResult[] = [];
  for (const file of files) {
    try {
      const layout = await loadLayoutFile(resolve(io.cwd, file));
      const findings = lintLayout(layout);
      results.push({ file, status: findings.length ? 'findings' : 'clean', findings });
    } catch (e) {
      if (!(e instanceof LayoutError)) throw e;
      results.push({ file, status: 'invalid', findings: [], error: { code: e.code, message: e.message, issues: e.issues } });
    }
  }
  if (json) {
    io.out(JSON.stringify({ files: results }, null, 2));
  } else {
    for (const r of results) {
      if (r.error) {
        for (const i of r.error.issues) io.err(`${formatPos(i, r.file)}: ${r.error.code}: ${i.message}`);
        continue;
      }
      for (const f of r.findings) io.out(`${formatPos(f, r.file)}: ${f.severity} ${f.rule}: ${f.message}`);
      if (r.findings.length === 0) io.out(`${r.file}: clean`);
    }
  }
  if (results.some((r) => r.status === 'invalid')) return 2;
  return results.some((r) => r.status === 'findings') ? 1 : 0;
}

async function plan(args: string[], io: CliIO): Promise<number> {
  if (args.length !== 1 || args[0]?.startsWith('-')) throw new UsageError('plan needs exactly one FILE');
  const layout = await loadLayoutFile(resolve(io.cwd, args[0] as string));
  const p = layoutPlan(layout);
  const hex = (_k: string, v: unknown) => (v instanceof Uint8Array ? toHex(v) : v);
  io.out(JSON.stringify(p, hex, 2));
  return 0;
}

export const command: Command = {
  async run(args, io) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'lint':
        return lint(rest, io);
      case 'schema':
        if (rest.length) throw new UsageError(`schema takes no arguments ('${rest[0]}')`);
        io.out(JSON.stringify(publishedSchema(), null, 2));
        return 0;
      case 'plan':
        return plan(rest, io);
      case undefined:
      case '--help':
      case '-h':
        for (const l of USAGE) io.out(l);
        return sub ? 0 : 2;
      default:
        throw new UsageError(`unknown subcommand '${sub}' (lint, schema, plan)`);
    }
  },
};

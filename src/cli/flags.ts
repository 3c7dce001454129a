// The one `--name value` / `--name=value` / `--flag` parser shared by the CLI commands.
import { UsageError } from './io.js';

export interface Flags {
  values: Record<string, string>;
  bools: Set<string>;
}

/** Parse options; anything not declared, a missing value or a stray argument is a UsageError. */
export function parse(args: string[], valueFlags: readonly string[], boolFlags: readonly string[] = []): Flags {
  const out: Flags = { values: {}, bools: new Set() };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (boolFlags.includes(name)) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      out.bools.add(name);
      continue;
    }
    if (!valueFlags.includes(name)) throw new UsageError(`unknown option --${name}`);
    const v = eq >= 0 ? a.slice(eq + 1) : args[++i];
    if (v === undefined || v === '' || (eq < 0 && v.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
    out.values[name] = v;
  }
  return out;
}

/** The value of a required option. */
export function need(f: Flags, name: string): string {
  const v = f.values[name];
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

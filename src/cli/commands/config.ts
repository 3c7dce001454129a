// `desfire-cms config check [--config FILE] [--data-dir DIR] [--json]`: validate the server
// configuration (file + DESFIRE_CMS_* environment) and the secrets it names; print every problem
// (exit 1) or the effective configuration with secrets redacted (exit 0).
import { stringify } from 'yaml';
import { checkConfig, redactConfig } from '../../cms/config/index.js';
import { type CliIO, type Command, UsageError } from '../io.js';

export interface ParsedFlags {
  values: Record<string, string>;
  bools: Set<string>;
  positional: string[];
}

/** Parse `--name value` / `--name=value` flags; `boolFlags` take no value. Unknown flags → UsageError. */
export function parseFlags(args: string[], valueFlags: readonly string[], boolFlags: readonly string[] = []): ParsedFlags {
  const out: ParsedFlags = { values: {}, bools: new Set(), positional: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      out.positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (boolFlags.includes(name)) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      out.bools.add(name);
      continue;
    }
    if (!valueFlags.includes(name)) throw new UsageError(`unknown option --${name}`);
    const v = eq >= 0 ? a.slice(eq + 1) : args[++i];
    if (v === undefined || v === '') throw new UsageError(`--${name} needs a value`);
    out.values[name] = v;
  }
  return out;
}

const USAGE = 'usage: desfire-cms config check [--config FILE] [--data-dir DIR] [--json]';

export const command: Command = {
  async run(args: string[], io: CliIO): Promise<number> {
    const [sub, ...rest] = args;
    if (sub === '--help' || sub === '-h' || sub === 'help') {
      io.out(USAGE);
      io.out('Reads FILE (YAML or JSON) and DESFIRE_CMS_* variables; see docs/configuration.md.');
      return 0;
    }
    if (sub !== 'check') throw new UsageError(sub ? `unknown subcommand '${sub}' (expected: check)` : 'missing subcommand (expected: check)');
    const f = parseFlags(rest, ['config', 'data-dir'], ['json']);
    if (f.positional.length > 0) throw new UsageError(`unexpected argument '${f.positional[0]}'`);
    const file = f.values.config ?? io.env.DESFIRE_CMS_CONFIG;
    const overrides = f.values['data-dir'] !== undefined ? { dataDir: f.values['data-dir'] } : {};
    const { issues, loaded } = checkConfig({ ...(file ? { file } : {}), env: io.env, cwd: io.cwd, overrides });
    if (!loaded) {
      io.err(`desfire-cms config: ${issues.length} problem${issues.length === 1 ? '' : 's'}`);
      for (const i of issues) io.err(`  ${i.path}: ${i.message}`);
      return 1;
    }
    const shown = redactConfig(loaded.config);
    if (f.bools.has('json')) io.out(JSON.stringify(shown, null, 2));
    else {
      io.out(`# effective configuration${loaded.source ? ` (from ${loaded.source} and the environment)` : ' (defaults and the environment)'}; secrets redacted`);
      io.out(stringify(shown).trimEnd());
    }
    return 0;
  },
};

import { type CliIO, type Command, UsageError, processIO } from './io.js';

/**
 * Every subcommand of the one binary, loaded lazily so that e.g. `desfire-cms crypto` never
 * loads a database driver. One file per command family under ./commands.
 */
const COMMANDS: Record<string, () => Promise<{ command: Command }>> = {
  // one line per command family, e.g.  crypto: () => import('./commands/crypto.js'),
  card: () => import('./commands/card.js'),
  cards: () => import('./commands/cards.js'),
  config: () => import('./commands/config.js'),
  server: () => import('./commands/server.js'),
  crypto: () => import('./commands/crypto.js'),
  layout: () => import('./commands/layout.js'),
  vault: () => import('./commands/vault.js'),
  keys: () => import('./commands/keys.js'),
  jobs: () => import('./commands/jobs.js'),
  audit: () => import('./commands/audit.js'),
  reader: () => import('./commands/reader.js'),
  demo: () => import('./commands/demo.js'),
  consent: () => import('./commands/consent.js'),
  rotation: () => import('./commands/rotation.js'),
  approvals: () => import('./commands/approvals.js'),
  critical: () => import('./commands/approvals-ops.js'),
  compromise: () => import('./commands/compromise.js'),
  backup: () => import('./commands/backup.js'),
  restore: () => import('./commands/restore.js'),
};

function help(io: CliIO, commands: Record<string, Command>): void {
  io.out('usage: desfire-cms <command> [options]');
  io.out('');
  for (const [name, cmd] of Object.entries(commands)) io.out(`  ${name.padEnd(10)} ${cmd.summary}`);
  io.out('');
  io.out('Run `desfire-cms <command> --help` for the options of a command.');
}

export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    const loaded: Record<string, Command> = {};
    for (const [n, load] of Object.entries(COMMANDS)) loaded[n] = (await load()).command;
    help(io, loaded);
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    io.err(`desfire-cms: unknown command '${name}' (try: desfire-cms help)`);
    return 2;
  }
  try {
    const { command } = await load();
    return await command.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`desfire-cms ${name}: ${e.message}`);
      return 2;
    }
    const err = e as { code?: string; message?: string };
    io.err(`desfire-cms ${name}: ${err.code ? `${err.code}: ` : ''}${err.message ?? String(e)}`);
    return 1;
  }
}

import { type CliIO, type Command, UsageError, processIO } from './io.js';

/** A subcommand: its one line for `desfire-cms help`, and how to load it. */
export interface CommandEntry {
  summary: string;
  load: () => Promise<{ command: Command }>;
}

/**
 * Every subcommand of the one binary, one file per command family under ./commands. Only the
 * module of the command being run is imported (e.g. `desfire-cms crypto` never loads a database
 * driver); `help` imports none: the summaries live here, not in the modules.
 */
export const COMMANDS: Record<string, CommandEntry> = {
  card: { summary: 'virtual card images and the vpcd bridge (card create|show|list|serve)', load: () => import('./commands/card.js') },
  cards: { summary: 'cards in the CMS: list, show, lifecycle state (over the API)', load: () => import('./commands/cards.js') },
  config: { summary: 'check the server configuration (config check)', load: () => import('./commands/config.js') },
  server: { summary: 'run the CMS server (HTTPS API); `server token` creates an operator token; `server openapi` writes the API document', load: () => import('./commands/server.js') },
  crypto: { summary: 'CMAC, AN10922 diversification, EV1/EV2 session keys, CRC32/CRC16 (hex in, hex out)', load: () => import('./commands/crypto.js') },
  layout: { summary: 'lint application layouts (isolation rules), print the schema or the DESFire parameters', load: () => import('./commands/layout.js') },
  vault: { summary: 'embedded vault ceremony: init (shares or passphrase), unseal, seal, status', load: () => import('./commands/vault.js') },
  keys: { summary: 'named keys in custody: create, rotate, list, versions, disable, destroy, set-min', load: () => import('./commands/keys.js') },
  jobs: { summary: 'station jobs: list, show, ask a station to reconcile an unknown outcome (over the API)', load: () => import('./commands/jobs.js') },
  audit: { summary: 'tamper-evident audit log: verify, export, checkpoint, prune, alerts', load: () => import('./commands/audit.js') },
  reader: { summary: 'the reader agent: enrol with the CMS, run access/purse/loan transactions on PC/SC or virtual cards, sync the audit baton', load: () => import('./commands/reader.js') },
  demo: { summary: 'run the whole story on embedded defaults: issue cards, transactions, isolation, offline, audit', load: () => import('./commands/demo.js') },
  consent: { summary: "tenant authorisations, the issuer's requests, cardholder consent (over the API)", load: () => import('./commands/consent.js') },
  rotation: { summary: 'key rotation campaigns, KEK rotation and rewrap (API), offline simulation', load: () => import('./commands/rotation.js') },
  approvals: { summary: 'M-of-N approvals of critical operations (list, show, approve, reject, request)', load: () => import('./commands/approvals.js') },
  critical: { summary: 'operations under approval: key export, tenant deletion, vault unseal/seal (API)', load: () => import('./commands/approvals-ops.js') },
  compromise: { summary: 'compromise workflows: reader (revoke, key set, campaigns), card (denylist)', load: () => import('./commands/compromise.js') },
  backup: { summary: 'online backup of the embedded deployment (SQLite + sealed vault + audit key) with SHA-256 manifest', load: () => import('./commands/backup.js') },
  restore: { summary: 'restore a backup archive into a data directory (digests and audit log verified first)', load: () => import('./commands/restore.js') },
};

function help(io: CliIO): void {
  io.out('usage: desfire-cms <command> [options]');
  io.out('');
  for (const [name, cmd] of Object.entries(COMMANDS)) io.out(`  ${name.padEnd(10)} ${cmd.summary}`);
  io.out('');
  io.out('Run `desfire-cms <command> --help` for the options of a command.');
}

export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    help(io);
    return name ? 0 : 2;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) {
    io.err(`desfire-cms: unknown command '${name}' (try: desfire-cms help)`);
    return 2;
  }
  try {
    const { command } = await entry.load();
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

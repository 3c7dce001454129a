// `desfire-cms vault init|unseal|seal|status`: the embedded vault's ceremony.
//
//   vault init   --data-dir DIR (--shares N --threshold M [--shares-dir D] | --passphrase-file F)
//                [--scrypt-n N]   (passphrase also from DESFIRE_VAULT_PASSPHRASE)
//   vault unseal --data-dir DIR [--share-file F]... [--passphrase-file F]   (shares also on stdin)
//   vault seal   --data-dir DIR
//   vault status --data-dir DIR [--json]
//
// A CLI process is short-lived: `unseal` checks that the shares / passphrase open the vault and
// that its key store verifies, then exits (the process's copy of the root key is wiped). The
// running server unseals itself at start-up (and, later, through its API); `keys ...` unseals per
// invocation. `seal` therefore only reports; a server seals on shutdown.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { JsonlAuditSink } from '../../custody/audit-file.js';
import { type Command, type CliIO, UsageError } from '../io.js';
import { type Args, callerContext, int, one, parseArgs, readSecretFile, unsealForInvocation, vaultFile } from './custody-common.js';

const USAGE = [
  'usage: desfire-cms vault init --data-dir DIR (--shares N --threshold M [--shares-dir D] | --passphrase-file F) [--scrypt-n N]',
  '       desfire-cms vault unseal --data-dir DIR [--share-file F]... [--passphrase-file F]   (shares also on stdin)',
  '       desfire-cms vault seal --data-dir DIR',
  '       desfire-cms vault status --data-dir DIR [--json]',
].join('\n');

const COMMON = ['data-dir', 'vault-file', 'actor', 'reason'];

async function open(a: Args, io: CliIO, create: boolean) {
  const file = vaultFile(a, io);
  if (!create && !existsSync(file)) return { file, vault: undefined };
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const { SqliteVaultStore } = await import('../../custody/store-sqlite.js');
  const { EmbeddedVault } = await import('../../custody/embedded.js');
  const store = await SqliteVaultStore.open(file);
  const vault = await EmbeddedVault.open(store, { audit: new JsonlAuditSink(join(dirname(file), 'custody-audit.jsonl')) });
  return { file, vault };
}

async function init(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, [...COMMON, 'shares', 'threshold', 'shares-dir', 'passphrase-file', 'scrypt-n']);
  const shares = int(a, 'shares', 2, 255);
  const threshold = int(a, 'threshold', 2, 255);
  const pf = one(a, 'passphrase-file');
  const scryptN = int(a, 'scrypt-n', 1024, 2 ** 20);
  if ((shares === undefined) !== (threshold === undefined)) throw new UsageError('--shares and --threshold go together');
  if (shares !== undefined && pf) throw new UsageError('choose --shares/--threshold or --passphrase-file, not both');
  if (shares !== undefined && threshold! > shares) throw new UsageError('--threshold must not exceed --shares');
  if (scryptN !== undefined && (scryptN & (scryptN - 1)) !== 0) throw new UsageError('--scrypt-n must be a power of two');
  const envPass = io.env.DESFIRE_VAULT_PASSPHRASE;
  if (shares === undefined && !pf && !envPass) throw new UsageError('give --shares N --threshold M, or --passphrase-file F (or DESFIRE_VAULT_PASSPHRASE)');
  const { file, vault } = await open(a, io, true);
  const ctx = callerContext(a, io, 'vault init');
  try {
    if (vault!.status().initialized) {
      io.err(`desfire-cms vault: ${file} is already initialised`);
      return 1;
    }
    if (shares !== undefined) {
      const out = await vault!.init({ shares, threshold: threshold! }, ctx);
      const dir = one(a, 'shares-dir');
      if (dir) {
        const d = resolve(io.cwd, dir);
        mkdirSync(d, { recursive: true, mode: 0o700 });
        out.shares!.forEach((s, i) => writeFileSync(join(d, `share-${i + 1}.txt`), s + '\n', { mode: 0o600, flag: 'wx' }));
        io.out(`vault initialised: ${file}; ${shares} shares (threshold ${threshold}) written to ${d}/share-N.txt — give each to its custodian`);
      } else {
        io.out(`vault initialised: ${file}; ${shares} shares, any ${threshold} unseal it. Give each share to its custodian:`);
        for (const s of out.shares!) io.out(s);
      }
    } else {
      const pass = pf ? readSecretFile(pf, io, 'passphrase') : new TextEncoder().encode(envPass);
      try {
        await vault!.init({ passphrase: pass, ...(scryptN ? { scrypt: { N: scryptN, r: 8, p: 1 } } : {}) }, ctx);
      } finally {
        pass.fill(0);
      }
      io.out(`vault initialised: ${file}; root key sealed by passphrase (scrypt N=${scryptN ?? 2 ** 17}, r=8, p=1)`);
    }
    return 0;
  } finally {
    await vault!.close();
  }
}

async function unseal(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, [...COMMON, 'share-file', 'passphrase-file']);
  const { file, vault } = await open(a, io, false);
  if (!vault || !vault.status().initialized) throw new UsageError(`no initialised vault at ${file}`);
  try {
    await unsealForInvocation(vault, a, io, callerContext(a, io, 'vault unseal'));
    const st = vault.status();
    io.out(`unseal verified: root key reconstructed, key store authenticated (${st.keys} keys, manifest counter ${st.manifestCounter}).`);
    io.out('This CLI process keeps no unseal state: the server unseals at start-up; `keys` commands unseal per invocation.');
    return 0;
  } finally {
    await vault.close();
  }
}

async function seal(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, COMMON);
  const { file, vault } = await open(a, io, false);
  if (!vault || !vault.status().initialized) throw new UsageError(`no initialised vault at ${file}`);
  await vault.seal(callerContext(a, io, 'vault seal'));
  await vault.close();
  io.out('sealed: no key material is held by this process. A running server seals on shutdown.');
  return 0;
}

async function status(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, COMMON, ['json']);
  const { file, vault } = await open(a, io, false);
  const st = vault ? vault.status() : { initialized: false, sealed: true };
  await vault?.close();
  if (a.bools.has('json')) io.out(JSON.stringify({ file, ...st }));
  else {
    io.out(`vault file:   ${file}`);
    io.out(`initialised:  ${st.initialized ? 'yes' : 'no'}`);
    if (st.initialized) {
      io.out(`vault id:     ${st.vaultId}`);
      io.out(`sealed by:    ${st.sealType === 'shamir' ? `Shamir shares, ${st.threshold} of ${st.shares}` : 'passphrase (scrypt)'}`);
      io.out(`state:        sealed (the CLI holds no unseal state)`);
    }
  }
  return st.initialized ? 0 : 1;
}

const SUB: Record<string, (args: string[], io: CliIO) => Promise<number>> = { init, unseal, seal, status };

export const command: Command = {
  async run(args, io) {
    const [sub, ...rest] = args;
    if (!sub || sub === '--help' || sub === 'help') {
      io.out(USAGE);
      return sub ? 0 : 2;
    }
    const fn = SUB[sub];
    if (!fn) throw new UsageError(`unknown subcommand '${sub}' (init, unseal, seal, status)`);
    return fn(rest, io);
  },
};

// Shared by `desfire-cms vault` and `desfire-cms keys`: argument parsing with repeatable flags,
// reading secrets (files, stdin, environment — never argv) and opening the embedded vault.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { EmbeddedVault } from '../../custody/embedded.js';
import type { CallerContext } from '../../custody/types.js';
import { type CliIO, UsageError } from '../io.js';

export interface Args {
  values: Map<string, string[]>;
  bools: Set<string>;
  positional: string[];
}

/** `--name value` / `--name=value`; flags in `repeatable` may be given several times. */
export function parseArgs(args: string[], valueFlags: readonly string[], boolFlags: readonly string[] = []): Args {
  const out: Args = { values: new Map(), bools: new Set(), positional: [] };
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
    if (v === undefined || v === '' || (eq < 0 && v.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
    out.values.set(name, [...(out.values.get(name) ?? []), v]);
  }
  return out;
}

export function one(a: Args, name: string): string | undefined {
  const v = a.values.get(name);
  if (v && v.length > 1) throw new UsageError(`--${name} given more than once`);
  return v?.[0];
}

export function int(a: Args, name: string, min: number, max: number): number | undefined {
  const v = one(a, name);
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} must be an integer ${min}..${max}`);
  return Number(v);
}

export function vaultFile(a: Args, io: CliIO): string {
  const file = one(a, 'vault-file');
  if (file) return resolve(io.cwd, file);
  const dir = one(a, 'data-dir') ?? io.env.DESFIRE_CMS_DATA_DIR;
  if (!dir) throw new UsageError('--data-dir is required (or --vault-file, or DESFIRE_CMS_DATA_DIR)');
  return join(resolve(io.cwd, dir), 'vault.sqlite');
}

export function readSecretFile(path: string, io: CliIO, what: string): Uint8Array {
  try {
    const b = readFileSync(resolve(io.cwd, path));
    // one trailing newline is not part of the secret
    let end = b.length;
    if (end && b[end - 1] === 0x0a) end--;
    if (end && b[end - 1] === 0x0d) end--;
    const out = new Uint8Array(b.subarray(0, end));
    b.fill(0);
    return out;
  } catch (e) {
    throw new UsageError(`cannot read ${what} file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** Text from stdin (tests may provide `io.stdin`). */
export async function readStdin(io: CliIO): Promise<string> {
  const custom = (io as CliIO & { stdin?: () => Promise<string> }).stdin;
  if (custom) return custom();
  if (process.stdin.isTTY) throw new UsageError('no shares given: pass --share-file FILE (repeatable) or pipe the shares on stdin, one per line');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function callerContext(a: Args, io: CliIO, purpose: string): CallerContext {
  const actor = one(a, 'actor') ?? io.env.DESFIRE_CMS_ACTOR ?? io.env.USER ?? 'cli';
  const reason = one(a, 'reason');
  return { actor: `cli:${actor}`, purpose: reason ? `${purpose}: ${reason}` : purpose, correlationId: `cli-${Date.now().toString(36)}-${process.pid}` };
}

/**
 * Unseal for this one invocation: DESFIRE_VAULT_PASSPHRASE, --passphrase-file, or --share-file
 * (repeatable) / stdin for a Shamir vault.
 */
export async function unsealForInvocation(vault: EmbeddedVault, a: Args, io: CliIO, ctx: CallerContext): Promise<void> {
  const st = vault.status();
  if (!st.initialized) throw new UsageError('the vault is not initialised (run `desfire-cms vault init`)');
  if (!st.sealed) return;
  if (st.sealType === 'passphrase') {
    const pf = one(a, 'passphrase-file');
    const env = io.env.DESFIRE_VAULT_PASSPHRASE;
    if (!pf && !env) throw new UsageError('give the passphrase with --passphrase-file FILE or DESFIRE_VAULT_PASSPHRASE');
    const pass = pf ? readSecretFile(pf, io, 'passphrase') : new TextEncoder().encode(env);
    try {
      await vault.unsealWithPassphrase(pass, ctx);
    } finally {
      pass.fill(0);
    }
    return;
  }
  const files = a.values.get('share-file') ?? [];
  const texts = files.length ? files.map((f) => new TextDecoder().decode(readSecretFile(f, io, 'share'))) : (await readStdin(io)).split(/\r?\n/);
  for (const t of texts.map((x) => x.trim()).filter(Boolean)) {
    if (!vault.status().sealed) break;
    await vault.submitShare(t, ctx);
  }
  const after = vault.status();
  if (after.sealed) throw new UsageError(`not enough shares: ${after.progress ?? 0} of ${after.threshold} given`);
}

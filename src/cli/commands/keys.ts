// `desfire-cms keys create|rotate|list|versions|disable|destroy|set-min`: named keys in custody.
//
// Backend: embedded (default; --data-dir DIR, unsealed for this one invocation from
// DESFIRE_VAULT_PASSPHRASE, --passphrase-file F, or --share-file F... / stdin for a Shamir vault),
// or --backend pkcs11 (--module LIB --token-label L, PIN from --pin-file F or DESFIRE_CMS_PKCS11_PIN),
// or --backend vault-transit (VAULT_ADDR + VAULT_TOKEN, or VAULT_ROLE_ID + VAULT_SECRET_ID; --mount M).
// Every operation is audited (embedded/CLI: DIR/custody-audit.jsonl, fsync'ed).
import { dirname, join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { JsonlAuditSink } from '../../custody/audit-file.js';
import type { KeyCustody, KeyInfo, KeySpec } from '../../custody/types.js';
import { type Command, type CliIO, UsageError } from '../io.js';
import { type Args, callerContext, int, one, parseArgs, readSecretFile, unsealForInvocation, vaultFile } from './custody-common.js';

const USAGE = [
  'usage: desfire-cms keys create NAME --purpose wrap|diversify [--alg aes128|2k3des|3k3des]',
  '       desfire-cms keys rotate NAME',
  '       desfire-cms keys list [--json]',
  '       desfire-cms keys versions NAME [--json]',
  '       desfire-cms keys disable NAME --version N',
  '       desfire-cms keys destroy NAME --version N',
  '       desfire-cms keys set-min NAME [--min-decryption N] [--min-encryption N]',
  'backend options: --data-dir DIR (embedded; secrets: DESFIRE_VAULT_PASSPHRASE | --passphrase-file F | --share-file F...)',
  '                 --backend pkcs11 --module LIB --token-label L [--pin-file F]   (or DESFIRE_CMS_PKCS11_PIN)',
  '                 --backend vault-transit [--mount transit]   (VAULT_ADDR + VAULT_TOKEN or VAULT_ROLE_ID + VAULT_SECRET_ID)',
  'common: --actor NAME --reason TEXT --json',
].join('\n');

const FLAGS = ['data-dir', 'vault-file', 'actor', 'reason', 'passphrase-file', 'share-file', 'backend', 'module', 'token-label', 'pin-file', 'mount', 'purpose', 'alg', 'version', 'min-decryption', 'min-encryption'];

async function openCustody(a: Args, io: CliIO, purpose: string): Promise<KeyCustody> {
  const backend = one(a, 'backend') ?? 'embedded';
  const ctx = callerContext(a, io, purpose);
  if (backend === 'embedded') {
    const file = vaultFile(a, io);
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const { SqliteVaultStore } = await import('../../custody/store-sqlite.js');
    const { EmbeddedVault } = await import('../../custody/embedded.js');
    const audit = new JsonlAuditSink(join(dirname(file), 'custody-audit.jsonl'));
    const vault = await EmbeddedVault.open(await SqliteVaultStore.open(file), { audit });
    try {
      await unsealForInvocation(vault, a, io, ctx);
    } catch (e) {
      await vault.close();
      throw e;
    }
    return vault.custody(audit);
  }
  const auditFile = join(one(a, 'data-dir') ?? io.cwd, 'custody-audit.jsonl');
  if (backend === 'pkcs11') {
    const library = one(a, 'module');
    const tokenLabel = one(a, 'token-label');
    if (!library || !tokenLabel) throw new UsageError('--backend pkcs11 needs --module LIB and --token-label L');
    const pf = one(a, 'pin-file');
    const pin = pf ? new TextDecoder().decode(readSecretFile(pf, io, 'PIN')) : io.env.DESFIRE_CMS_PKCS11_PIN;
    if (!pin) throw new UsageError('give the token PIN with --pin-file F or DESFIRE_CMS_PKCS11_PIN');
    const { Pkcs11Engine } = await import('../../custody/pkcs11.js');
    return (await Pkcs11Engine.open({ library, tokenLabel, pin })).custody(new JsonlAuditSink(auditFile));
  }
  if (backend === 'vault-transit') {
    const { VaultTransitEngine } = await import('../../custody/vault-transit.js');
    const addr = io.env.VAULT_ADDR;
    if (!addr) throw new UsageError('--backend vault-transit needs VAULT_ADDR');
    const auth = io.env.VAULT_TOKEN
      ? { token: io.env.VAULT_TOKEN }
      : io.env.VAULT_ROLE_ID && io.env.VAULT_SECRET_ID
        ? { roleId: io.env.VAULT_ROLE_ID, secretId: io.env.VAULT_SECRET_ID }
        : undefined;
    if (!auth) throw new UsageError('give VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID');
    const file = vaultFile(a, io).replace(/vault\.sqlite$/, 'transit-masters.sqlite');
    const { SqliteVaultStore } = await import('../../custody/store-sqlite.js');
    const engine = await VaultTransitEngine.open({ addr, auth, mount: one(a, 'mount') ?? 'transit', ...(io.env.VAULT_NAMESPACE ? { namespace: io.env.VAULT_NAMESPACE } : {}), masterStore: await SqliteVaultStore.open(file) });
    return engine.custody(new JsonlAuditSink(auditFile));
  }
  throw new UsageError(`unknown --backend '${backend}' (embedded, pkcs11, vault-transit)`);
}

function printKey(io: CliIO, k: KeyInfo): void {
  io.out(`${k.name}  purpose=${k.purpose} alg=${k.alg} latest=v${k.latestVersion} min-decryption=${k.minDecryptionVersion} min-encryption=${k.minEncryptionVersion}`);
}

function nameArg(a: Args, sub: string): string {
  const [name, ...extra] = a.positional;
  if (!name) throw new UsageError(`keys ${sub} needs a key NAME`);
  if (extra.length) throw new UsageError(`unexpected argument '${extra[0]}'`);
  return name;
}

export const command: Command = {
  async run(args, io) {
    const [sub, ...rest] = args;
    if (!sub || sub === '--help' || sub === 'help') {
      io.out(USAGE);
      return sub ? 0 : 2;
    }
    const a = parseArgs(rest, FLAGS, ['json']);
    const json = a.bools.has('json');
    // validate everything before unsealing
    let op: (c: KeyCustody) => Promise<void>;
    const ctx = callerContext(a, io, `keys ${sub}`);
    switch (sub) {
      case 'create': {
        const name = nameArg(a, sub);
        const purpose = one(a, 'purpose');
        const alg = one(a, 'alg');
        let spec: KeySpec;
        if (purpose === 'wrap') {
          if (alg && alg !== 'aes256') throw new UsageError('--alg of a wrap key is aes256');
          spec = { purpose: 'wrap' };
        } else if (purpose === 'diversify') {
          if (alg !== undefined && !['aes128', '2k3des', '3k3des'].includes(alg)) throw new UsageError('--alg must be aes128, 2k3des or 3k3des');
          spec = { purpose: 'diversify', alg: (alg ?? 'aes128') as 'aes128' };
        } else throw new UsageError('--purpose must be wrap or diversify');
        op = async (c) => {
          const k = await c.createKey(ctx, name, spec);
          if (json) io.out(JSON.stringify(k));
          else printKey(io, k);
        };
        break;
      }
      case 'rotate': {
        const name = nameArg(a, sub);
        op = async (c) => {
          const k = await c.rotateKey(ctx, name);
          if (json) io.out(JSON.stringify(k));
          else printKey(io, k);
        };
        break;
      }
      case 'list': {
        if (a.positional.length) throw new UsageError(`unexpected argument '${a.positional[0]}'`);
        op = async (c) => {
          const ks = await c.listKeys(ctx);
          if (json) io.out(JSON.stringify(ks));
          else if (!ks.length) io.out('(no keys)');
          else ks.forEach((k) => printKey(io, k));
        };
        break;
      }
      case 'versions': {
        const name = nameArg(a, sub);
        op = async (c) => {
          const vs = await c.listVersions(ctx, name);
          if (json) io.out(JSON.stringify(vs));
          else vs.forEach((v) => io.out(`v${v.version}  ${v.state.padEnd(9)} ${v.createdAt}`));
        };
        break;
      }
      case 'disable':
      case 'destroy': {
        const name = nameArg(a, sub);
        const version = int(a, 'version', 1, 1_000_000);
        if (version === undefined) throw new UsageError(`keys ${sub} needs --version N`);
        op = async (c) => {
          const k = sub === 'disable' ? await c.disableVersion(ctx, name, version) : await c.destroyVersion(ctx, name, version);
          if (json) io.out(JSON.stringify(k));
          else io.out(`${name} v${version}: ${k.versions.find((v) => v.version === version)?.state ?? 'destroyed'}`);
        };
        break;
      }
      case 'set-min': {
        const name = nameArg(a, sub);
        const dec = int(a, 'min-decryption', 1, 1_000_000);
        const enc = int(a, 'min-encryption', 0, 1_000_000);
        if (dec === undefined && enc === undefined) throw new UsageError('give --min-decryption N and/or --min-encryption N');
        op = async (c) => {
          const k = await c.setMinVersions(ctx, name, { ...(dec !== undefined ? { minDecryptionVersion: dec } : {}), ...(enc !== undefined ? { minEncryptionVersion: enc } : {}) });
          if (json) io.out(JSON.stringify(k));
          else printKey(io, k);
        };
        break;
      }
      default:
        throw new UsageError(`unknown subcommand '${sub}' (create, rotate, list, versions, disable, destroy, set-min)`);
    }
    const c = await openCustody(a, io, `keys ${sub}`);
    try {
      await op(c);
      return 0;
    } finally {
      await c.close();
    }
  },
};

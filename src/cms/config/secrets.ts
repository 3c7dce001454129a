// Secrets named by the configuration, read at startup from files or environment variables (never
// from argv, never stored in the config object). Returned as Buffers so the caller can wipe them.
import { readFileSync, statSync } from 'node:fs';
import type { ConfigIssue } from './errors.js';
import { ConfigError } from './errors.js';
import type { ServerConfig } from './schema.js';

/** The embedded vault refuses shorter passphrases. */
export const MIN_PASSPHRASE_BYTES = 12;

export interface ServerSecrets {
  /** Embedded vault: the passphrase, or the share files' contents (M of N). */
  vaultPassphrase?: Buffer;
  vaultShares?: Buffer[];
  pkcs11Pin?: Buffer;
  vaultToken?: Buffer;
  vaultSecretId?: Buffer;
  postgresPassword?: Buffer;
  redisPassword?: Buffer;
}

interface Source {
  file?: string | undefined;
  env?: string | undefined;
}

function readSecret(what: string, path: string, src: Source, env: NodeJS.ProcessEnv, issues: ConfigIssue[], required: boolean): Buffer | undefined {
  if (src.file) {
    try {
      const st = statSync(src.file);
      if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOTFILE' });
      // Trailing newline of a file written by `echo` is not part of the secret.
      const b = readFileSync(src.file);
      let end = b.length;
      while (end > 0 && (b[end - 1] === 0x0a || b[end - 1] === 0x0d)) end--;
      const out = Buffer.from(b.subarray(0, end));
      b.fill(0);
      if (out.length === 0) {
        issues.push({ path, message: `${what} file ${src.file} is empty` });
        return undefined;
      }
      return out;
    } catch (e) {
      issues.push({ path, message: `${what} file ${src.file}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}` });
      return undefined;
    }
  }
  const v = src.env ? env[src.env] : undefined;
  if (v !== undefined && v.length > 0) return Buffer.from(v, 'utf8');
  if (required) issues.push({ path, message: `${what} missing: set ${src.env ?? 'the environment variable'} or a file` });
  return undefined;
}

/** Read every secret the config needs; throws ConfigError naming each missing one. */
export function resolveSecrets(c: ServerConfig, env: NodeJS.ProcessEnv = process.env): ServerSecrets {
  const issues: ConfigIssue[] = [];
  const s: ServerSecrets = {};
  const cu = c.custody;
  if (cu.kind === 'embedded') {
    if (cu.unseal === 'api') {
      /* started sealed: the vault is unsealed through the API, no secret is read here */
    } else if (cu.shares) {
      s.vaultShares = [];
      cu.shares.files.forEach((f, i) => {
        const b = readSecret('vault share', `/custody/shares/files/${i}`, { file: f }, env, issues, false);
        if (b) s.vaultShares!.push(b);
      });
      if (s.vaultShares.length < cu.shares.threshold) {
        issues.push({ path: '/custody/shares', message: `only ${s.vaultShares.length} readable share files, ${cu.shares.threshold} needed` });
      }
    } else {
      s.vaultPassphrase = readSecret('vault passphrase', '/custody/passphraseFile', { file: cu.passphraseFile, env: cu.passphraseEnv }, env, issues, true);
      if (s.vaultPassphrase && s.vaultPassphrase.length < MIN_PASSPHRASE_BYTES) {
        issues.push({ path: '/custody/passphraseFile', message: `vault passphrase too short (at least ${MIN_PASSPHRASE_BYTES} bytes)` });
      }
    }
  } else if (cu.kind === 'pkcs11') {
    s.pkcs11Pin = readSecret('PKCS#11 PIN', '/custody/pinFile', { file: cu.pinFile, env: cu.pinEnv }, env, issues, true);
  } else {
    if (cu.appRole) {
      s.vaultSecretId = readSecret('AppRole secret id', '/custody/appRole/secretIdFile', { file: cu.appRole.secretIdFile, env: cu.appRole.secretIdEnv }, env, issues, true);
    } else {
      s.vaultToken = readSecret('Vault token', '/custody/tokenFile', { file: cu.tokenFile, env: cu.tokenEnv }, env, issues, true);
    }
  }
  if (c.storage.kind === 'postgres' && (c.storage.passwordFile || c.storage.passwordEnv)) {
    s.postgresPassword = readSecret('PostgreSQL password', '/storage/passwordFile', { file: c.storage.passwordFile, env: c.storage.passwordEnv }, env, issues, true);
  }
  if (c.sessions.kind === 'redis' && (c.sessions.passwordFile || c.sessions.passwordEnv)) {
    s.redisPassword = readSecret('Redis password', '/sessions/passwordFile', { file: c.sessions.passwordFile, env: c.sessions.passwordEnv }, env, issues, true);
  }
  if (issues.length > 0) {
    wipeSecrets(s);
    throw new ConfigError(issues);
  }
  return s;
}

export function wipeSecrets(s: ServerSecrets): void {
  for (const v of Object.values(s)) {
    if (Buffer.isBuffer(v)) v.fill(0);
    else if (Array.isArray(v)) for (const b of v) (b as Buffer).fill(0);
  }
}

/** Only the PostgreSQL password (for short-lived CLI commands that open the database alone). */
export function resolveStoragePassword(c: ServerConfig, env: NodeJS.ProcessEnv = process.env): Buffer | undefined {
  if (c.storage.kind !== 'postgres' || (!c.storage.passwordFile && !c.storage.passwordEnv)) return undefined;
  const issues: ConfigIssue[] = [];
  const b = readSecret('PostgreSQL password', '/storage/passwordFile', { file: c.storage.passwordFile, env: c.storage.passwordEnv }, env, issues, true);
  if (issues.length > 0) throw new ConfigError(issues);
  return b;
}

/** A postgres:// URL with the password (from a file or the environment) filled in. */
export function postgresUrl(url: string, password: Buffer | undefined): string {
  if (!password) return url;
  const u = new URL(url);
  u.password = encodeURIComponent(password.toString('utf8'));
  return u.toString();
}

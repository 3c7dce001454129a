// Environment variables: every setting of the config file can be given (or overridden) by a
// DESFIRE_CMS_* variable. The table below is the single source of truth (docs/configuration.md
// lists it). Secrets are separate (SECRET_ENV): they are read at startup, never stored in the config.

export type EnvKind = 'string' | 'int' | 'bool' | 'list';

export interface EnvBinding {
  /** JSON-pointer-like path in the config, as segments. */
  path: readonly string[];
  kind: EnvKind;
  doc: string;
}

export const ENV_BINDINGS: Readonly<Record<string, EnvBinding>> = {
  DESFIRE_CMS_DATA_DIR: { path: ['dataDir'], kind: 'string', doc: 'data directory (default ./data)' },
  DESFIRE_CMS_STORAGE: { path: ['storage', 'kind'], kind: 'string', doc: 'sqlite | postgres' },
  DESFIRE_CMS_SQLITE_FILE: { path: ['storage', 'file'], kind: 'string', doc: 'SQLite file in the data dir' },
  DESFIRE_CMS_POSTGRES_URL: { path: ['storage', 'url'], kind: 'string', doc: 'postgres://user@host:5432/db' },
  DESFIRE_CMS_POSTGRES_PASSWORD_FILE: { path: ['storage', 'passwordFile'], kind: 'string', doc: 'file holding the PostgreSQL password' },
  DESFIRE_CMS_POSTGRES_SCHEMA: { path: ['storage', 'schema'], kind: 'string', doc: 'PostgreSQL schema (search_path)' },
  DESFIRE_CMS_POSTGRES_POOL_SIZE: { path: ['storage', 'poolSize'], kind: 'int', doc: 'connection pool size' },
  DESFIRE_CMS_SESSIONS: { path: ['sessions', 'kind'], kind: 'string', doc: 'memory | redis' },
  DESFIRE_CMS_REDIS_URL: { path: ['sessions', 'url'], kind: 'string', doc: 'redis://host:6379/0' },
  DESFIRE_CMS_REDIS_PASSWORD_FILE: { path: ['sessions', 'passwordFile'], kind: 'string', doc: 'file holding the Redis password' },
  DESFIRE_CMS_REDIS_KEY_PREFIX: { path: ['sessions', 'keyPrefix'], kind: 'string', doc: 'key prefix in Redis' },
  DESFIRE_CMS_CUSTODY: { path: ['custody', 'kind'], kind: 'string', doc: 'embedded | pkcs11 | vault-transit' },
  DESFIRE_CMS_VAULT_FILE: { path: ['custody', 'file'], kind: 'string', doc: 'embedded vault file in the data dir' },
  DESFIRE_CMS_VAULT_PASSPHRASE_FILE: { path: ['custody', 'passphraseFile'], kind: 'string', doc: 'file holding the embedded vault passphrase' },
  DESFIRE_CMS_PKCS11_MODULE: { path: ['custody', 'module'], kind: 'string', doc: 'PKCS#11 module (.so)' },
  DESFIRE_CMS_PKCS11_SLOT: { path: ['custody', 'slot'], kind: 'int', doc: 'PKCS#11 slot id' },
  DESFIRE_CMS_PKCS11_TOKEN_LABEL: { path: ['custody', 'tokenLabel'], kind: 'string', doc: 'PKCS#11 token label' },
  DESFIRE_CMS_PKCS11_PIN_FILE: { path: ['custody', 'pinFile'], kind: 'string', doc: 'file holding the PKCS#11 user PIN' },
  DESFIRE_CMS_VAULT_ADDR: { path: ['custody', 'addr'], kind: 'string', doc: 'HashiCorp Vault address' },
  DESFIRE_CMS_VAULT_MOUNT: { path: ['custody', 'mount'], kind: 'string', doc: 'Transit mount (default transit)' },
  DESFIRE_CMS_VAULT_NAMESPACE: { path: ['custody', 'namespace'], kind: 'string', doc: 'Vault namespace' },
  DESFIRE_CMS_VAULT_CA_FILE: { path: ['custody', 'caFile'], kind: 'string', doc: 'CA bundle for Vault TLS' },
  DESFIRE_CMS_VAULT_TOKEN_FILE: { path: ['custody', 'tokenFile'], kind: 'string', doc: 'file holding a Vault token' },
  DESFIRE_CMS_VAULT_ROLE_ID: { path: ['custody', 'appRole', 'roleId'], kind: 'string', doc: 'AppRole role id' },
  DESFIRE_CMS_VAULT_SECRET_ID_FILE: { path: ['custody', 'appRole', 'secretIdFile'], kind: 'string', doc: 'file holding the AppRole secret id' },
  DESFIRE_CMS_HTTP_HOST: { path: ['http', 'host'], kind: 'string', doc: 'listen address' },
  DESFIRE_CMS_HTTP_PORT: { path: ['http', 'port'], kind: 'int', doc: 'listen port (0 = ephemeral)' },
  DESFIRE_CMS_HTTP_BODY_LIMIT: { path: ['http', 'bodyLimitBytes'], kind: 'int', doc: 'maximum request body' },
  DESFIRE_CMS_TRUST_PROXY: { path: ['http', 'trustProxy'], kind: 'bool', doc: 'trust X-Forwarded-* headers' },
  DESFIRE_CMS_TLS_MODE: { path: ['http', 'tls', 'mode'], kind: 'string', doc: 'auto | files | off' },
  DESFIRE_CMS_TLS_CERT_FILE: { path: ['http', 'tls', 'certFile'], kind: 'string', doc: 'server certificate (PEM)' },
  DESFIRE_CMS_TLS_KEY_FILE: { path: ['http', 'tls', 'keyFile'], kind: 'string', doc: 'server private key (PEM)' },
  DESFIRE_CMS_TLS_CA_FILE: { path: ['http', 'tls', 'caFile'], kind: 'string', doc: 'CA for client (reader) certificates' },
  DESFIRE_CMS_TLS_ALT_NAMES: { path: ['http', 'tls', 'altNames'], kind: 'list', doc: 'comma-separated extra names for the auto certificate' },
  DESFIRE_CMS_LIMIT_OPERATOR_REQUESTS: { path: ['limits', 'operatorRequests'], kind: 'int', doc: 'requests per window per operator token' },
  DESFIRE_CMS_LIMIT_READER_REQUESTS: { path: ['limits', 'readerRequests'], kind: 'int', doc: 'requests per window per reader' },
  DESFIRE_CMS_LIMIT_ANONYMOUS_REQUESTS: { path: ['limits', 'anonymousRequests'], kind: 'int', doc: 'unauthenticated requests per window per address' },
  DESFIRE_CMS_LIMIT_WINDOW_MS: { path: ['limits', 'windowMs'], kind: 'int', doc: 'rate-limit window' },
  DESFIRE_CMS_SHUTDOWN_GRACE_MS: { path: ['limits', 'shutdownGraceMs'], kind: 'int', doc: 'drain time on SIGTERM' },
  DESFIRE_CMS_AUDIT_CHECKPOINT_SECONDS: { path: ['audit', 'checkpointIntervalSeconds'], kind: 'int', doc: 'signed checkpoint interval' },
  DESFIRE_CMS_METRICS_ENABLED: { path: ['metrics', 'enabled'], kind: 'bool', doc: 'start the separate metrics listener (GET /metrics, no token)' },
  DESFIRE_CMS_METRICS_HOST: { path: ['metrics', 'host'], kind: 'string', doc: 'metrics listener address (default 127.0.0.1)' },
  DESFIRE_CMS_METRICS_PORT: { path: ['metrics', 'port'], kind: 'int', doc: 'metrics listener port (default 9464; 0 = ephemeral)' },
  DESFIRE_CMS_LOG_LEVEL: { path: ['logging', 'level'], kind: 'string', doc: 'fatal | error | warn | info | debug | trace | silent' },
};

/**
 * Environment variables that hold secrets themselves (default names; the config can name others
 * with passphraseEnv / pinEnv / tokenEnv / secretIdEnv / passwordEnv). Read only at startup.
 */
export const SECRET_ENV = {
  DESFIRE_VAULT_PASSPHRASE: 'embedded vault passphrase',
  DESFIRE_CMS_PKCS11_PIN: 'PKCS#11 user PIN',
  DESFIRE_CMS_VAULT_TOKEN: 'HashiCorp Vault token',
  DESFIRE_CMS_VAULT_SECRET_ID: 'AppRole secret id',
} as const;

/** Parse one variable; returns the value or a reason. */
export function parseEnvValue(kind: EnvKind, raw: string): { value: unknown } | { error: string } {
  switch (kind) {
    case 'string':
      return raw.length > 0 ? { value: raw } : { error: 'is empty' };
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) return { error: `expected an integer, got '${raw.slice(0, 40)}'` };
      return { value: Number.parseInt(raw.trim(), 10) };
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return { value: true };
      if (['0', 'false', 'no', 'off'].includes(v)) return { value: false };
      return { error: `expected true or false, got '${raw.slice(0, 40)}'` };
    }
    case 'list':
      return { value: raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0) };
  }
}

// The one configuration of the CMS server, as TypeBox schemas: the schema drives validation,
// the TypeScript types (Static<>) and the documentation (docs/configuration.md).
//
// Secrets (vault passphrase, PKCS#11 PIN, Vault token, AppRole secret id, database passwords)
// never appear in this structure: it only names the FILE or the ENVIRONMENT VARIABLE that holds
// them (see secrets.ts). A config file that tries to carry a secret inline is refused.
import { type Static, type TSchema, Type } from '@sinclair/typebox';

const EnvName = Type.String({ pattern: '^[A-Z_][A-Z0-9_]*$', description: 'name of an environment variable' });
const FilePath = Type.String({ minLength: 1, description: 'path of a file (relative to the config file)' });

export const SqliteStorage = Type.Object(
  {
    kind: Type.Literal('sqlite'),
    file: Type.String({ minLength: 1, default: 'cms.sqlite', description: 'database file, relative to dataDir' }),
  },
  { additionalProperties: false },
);
export const PostgresStorage = Type.Object(
  {
    kind: Type.Literal('postgres'),
    url: Type.String({ pattern: '^postgres(ql)?://', description: 'postgres://user@host:port/db (password: passwordFile/passwordEnv)' }),
    passwordFile: Type.Optional(FilePath),
    passwordEnv: Type.Optional(EnvName),
    poolSize: Type.Integer({ minimum: 1, maximum: 200, default: 10 }),
    /** Schema (created if missing) used as the search_path of every connection. */
    schema: Type.Optional(Type.String({ pattern: '^[a-z_][a-z0-9_]{0,62}$' })),
  },
  { additionalProperties: false },
);

export const MemorySessions = Type.Object({ kind: Type.Literal('memory') }, { additionalProperties: false });
export const RedisSessions = Type.Object(
  {
    kind: Type.Literal('redis'),
    url: Type.String({ pattern: '^rediss?://', description: 'redis://host:port/db (password: passwordFile/passwordEnv)' }),
    passwordFile: Type.Optional(FilePath),
    passwordEnv: Type.Optional(EnvName),
    keyPrefix: Type.String({ minLength: 1, default: 'desfire-cms:' }),
  },
  { additionalProperties: false },
);

export const EmbeddedCustody = Type.Object(
  {
    kind: Type.Literal('embedded'),
    /** Vault file, relative to dataDir. */
    file: Type.String({ minLength: 1, default: 'vault.sqlite' }),
    passphraseFile: Type.Optional(FilePath),
    passphraseEnv: Type.String({ ...EnvName, default: 'DESFIRE_VAULT_PASSPHRASE' }),
    /**
     * secrets (default): unseal at start from the passphrase or share files; api: start SEALED, read
     * no vault secret, and wait for an unseal through the API (passphrase + approval, or one share
     * per operator; needs http.tls.mode files or off) — src/cms/approvals/sealed-start.ts.
     */
    unseal: Type.Union([Type.Literal('secrets'), Type.Literal('api')], { default: 'secrets' }),
    /** Shamir shares instead of a passphrase: M of the listed files. */
    shares: Type.Optional(
      Type.Object(
        {
          threshold: Type.Integer({ minimum: 2, maximum: 255 }),
          files: Type.Array(FilePath, { minItems: 2, maxItems: 255 }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export const Pkcs11Custody = Type.Object(
  {
    kind: Type.Literal('pkcs11'),
    module: FilePath,
    slot: Type.Optional(Type.Integer({ minimum: 0 })),
    tokenLabel: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    pinFile: Type.Optional(FilePath),
    pinEnv: Type.String({ ...EnvName, default: 'DESFIRE_CMS_PKCS11_PIN' }),
  },
  { additionalProperties: false },
);
export const VaultTransitCustody = Type.Object(
  {
    kind: Type.Literal('vault-transit'),
    addr: Type.String({ pattern: '^https?://', description: 'Vault address, e.g. https://vault:8200' }),
    mount: Type.String({ minLength: 1, default: 'transit' }),
    namespace: Type.Optional(Type.String({ minLength: 1 })),
    caFile: Type.Optional(FilePath),
    tokenFile: Type.Optional(FilePath),
    tokenEnv: Type.String({ ...EnvName, default: 'DESFIRE_CMS_VAULT_TOKEN' }),
    appRole: Type.Optional(
      Type.Object(
        {
          roleId: Type.String({ minLength: 1 }),
          secretIdFile: Type.Optional(FilePath),
          secretIdEnv: Type.String({ ...EnvName, default: 'DESFIRE_CMS_VAULT_SECRET_ID' }),
          mount: Type.String({ minLength: 1, default: 'approle' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const Http = Type.Object(
  {
    host: Type.String({ minLength: 1, default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8443 }),
    tls: Type.Object(
      {
        /**
         * auto: the CMS CA issues the server certificate (embedded mode);
         * files: certFile/keyFile (and caFile for client certificates) are read from disk;
         * off: plain HTTP (behind a TLS-terminating proxy; readers then cannot use mTLS here).
         */
        mode: Type.Union([Type.Literal('auto'), Type.Literal('files'), Type.Literal('off')], { default: 'auto' }),
        certFile: Type.Optional(FilePath),
        keyFile: Type.Optional(FilePath),
        caFile: Type.Optional(FilePath),
        /** Extra DNS names / IPs for the automatic server certificate. */
        altNames: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
      },
      { additionalProperties: false, default: {} },
    ),
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024, default: 1024 * 1024 }),
    trustProxy: Type.Boolean({ default: false }),
  },
  { additionalProperties: false, default: {} },
);

export const Limits = Type.Object(
  {
    /** Requests per window per operator token. */
    operatorRequests: Type.Integer({ minimum: 1, default: 600 }),
    /** Requests per window per reader. */
    readerRequests: Type.Integer({ minimum: 1, default: 6000 }),
    /** Requests per window per client address for unauthenticated calls. */
    anonymousRequests: Type.Integer({ minimum: 1, default: 120 }),
    windowMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 60_000 }),
    /** How long a drain may take on SIGTERM before connections are cut. */
    shutdownGraceMs: Type.Integer({ minimum: 0, maximum: 600_000, default: 10_000 }),
  },
  { additionalProperties: false, default: {} },
);

export const Audit = Type.Object(
  {
    checkpointIntervalSeconds: Type.Integer({ minimum: 1, maximum: 86_400, default: 300 }),
  },
  { additionalProperties: false, default: {} },
);

export const Logging = Type.Object(
  {
    level: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
  },
  { additionalProperties: false, default: {} },
);

/**
 * The separate metrics listener (src/cms/ops): plain HTTP `GET /metrics` without a token, bound to
 * 127.0.0.1 by default. Off by default; operators can always scrape `GET /v1/metrics` on the API
 * with an issuer_admin or auditor token.
 */
export const Metrics = Type.Object(
  {
    enabled: Type.Boolean({ default: false }),
    host: Type.String({ minLength: 1, default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 9464 }),
    /** A reader counts as online when it made an authenticated request this recently. */
    onlineWindowSeconds: Type.Integer({ minimum: 10, maximum: 86_400, default: 300 }),
  },
  { additionalProperties: false, default: {} },
);

/** The discriminated sections: the `kind` picks the variant (validated separately for clear errors). */
export const VARIANTS = {
  storage: { sqlite: SqliteStorage, postgres: PostgresStorage },
  sessions: { memory: MemorySessions, redis: RedisSessions },
  custody: { embedded: EmbeddedCustody, pkcs11: Pkcs11Custody, 'vault-transit': VaultTransitCustody },
} as const satisfies Record<string, Record<string, TSchema>>;

export const StorageConfig = Type.Union([SqliteStorage, PostgresStorage]);
export const SessionsConfig = Type.Union([MemorySessions, RedisSessions]);
export const CustodyConfig = Type.Union([EmbeddedCustody, Pkcs11Custody, VaultTransitCustody]);

/** The whole server configuration. */
export const ServerConfig = Type.Object(
  {
    dataDir: Type.String({ minLength: 1, default: './data' }),
    storage: StorageConfig,
    sessions: SessionsConfig,
    custody: CustodyConfig,
    http: Http,
    limits: Limits,
    audit: Audit,
    logging: Logging,
    metrics: Metrics,
  },
  { additionalProperties: false },
);

export type ServerConfig = Static<typeof ServerConfig>;
export type StorageConfig = Static<typeof StorageConfig>;
export type SessionsConfig = Static<typeof SessionsConfig>;
export type CustodyConfig = Static<typeof CustodyConfig>;
export type HttpConfig = Static<typeof Http>;
export type LimitsConfig = Static<typeof Limits>;
export type LogLevel = Static<typeof Logging>['level'];

/** The defaults of the embedded deployment (the `kind` of each discriminated section). */
export const DEFAULT_KINDS = { storage: 'sqlite', sessions: 'memory', custody: 'embedded' } as const;

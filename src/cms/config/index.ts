export * from './schema.js';
export * from './errors.js';
export { ENV_BINDINGS, SECRET_ENV } from './env.js';
export { checkConfig, loadConfig, type LoadOptions, type LoadedConfig } from './load.js';
export { postgresUrl, resolveSecrets, resolveStoragePassword, wipeSecrets, type ServerSecrets } from './secrets.js';
export { redactConfig, redactUrl } from './redact.js';

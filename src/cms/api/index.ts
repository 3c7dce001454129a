export { buildApi, API_VERSION, type BuildOptions } from './build.js';
export { ApiError, toErrorResponse } from './errors.js';
export { createLogger, maskSecrets, type LoggerSettings } from './logging.js';
export type { ApiDeps, ApiLimits, ApiModule, HealthCheck, RateLimiter, ReaderAuthenticator, ReaderIdentity } from './ports.js';
export { OperatorTokens, ROLES, type Role, type OperatorToken, hashToken } from './tokens/service.js';
export { tenantScope, canSeeTenant, assertTenant, actorOf, type Principal, type AuthSpec } from './auth.js';

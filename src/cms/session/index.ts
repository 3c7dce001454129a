// Public surface of the session store, and the one factory the CMS uses.
import { MemorySessionStore, type MemorySessionOptions } from './memory.js';
import { type SessionStore, SessionStoreError } from './types.js';

export * from './types.js';
export { MemorySessionStore, type MemorySessionOptions } from './memory.js';
export type { RedisSessionStore, RedisSessionOptions } from './redis.js';

export type SessionStoreConfig = ({ kind: 'memory' } & MemorySessionOptions) | { kind: 'redis'; url: string; prefix?: string };

/** Open a session store: in-memory (default, one process) or Redis (shared by many processes). */
export async function openSessionStore(config: SessionStoreConfig = { kind: 'memory' }): Promise<SessionStore> {
  if (config.kind === 'memory') return new MemorySessionStore(config);
  if (config.kind === 'redis') {
    const { RedisSessionStore } = await import('./redis.js');
    return RedisSessionStore.open(config);
  }
  throw new SessionStoreError('ERR_SESSION_CONFIG', `unknown session store kind '${(config as { kind?: unknown }).kind}'`);
}

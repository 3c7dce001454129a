// The effective configuration as it may be printed or logged: it never holds secrets itself, but
// URLs given through the environment may carry a password, which is masked here.
import type { ServerConfig } from './schema.js';

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

export function redactConfig(c: ServerConfig): ServerConfig {
  const out = structuredClone(c);
  if (out.storage.kind === 'postgres') out.storage.url = redactUrl(out.storage.url);
  if (out.sessions.kind === 'redis') out.sessions.url = redactUrl(out.sessions.url);
  return out;
}

// The operator console (console/, built by Vite into console/dist at install time) served at
// /console by the API listener. Static files only: the console talks to the public /v1 API with the
// operator's bearer token like any other client. Files are read once at registration (a few
// hundred kB); paths without an extension fall back to index.html (client-side routes). Also serves
// the audit checkpoint verifier key (a public key) at /console/vkey for the in-browser proof check.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, sendError } from './errors.js';

export interface ConsoleOptions {
  /** Directory with the built console (default: <package root>/console/dist). */
  root?: string;
  /** The audit log's checkpoint verifier key (C2SP vkey), served at /console/vkey. */
  vkey?: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

/** Strict: scripts and styles from this origin only, API calls to this origin only, no framing. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** <package root>/console/dist, from src/cms/api (tsx) or dist/cms/api (built): three levels up. */
export function defaultConsoleRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'console', 'dist');
}

interface Asset {
  body: Buffer;
  type: string;
  immutable: boolean;
}

function loadAssets(root: string): Map<string, Asset> {
  const out = new Map<string, Asset>();
  if (!existsSync(root)) return out;
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir)) {
      const abs = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      if (statSync(abs).isDirectory()) walk(abs, r);
      else out.set(r, { body: readFileSync(abs), type: TYPES[path.extname(name).toLowerCase()] ?? 'application/octet-stream', immutable: r.startsWith('assets/') });
    }
  };
  walk(root, '');
  return out;
}

function send(reply: FastifyReply, a: Asset): FastifyReply {
  return reply
    .header('content-type', a.type)
    .header('cache-control', a.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .send(a.body);
}

export function consoleRoutes(o: ConsoleOptions = {}) {
  const root = o.root ?? defaultConsoleRoot();
  return async (app: FastifyInstance) => {
    const assets = loadAssets(root);
    const cfg = { auth: { public: true as const }, rateLimit: false };
    const serve = async (req: FastifyRequest<{ Params: { '*'?: string } }>, reply: FastifyReply) => {
      const index = assets.get('index.html');
      if (!index) return sendError(reply, req, new ApiError(503, 'ERR_CONSOLE_NOT_BUILT', 'the console is not built (run `npm run build:console`)'));
      const rel = (req.params['*'] ?? '').replace(/^\/+/, '');
      const hit = assets.get(rel);
      if (hit) return send(reply, hit);
      // Client-side routes (no extension) get the app; a missing asset is a 404.
      if (rel === '' || !path.posix.basename(rel).includes('.')) return send(reply, index);
      return sendError(reply, req, new ApiError(404, 'ERR_NOT_FOUND', 'no such console asset'));
    };
    app.get('/console', { config: cfg, schema: { hide: true } }, async (_req, reply) => reply.redirect('/console/', 302));
    app.get('/console/vkey', { config: cfg, schema: { hide: true } }, async (req, reply) => {
      if (!o.vkey) return sendError(reply, req, new ApiError(404, 'ERR_NOT_FOUND', 'this server has no audit log'));
      return reply.header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-cache').send(o.vkey + '\n');
    });
    app.get<{ Params: { '*'?: string } }>('/console/*', { config: cfg, schema: { hide: true } }, serve);
  };
}

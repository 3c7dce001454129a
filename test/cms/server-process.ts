// Helpers to run `desfire-cms server` as a child process and talk to it over HTTPS.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./server-main.ts', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  url: URL;
  out: string[];
  err: string[];
  bootstrapToken?: string;
  exit: Promise<number | null>;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function startServerProcess(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 90_000): Promise<ServerProcess> {
  const child = runCli(['server', ...args], env);
  const out: string[] = [];
  const err: string[] = [];
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let buf = '';
  const url = await new Promise<URL>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out.join('\n')} ${err.join('\n')}`)), timeoutMs);
    child.stderr!.on('data', (c: Buffer) => err.push(c.toString()));
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        out.push(l);
        const m = /listening on (https?:\/\/\S+)/.exec(l);
        if (m) {
          clearTimeout(timer);
          resolve(new URL(m[1]!));
        }
      }
    });
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening: ${out.join('\n')} ${err.join('\n')}`));
    });
  });
  const p: ServerProcess = { child, url, out, err, exit };
  // the bootstrap line follows the listening line
  await new Promise((r) => setTimeout(r, 200));
  const tok = out.join('\n').match(/bootstrap issuer_admin token: (dcms_\S+)/);
  if (tok) p.bootstrapToken = tok[1]!;
  return p;
}

export function httpsJson(
  base: URL,
  caFile: string,
  method: string,
  path: string,
  o: { token?: string; body?: unknown } = {},
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON of many shapes in tests
): Promise<{ status: number; body: any }> {
  const ca = readFileSync(caFile, 'utf8');
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  const headers: Record<string, string> = {};
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = request({ host: base.hostname, port: base.port, method, path, headers, ca, servername: 'localhost', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

// `desfire-cms server` as a real process: embedded defaults, HTTPS with the CMS CA, bootstrap token
// printed once, SIGTERM → drain and exit 0, restart keeps the CA and tokens; two server processes
// on one PostgreSQL + Redis share tokens, readers and rate limits.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { testSchema } from '../helpers/pg-schema.js';
import { PG_URL, REDIS_URL, requireComponent, tcpReachable } from '../helpers/system.js';
import { httpsJson, runCli, startServerProcess, type ServerProcess } from './server-process.js';

const PASS = 'server test passphrase 42';
const started: ServerProcess[] = [];
afterAll(() => {
  for (const p of started) if (p.child.exitCode === null) p.child.kill('SIGKILL');
});

describe('desfire-cms server (process)', () => {
  it('starts with embedded defaults, serves HTTPS, exits 0 on SIGTERM; restart keeps CA and tokens', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'srv-'));
    const env = { DESFIRE_VAULT_PASSPHRASE: PASS, DESFIRE_CMS_HTTP_PORT: '0', DESFIRE_CMS_LOG_LEVEL: 'warn' };
    const a = await startServerProcess(['--data-dir', dataDir], env);
    started.push(a);
    expect(a.url.protocol).toBe('https:');
    expect(a.bootstrapToken).toMatch(/^dcms_/);
    const caFile = join(dataDir, 'pki', 'ca.pem');
    const ca1 = readFileSync(caFile, 'utf8');
    expect((await httpsJson(a.url, caFile, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await httpsJson(a.url, caFile, 'GET', '/readyz')).status).toBe(200);
    expect((await httpsJson(a.url, caFile, 'GET', '/v1/tokens/self', { token: a.bootstrapToken! })).body.roles).toEqual(['issuer_admin']);
    a.child.kill('SIGTERM');
    expect(await a.exit).toBe(0);
    expect(a.out.join('\n')).toContain('stopped');

    const b = await startServerProcess(['--data-dir', dataDir], env);
    started.push(b);
    expect(b.bootstrapToken).toBeUndefined();
    expect(readFileSync(caFile, 'utf8')).toBe(ca1);
    expect((await httpsJson(b.url, caFile, 'GET', '/v1/tokens/self', { token: a.bootstrapToken! })).status).toBe(200);
    b.child.kill('SIGINT');
    expect(await b.exit).toBe(0);
  }, 300_000);

  it('refuses to start on a bad configuration, naming every problem (exit 1)', async () => {
    const child = runCli(['server', '--data-dir', mkdtempSync(join(tmpdir(), 'srv-'))], { DESFIRE_CMS_HTTP_PORT: 'eighty', DESFIRE_CMS_STORAGE: 'oracle', DESFIRE_VAULT_PASSPHRASE: '' });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(1);
    expect(err).toContain('env DESFIRE_CMS_HTTP_PORT');
    expect(err).toContain('/storage/kind');
  }, 300_000);

  it('two processes on one PostgreSQL + Redis: shared tokens, readers and rate limits', async () => {
    const pg = await tcpReachable('127.0.0.1', Number(new URL(PG_URL).port || 5432));
    const redis = await tcpReachable('127.0.0.1', Number(new URL(REDIS_URL).port || 6379));
    if (!requireComponent('PostgreSQL', pg) || !requireComponent('Redis', redis)) return;
    const tag = randomBytes(4).toString('hex');
    const schema = testSchema('srv');
    const dataDir = mkdtempSync(join(tmpdir(), 'srv-'));
    const env = {
      DESFIRE_VAULT_PASSPHRASE: PASS,
      DESFIRE_CMS_HTTP_PORT: '0',
      DESFIRE_CMS_LOG_LEVEL: 'warn',
      DESFIRE_CMS_POSTGRES_URL: PG_URL,
      DESFIRE_CMS_POSTGRES_SCHEMA: schema,
      DESFIRE_CMS_REDIS_URL: REDIS_URL,
      DESFIRE_CMS_REDIS_KEY_PREFIX: `srvtest:${tag}:`,
      DESFIRE_CMS_LIMIT_OPERATOR_REQUESTS: '8',
    };
    const a = await startServerProcess(['--data-dir', dataDir], env);
    started.push(a);
    const b = await startServerProcess(['--data-dir', dataDir], env);
    started.push(b);
    const caFile = join(dataDir, 'pki', 'ca.pem');
    expect(a.bootstrapToken).toMatch(/^dcms_/);
    expect(b.bootstrapToken).toBeUndefined();
    const admin = a.bootstrapToken!;
    // a token created at A works at B (1 request each so far: 2 of 8)
    const t = await httpsJson(a.url, caFile, 'POST', '/v1/tokens', { token: admin, body: { label: 'shared', roles: ['auditor'], tenants: ['*'] } });
    expect(t.status).toBe(201);
    expect((await httpsJson(b.url, caFile, 'GET', '/v1/tokens/self', { token: t.body.token })).status).toBe(200);
    // a reader registered at A is known at B
    expect((await httpsJson(a.url, caFile, 'POST', '/v1/readers', { token: admin, body: { id: 'r1', name: 'r1' } })).status).toBe(201);
    const code = await httpsJson(b.url, caFile, 'POST', '/v1/readers/r1/enrolment-codes', { token: admin, body: {} });
    expect(code.status).toBe(201);
    // rate limit shared: admin has used 3 of 8; 5 more alternate between A and B, the next is refused at either
    for (let i = 0; i < 5; i++) expect((await httpsJson(i % 2 ? a.url : b.url, caFile, 'GET', '/v1/tokens/self', { token: admin })).status).toBe(200);
    const limited = await httpsJson(a.url, caFile, 'GET', '/v1/tokens/self', { token: admin });
    expect([limited.status, limited.body.error.code]).toEqual([429, 'ERR_RATE_LIMITED']);
    expect((await httpsJson(b.url, caFile, 'GET', '/v1/tokens/self', { token: admin })).status).toBe(429);
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    expect(await a.exit).toBe(0);
    expect(await b.exit).toBe(0);
  }, 300_000);
});

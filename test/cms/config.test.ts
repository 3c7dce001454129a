import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, ENV_BINDINGS, loadConfig, resolveSecrets } from '../../src/cms/config/index.js';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/io.js';

const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return [...(e as ConfigError).issues];
  }
  throw new Error('expected a ConfigError');
}
function io(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const cli: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env, cwd: dir };
  return { cli, out, err };
}

describe('config', () => {
  it('has embedded defaults without any file', () => {
    const { config } = loadConfig({ env: {}, cwd: dir });
    expect(config.storage).toEqual({ kind: 'sqlite', file: join(dir, 'data', 'cms.sqlite') });
    expect(config.sessions).toEqual({ kind: 'memory' });
    expect(config.custody.kind).toBe('embedded');
    expect(config.http.host).toBe('127.0.0.1');
    expect(config.http.tls.mode).toBe('auto');
    expect(config.logging.level).toBe('info');
  });

  it('reads YAML and lets the environment override it', () => {
    const f = file('a.yaml', 'dataDir: /var/lib/cms\nhttp:\n  port: 9000\nstorage:\n  kind: postgres\n  url: postgres://postgres@127.0.0.1:5432/test\nsessions:\n  url: redis://127.0.0.1:6379/0\n');
    const { config } = loadConfig({ file: f, env: { DESFIRE_CMS_HTTP_PORT: '9100', DESFIRE_CMS_LOG_LEVEL: 'debug' }, cwd: dir });
    expect(config.http.port).toBe(9100);
    expect(config.logging.level).toBe('debug');
    expect(config.storage).toMatchObject({ kind: 'postgres', poolSize: 10 });
    expect(config.sessions).toMatchObject({ kind: 'redis', keyPrefix: 'desfire-cms:' });
  });

  it('names every bad or missing value at once', () => {
    const f = file('bad.yaml', [
      'http:', '  port: 70000', '  tls:', '    mode: files', 'storage:', '  kind: mysql',
      'custody:', '  kind: pkcs11', 'limits:', '  windowMs: 5', '  bogus: 1', 'logging:', '  level: loud',
    ].join('\n'));
    const issues = issuesOf(() => loadConfig({ file: f, env: { DESFIRE_CMS_LIMIT_READER_REQUESTS: 'many', DESFIRE_CMS_TYPO: '1' }, cwd: dir }));
    const paths = issues.map((i) => i.path);
    for (const p of ['/http/port', '/storage/kind', '/custody/module', '/limits/windowMs', '/limits/bogus', '/logging/level', 'env DESFIRE_CMS_LIMIT_READER_REQUESTS', 'env DESFIRE_CMS_TYPO']) {
      expect(paths, `missing issue for ${p}: ${JSON.stringify(issues)}`).toContain(p);
    }
  });

  it('cross-field rules: tls files needs cert and key; pkcs11 needs the token label', () => {
    const f = file('x.yaml', 'http:\n  tls:\n    mode: files\ncustody:\n  kind: pkcs11\n  module: /usr/lib/softhsm/libsofthsm2.so\n');
    const paths = issuesOf(() => loadConfig({ file: f, env: {}, cwd: dir })).map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['/http/tls/certFile', '/http/tls/keyFile', '/custody/tokenLabel']));
  });

  it('refuses secrets written inline in the file (and URL passwords)', () => {
    const f = file('s.yaml', 'custody:\n  passphrase: hunter2\nstorage:\n  url: postgres://u:pw@h/db\n');
    const issues = issuesOf(() => loadConfig({ file: f, env: {}, cwd: dir }));
    expect(issues.map((i) => i.path)).toEqual(expect.arrayContaining(['/custody/passphrase', '/storage/url']));
    expect(JSON.stringify(issues)).not.toContain('hunter2');
  });

  it('reports YAML syntax errors with line and column', () => {
    const f = file('syntax.yaml', 'http:\n  port: [1,\n');
    const issues = issuesOf(() => loadConfig({ file: f, env: {}, cwd: dir }));
    expect(issues[0]!.path).toMatch(/syntax\.yaml:\d+:\d+$/);
  });

  it('reads secrets from the environment or a file, never from the config', () => {
    const { config } = loadConfig({ env: {}, cwd: dir });
    expect(resolveSecrets(config, { DESFIRE_VAULT_PASSPHRASE: 'correct horse' }).vaultPassphrase?.toString()).toBe('correct horse');
    const pf = file('pass.txt', 'from file, long enough\n');
    const c2 = loadConfig({ env: { DESFIRE_CMS_VAULT_PASSPHRASE_FILE: pf }, cwd: dir }).config;
    expect(resolveSecrets(c2, {}).vaultPassphrase?.toString()).toBe('from file, long enough');
    expect(issuesOf(() => resolveSecrets(config, {})).map((i) => i.path)).toEqual(['/custody/passphraseFile']);
    expect(issuesOf(() => resolveSecrets(config, { DESFIRE_VAULT_PASSPHRASE: 'short' }))[0]!.message).toContain('too short');
  });

  it('every env variable is documented in docs/configuration.md and sets a valid setting', () => {
    const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    for (const [name, b] of Object.entries(ENV_BINDINGS)) {
      expect(name.startsWith('DESFIRE_CMS_')).toBe(true);
      expect(doc, `${name} undocumented`).toContain('`' + name + '`');
      expect(b.path.length).toBeGreaterThan(0);
    }
    // a sample value for each variable is accepted by the schema (names map to real settings)
    const sample: Record<string, string> = { DESFIRE_CMS_STORAGE: 'postgres', DESFIRE_CMS_POSTGRES_URL: 'postgres://u@h/db', DESFIRE_CMS_SESSIONS: 'redis', DESFIRE_CMS_REDIS_URL: 'redis://h:6379/0' };
    for (const [name, b] of Object.entries(ENV_BINDINGS)) {
      if (b.path[0] === 'custody' || name in sample || name === 'DESFIRE_CMS_SQLITE_FILE') continue;
      sample[name] = b.kind === 'int' ? (name.endsWith('PORT') ? '8443' : name.endsWith('POOL_SIZE') ? '5' : name.includes('LIMIT_WINDOW') || name.includes('BODY_LIMIT') ? '60000' : '30') : b.kind === 'bool' ? 'true' : b.kind === 'list' ? 'a.example,b.example' : name === 'DESFIRE_CMS_TLS_MODE' ? 'files' : name === 'DESFIRE_CMS_LOG_LEVEL' ? 'warn' : name === 'DESFIRE_CMS_POSTGRES_SCHEMA' ? 'cms' : name.endsWith('_FILE') ? '/tmp/x' : 'value';
    }
    expect(() => loadConfig({ env: sample, cwd: dir })).not.toThrow();
  });

  it('`config check` prints the effective config redacted (exit 0) or every problem (exit 1)', async () => {
    const ok = io({ DESFIRE_VAULT_PASSPHRASE: 'pp-secret-long-enough', DESFIRE_CMS_STORAGE: 'postgres', DESFIRE_CMS_POSTGRES_URL: 'postgres://u:topsecret@127.0.0.1/db' });
    expect(await main(['config', 'check', '--json'], ok.cli)).toBe(0);
    const printed = ok.out.join('\n');
    expect(JSON.parse(printed).storage.url).toBe('postgres://u:***@127.0.0.1/db');
    expect(printed).not.toContain('topsecret');
    expect(printed).not.toContain('pp-secret');

    const bad = io({ DESFIRE_CMS_HTTP_PORT: 'x' });
    expect(await main(['config', 'check'], bad.cli)).toBe(1);
    expect(bad.err.join('\n')).toContain('env DESFIRE_CMS_HTTP_PORT');
    expect(bad.err.join('\n')).toContain('/custody/passphraseFile');
  });

  it('`config` bad arguments exit 2', async () => {
    expect(await main(['config'], io().cli)).toBe(2);
    expect(await main(['config', 'check', '--passphrase', 'x'], io().cli)).toBe(2);
  });
});

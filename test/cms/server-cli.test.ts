// `desfire-cms server token` (bootstrap / recovery) and argument errors of `desfire-cms server`.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { OperatorTokens } from '../../src/cms/api/tokens/service.js';
import { openDatabase } from '../../src/cms/storage/index.js';

function io(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const cli: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env, cwd: process.cwd() };
  return { cli, out, err };
}

describe('desfire-cms server token', () => {
  it('creates a token in the database, printed once, stored hashed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tok-'));
    const a = io();
    expect(await main(['server', 'token', '--role', 'tenant_admin', '--tenant', 'access', '--tenant', 'library', '--label', 'ops', '--data-dir', dir], a.cli)).toBe(0);
    const token = a.out.join('\n').match(/dcms_[A-Za-z0-9_-]{43}/)?.[0];
    expect(token).toBeDefined();
    const db = await openDatabase({ kind: 'sqlite', file: join(dir, 'cms.sqlite') });
    try {
      const t = await new OperatorTokens(db.db).verify(token!);
      expect(t).toMatchObject({ label: 'ops', roles: ['tenant_admin'], tenants: ['access', 'library'] });
      const rows = await db.db.selectFrom('api_tokens').selectAll().execute();
      expect(JSON.stringify(rows)).not.toContain(token!.slice(5));
    } finally {
      await db.close();
    }
  });

  it('bad arguments exit 2 with a one-line message; secrets are not accepted as arguments', async () => {
    const cases = [
      ['server', 'token'],
      ['server', 'token', '--role', 'root'],
      ['server', 'token', '--role', 'tenant_admin'],
      ['server', 'token', '--role', 'auditor', '--tenant', '../x'],
      ['server', '--port', '99999'],
      ['server', '--passphrase', 'hunter2hunter2'],
      ['server', 'extra-arg'],
    ];
    for (const args of cases) {
      const r = io();
      expect(await main(args, r.cli), args.join(' ')).toBe(2);
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).not.toContain('hunter2');
    }
  });
});

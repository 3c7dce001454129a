// `desfire-cms help` and the command table: help prints every command's summary without importing
// any command module; a command imports only its own module; exit codes and messages of the
// dispatcher. Every command module is replaced by a stub that records that it was imported.
import { describe, expect, it, vi } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { COMMANDS, main } from '../../src/cli/main.js';

const loaded = vi.hoisted(() => [] as string[]);
vi.mock('../../src/cli/commands/card.js', () => (loaded.push('card'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/cards.js', () => (loaded.push('cards'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/config.js', () => (loaded.push('config'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/server.js', () => (loaded.push('server'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/crypto.js', () => (loaded.push('crypto'), { command: { run: async (args: string[]) => (args[0] === 'fail' ? Promise.reject(Object.assign(new Error('boom'), { code: 'ERR_X' })) : 7) } }));
vi.mock('../../src/cli/commands/layout.js', () => (loaded.push('layout'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/vault.js', () => (loaded.push('vault'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/keys.js', () => (loaded.push('keys'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/jobs.js', () => (loaded.push('jobs'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/audit.js', () => (loaded.push('audit'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/reader.js', () => (loaded.push('reader'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/demo.js', () => (loaded.push('demo'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/consent.js', () => (loaded.push('consent'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/rotation.js', () => (loaded.push('rotation'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/approvals.js', () => (loaded.push('approvals'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/approvals-ops.js', () => (loaded.push('critical'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/compromise.js', () => (loaded.push('compromise'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/backup.js', () => (loaded.push('backup'), { command: { run: async () => 0 } }));
vi.mock('../../src/cli/commands/restore.js', () => (loaded.push('restore'), { command: { run: async () => 0 } }));

function io(): CliIO & { o: string[]; e: string[] } {
  const o: string[] = [];
  const e: string[] = [];
  return { out: (l) => o.push(l), err: (l) => e.push(l), env: {}, cwd: process.cwd(), o, e };
}

describe('desfire-cms help and dispatch', () => {
  it('help, --help, -h and no argument: every command with its summary, no command module imported', async () => {
    for (const [argv, rc] of [[['help'], 0], [['--help'], 0], [['-h'], 0], [[], 2]] as const) {
      const r = io();
      expect(await main([...argv], r)).toBe(rc);
      expect(r.e).toEqual([]);
      expect(r.o[0]).toBe('usage: desfire-cms <command> [options]');
      expect(r.o.at(-1)).toBe('Run `desfire-cms <command> --help` for the options of a command.');
      const rows = r.o.slice(2, -2);
      expect(rows).toHaveLength(Object.keys(COMMANDS).length);
      for (const [name, c] of Object.entries(COMMANDS)) {
        expect(c.summary).toMatch(/^\S.{10,}$/);
        expect(rows).toContain(`  ${name.padEnd(10)} ${c.summary}`);
      }
    }
    expect(loaded).toEqual([]);
  });

  it('a command imports its own module only; its exit code and errors pass through', async () => {
    const r = io();
    expect(await main(['crypto', 'x'], r)).toBe(7);
    expect(loaded).toEqual(['crypto']);
    expect(await main(['crypto', 'fail'], r)).toBe(1);
    expect(r.e).toEqual(['desfire-cms crypto: ERR_X: boom']);
    expect(await main(['critical'], r)).toBe(0);
    expect(loaded).toEqual(['crypto', 'critical']);
  });

  it('an unknown command (also an Object.prototype name) exits 2 and imports nothing', async () => {
    const before = loaded.length;
    for (const name of ['bogus', 'constructor', 'toString', '__proto__']) {
      const r = io();
      expect(await main([name], r)).toBe(2);
      expect(r.e).toEqual([`desfire-cms: unknown command '${name}' (try: desfire-cms help)`]);
    }
    expect(loaded.length).toBe(before);
  });
});

// The command table of src/cli/main.ts against the modules it loads: every module under
// src/cli/commands that exports a command is in the table, and every entry loads a runnable command.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/main.js';

const dir = new URL('../../src/cli/commands/', import.meta.url);

describe('the command table', () => {
  it('lists every command module, and each entry loads a module exporting `command.run`', async () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts') && /^export const command\b/m.test(readFileSync(new URL(f, dir), 'utf8')));
    const loaded = new Map<unknown, string>();
    for (const [name, c] of Object.entries(COMMANDS)) {
      const m = await c.load();
      expect(typeof m.command.run, name).toBe('function');
      expect(m.command, name).not.toHaveProperty('summary'); // the summary lives in the table only
      loaded.set(m.command, name);
    }
    expect(loaded.size).toBe(Object.keys(COMMANDS).length); // no module twice
    for (const f of files) {
      const m = (await import(new URL(f, dir).href)) as { command: unknown };
      expect(loaded.has(m.command), `${f} is in the table`).toBe(true);
    }
    expect(files.length).toBe(loaded.size);
  }, 120_000);
});

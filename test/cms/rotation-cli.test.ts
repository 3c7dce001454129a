// The rotation / approvals / compromise CLI in-process: the offline simulation (progress bar on
// stderr, every card verified or failed with its true version) and argument errors (exit 2).
import { describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';

function io(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const x: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env, cwd: process.cwd() };
  return { io: x, out, err };
}

describe('desfire-cms rotation | approvals | compromise', () => {
  it('rotation simulate: 400 cards, 5% torn, progress on stderr, none unknown', async () => {
    const t = io();
    const code = await main(['rotation', 'simulate', '--cards', '400', '--torn', '5', '--batch-size', '100', '--json'], t.io);
    expect(code).toBe(0);
    const r = JSON.parse(t.out.join('\n')) as { cards: number; torn: number; done: number; failed: number; unknown: number };
    expect(r).toMatchObject({ cards: 400, torn: 20, done: 400, failed: 0, unknown: 0 });
    expect(t.err.some((l) => /^\[#*\.*\] +\d+% \d+\/400/.test(l))).toBe(true);
    expect(t.err.at(-1)).toContain('400/400');
  }, 60_000);

  it('argument errors exit 2 with one line naming the argument', async () => {
    const cases: [string[], RegExp][] = [
      [['rotation', 'create', '--tenant', 'acme', '--aid', 'A1B2C3', '--key-no', '0'], /exactly one target/],
      [['rotation', 'create', '--tenant', 'acme', '--aid', 'XYZ', '--key-no', '0', '--all'], /--aid/],
      [['rotation', 'create', '--tenant', 'acme', '--aid', 'A1B2C3', '--key-no', '0', '--all', '--window', '25-3'], /--window/],
      [['rotation', 'simulate'], /--cards/],
      [['rotation', 'bogus'], /bogus/],
      [['rotation', 'status', 'x', '--cms', 'http://plain:80', '--ca', 'x'], /--cms/],
      [['rotation', 'kek', 'nope'], /rotation kek/],
      [['approvals', 'request', '--kind', 'kek_rotation', '--summary', 's'], /--kind/],
      [['approvals', 'list', '--state', 'odd'], /--state/],
      [['compromise', 'card', 'zz'], /UID/],
      [['compromise', 'reader', 'r1', '--cms', 'https://127.0.0.1:1', '--ca', '/nonexistent/ca.pem'], /--ca/],
    ];
    for (const [argv, re] of cases) {
      const t = io();
      expect(await main(argv, t.io), argv.join(' ')).toBe(2);
      expect(t.err.join('\n')).toMatch(re);
    }
    const t = io();
    expect(await main(['approvals', 'list', '--cms', 'https://127.0.0.1:1', '--ca', 'package.json'], t.io)).toBe(2);
    expect(t.err.join('\n')).toMatch(/DESFIRE_CMS_TOKEN/);
  });
});

// `desfire-cms demo --cards 5` in-process through main(argv, io): the whole story on embedded
// defaults exits 0 and its summary reports what happened; a failing step exits 1; bad arguments exit 2.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';

function capture(): { io: CliIO; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l) => out.push(l), err: (l) => err.push(l), env: {}, cwd: process.cwd() }, out, err };
}

describe('desfire-cms demo', () => {
  it('--cards 5: every step ends as expected, exit 0, summary table', async () => {
    const { io, out, err } = capture();
    const code = await main(['demo', '--cards', '5'], io);
    expect(err.filter((l) => l.includes('FAILED'))).toEqual([]);
    expect(code).toBe(0);
    const text = out.join('\n');
    const row = (k: string) => out.find((l) => l.trimStart().startsWith(k + ' '))?.trim().slice(k.length).trim();
    expect(row('cards')).toMatch(/^5 issued and active/);
    expect(row('applications')).toMatch(/^20 installed \(4 per card, 4 tenants\)/);
    // 5 cards x (PICC master key + 3 + 3 + 3 + 2 application keys), all distinct
    expect(row('keys')).toMatch(/^60 distinct card keys/);
    expect(row('station jobs')).toMatch(/^25 completed/);
    expect(row('transactions')).toBe('5 access, 5 purse, 5 loan, 5 transit online; 10 offline');
    expect(row('refusals')).toBe('20 by the CMS (403), 40 by the cards, 5 offline past TTL, 1 revoked reader');
    expect(row('rotation')).toBe('access/A1C001/key 0: v1 -> v2, 5/5 cards, campaign completed');
    expect(row('compromise')).toMatch(/^till-1 revoked; blast radius cafeteria\/CAFE01\/key 1 v1 on 5 cards \(\d+ deliveries\); 1 campaign proposed \(awaiting approval\)$/);
    expect(Number(row('audit entries'))).toBeGreaterThan(100);
    expect(row('verification')).toBe('live OK, export OK');
    expect(row('result')).toBe('ok');
    // plain step lines on a non-TTY stderr
    expect(err.some((l) => /^demo: \[\d+\] ok: issue 5 virtual cards/.test(l))).toBe(true);
    // no key material in anything printed
    expect(text).not.toMatch(/[0-9A-F]{32}/i);
  }, 180_000);

  it('a step that does not end as expected: exit 1, the step named, data kept for inspection', async () => {
    // --pcsc towards a vpcd port nothing listens on: the station step must fail (never fall back)
    const { io, out, err } = capture();
    io.env = { DESFIRE_DEMO_VPCD: '127.0.0.1:1' };
    const code = await main(['demo', '--cards', '1', '--pcsc'], io);
    expect(code).toBe(1);
    expect(err.join('\n')).toMatch(/FAILED at 'issue 1 virtual cards through station-1.*--pcsc: /);
    expect(out.find((l) => l.trimStart().startsWith('result '))).toMatch(/FAILED$/);
    const kept = out.find((l) => l.startsWith('data kept in '));
    expect(kept).toMatch(/kept for inspection/);
    const dir = /^data kept in (\S+?)( |;)/.exec(kept!)![1]!;
    expect(existsSync(join(dir, 'cms.sqlite'))).toBe(true);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('bad arguments: exit 2', async () => {
    for (const args of [['--cards', '0'], ['--cards', 'x'], ['--frobnicate']]) {
      const { io, err } = capture();
      expect(await main(['demo', ...args], io)).toBe(2);
      expect(err.join('\n')).toMatch(/desfire-cms demo: /);
    }
  });
});

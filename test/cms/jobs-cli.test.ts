// `desfire-cms jobs list` pages as GET /v1/jobs does, end to end over HTTPS against the whole CMS:
// a page prints `next: --after CURSOR` when more follow, `--after CURSOR` prints the next page,
// `--all` follows `next` to the end (text page by page; --json one document); a malformed
// cursor is a usage error (exit 2, no request), a well-formed one the CMS does not know is its 400.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { type E2e, startE2e } from '../e2e/harness.js';

const N = 25;
let h: E2e;
let base: string[];
/** The jobs, oldest first; two to a millisecond (the id breaks the tie), filed in another order. */
const ids = Array.from({ length: N }, (_, i) => `job_cli${String.fromCharCode(97 + ((i * 11) % 26))}${String(i).padStart(3, '0')}`);
const ordered = ids.map((id, i) => ({ id, at: 1_700_000_000_000 + Math.floor(i / 2) })).sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1)).map((j) => j.id);

async function cli(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const lines = { out: [] as string[], err: [] as string[] };
  const io: CliIO = { out: (l) => lines.out.push(l), err: (l) => lines.err.push(l), env: { DESFIRE_CMS_TOKEN: h.admin }, cwd: process.cwd() };
  return { code: await main(['jobs', ...args, ...base], io), ...lines };
}
const listed = (out: string[]) => out.filter((l) => l.startsWith('job_')).map((l) => l.split('  ')[0]!);
const nextOf = (out: string[]) => out.find((l) => l.startsWith('next: '))?.slice('next: --after '.length);

beforeAll(async () => {
  h = await startE2e({}, { limits: false });
  const caFile = join(mkdtempSync(join(tmpdir(), 'jobs-cli-')), 'ca.pem');
  writeFileSync(caFile, h.ca);
  base = ['--cms', `https://127.0.0.1:${h.server.port}`, '--ca', caFile];
  const rows = ids.map((id, i) => ({
    id,
    kind: 'issue',
    reader_id: 'station-1',
    uid: '04A1B2C3D4E5F6',
    aid: '000000',
    state: i % 3 ? 'completed' : 'unknown',
    jti: `jti-${id}`,
    plan: JSON.stringify({ cmkVersion: 1, piccKeySettings: 9, randomUid: false }),
    outcome: null,
    created_at: 1_700_000_000_000 + Math.floor(i / 2),
    expires_at: 1_700_000_060_000,
    updated_at: 1_700_000_000_000,
  }));
  await h.cms.db.db.insertInto('station_jobs').values([...rows].reverse()).execute();
}, 120_000);
afterAll(async () => h?.close());

describe('desfire-cms jobs list: paging', () => {
  it('prints next: --after CURSOR while more follow; --after gives the next page', async () => {
    const seen: string[] = [];
    let after: string | undefined;
    for (let n = 0; n < 10; n++) {
      const r = await cli('list', '--limit', '10', ...(after ? ['--after', after] : []));
      expect(r.code).toBe(0);
      const page = listed(r.out);
      seen.push(...page);
      after = nextOf(r.out);
      if (after === undefined) break;
      expect(page).toHaveLength(10);
      expect(r.out[r.out.length - 1]).toBe(`next: --after ${after}`);
    }
    expect(seen).toEqual(ordered);
  });

  it('--all follows next to the end (with filters, from an --after, as --json)', async () => {
    const all = await cli('list', '--all', '--limit', '7');
    expect(all.code).toBe(0);
    expect(listed(all.out)).toEqual(ordered);
    expect(all.out.some((l) => l.startsWith('next:'))).toBe(false);
    const unknown = await cli('list', '--all', '--limit', '2', '--state', 'unknown');
    expect(listed(unknown.out)).toEqual(ordered.filter((id) => ids.indexOf(id) % 3 === 0));
    const first = nextOf((await cli('list', '--limit', '4')).out)!;
    expect(listed((await cli('list', '--all', '--limit', '3', '--after', first)).out)).toEqual(ordered.slice(4));
    const json = await cli('list', '--all', '--limit', '6', '--json');
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.out.join('\n')) as { jobs: { id: string }[]; next: null };
    expect([doc.jobs.map((j) => j.id), doc.next]).toEqual([ordered, null]);
  });

  it('a malformed cursor is a usage error; one the CMS does not know is its 400 ERR_BAD_CURSOR', async () => {
    const bad = await cli('list', '--after', 'not a cursor!');
    expect([bad.code, bad.err.join(' ')]).toEqual([2, expect.stringContaining('--after')]);
    for (const all of [[], ['--all']]) {
      const unknown = await cli('list', ...all, '--after', Buffer.from('12.job_').toString('base64url'));
      expect([unknown.code, unknown.err[0], unknown.out]).toEqual([1, expect.stringContaining('400 ERR_BAD_CURSOR'), []]);
    }
  });
});

// `desfire-cms reader` in-process against the whole CMS over HTTPS: enrol (code from a file,
// passphrase from the environment), status, sync; usage errors exit 2.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { type CmsHarness, startCms } from '../cms/api-harness.js';

let h: CmsHarness;
const io = (env: Record<string, string> = {}) => {
  const out: string[] = [];
  const err: string[] = [];
  const o: CliIO & { out_: string[]; err_: string[] } = { out: (l) => out.push(l), err: (l) => err.push(l), env, cwd: process.cwd(), out_: out, err_: err };
  return o;
};

beforeAll(async () => {
  h = await startCms();
}, 60_000);
afterAll(async () => h.close());

describe('desfire-cms reader (CLI)', () => {
  it('enrol → status → sync; the code is single-use; secrets never on argv', async () => {
    expect((await h.call('POST', '/v1/readers', { token: h.admin, body: { id: 'cli-door', name: 'CLI door' } })).status).toBe(201);
    const code = (await h.call('POST', '/v1/readers/cli-door/enrolment-codes', { token: h.admin, body: {} })).body.code as string;
    const tmp = mkdtempSync(join(tmpdir(), 'reader-cli-'));
    const dir = join(tmp, 'state');
    writeFileSync(join(tmp, 'code'), code + '\n');
    writeFileSync(join(tmp, 'ca.pem'), h.cms.ca!.certificatePem);
    const url = `https://127.0.0.1:${h.server.port}`;
    const env = { DESFIRE_READER_PASSPHRASE: 'cli reader passphrase' };
    const a = io(env);
    const rc = await main(['reader', 'enrol', '--dir', dir, '--cms', url, '--ca', join(tmp, 'ca.pem'), '--id', 'cli-door', '--code-file', join(tmp, 'code'), '--servername', 'localhost'], a);
    expect(a.err_).toEqual([]);
    expect(rc).toBe(0);
    expect(a.out_[0]).toMatch(/^enrolled reader cli-door: certificate serial/);
    expect(a.out_.join('\n')).not.toContain(code);
    expect(statSync(join(dir, 'reader-key.json')).mode & 0o777).toBe(0o600);

    const again = io(env);
    expect(await main(['reader', 'enrol', '--dir', dir, '--cms', url, '--ca', join(tmp, 'ca.pem'), '--id', 'cli-door', '--code-file', join(tmp, 'code'), '--servername', 'localhost'], again)).toBe(1);
    expect(again.err_[0]).toMatch(/ERR_READER_ENROL/);

    const s = io(env);
    expect(await main(['reader', 'sync', '--dir', dir, '--cms', url, '--servername', 'localhost'], s)).toBe(0);
    expect(s.out_[0]).toMatch(/reader cli-door active: baton acknowledged up to #0; 0 card\(s\) denied/);

    const st = io();
    expect(await main(['reader', 'status', '--dir', dir, '--json'], st)).toBe(0);
    expect(JSON.parse(st.out_[0]!)).toMatchObject({ keystore: true, enrolled: true });

    // the last run did not close its baton (a crash or power loss; its process is gone): the next
    // start says so in the chain, and the CMS stores it
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(join(dir, 'baton.open'), `${dead}\n`);
    const r = io(env);
    expect(await main(['reader', 'sync', '--dir', dir, '--cms', url, '--servername', 'localhost'], r)).toBe(0);
    expect(r.out_[0]).toMatch(/baton acknowledged up to #1;/);
    const stored = (await h.call('GET', '/v1/readers/cli-door/baton', { token: h.admin })).body.entries as { op: string; result: string }[];
    expect(stored.map((e) => [e.op, e.result])).toEqual([['agent-recovered', 'unclean-shutdown:fsync-group']]);
    expect(existsSync(join(dir, 'baton.open'))).toBe(false); // closed cleanly this time
  });

  it('usage errors exit 2 and name the argument', async () => {
    const cases: [string[], RegExp][] = [
      [['reader', 'run', '--dir', 'x', '--cms', 'http://127.0.0.1:1', '--tx', 'access', '--image', 'c.json'], /--cms must be https/],
      [['reader', 'run', '--dir', 'x', '--cms', 'https://127.0.0.1:1', '--tx', 'refund', '--image', 'c.json'], /--tx must be/],
      [['reader', 'run', '--dir', 'x', '--cms', 'https://127.0.0.1:1', '--tx', 'access'], /exactly one of --pcsc/],
      [['reader', 'run', '--dir', 'x', '--cms', 'https://127.0.0.1:1', '--tx', 'access', '--image', 'c', '--offline-ttl', '30'], /--offline-ttl must be an integer in 5..15/],
      [['reader', 'enrol', '--dir', 'x', '--cms', 'https://127.0.0.1:1', '--ca', 'package.json', '--id', 'r1'], /--code-file FILE or set DESFIRE_READER_CODE/],
      [['reader', 'run', '--dir', 'x', '--cms', 'https://127.0.0.1:1', '--tx', 'access', '--image', 'c', '--fsync', 'never'], /--fsync must be 'group'/],
      [['reader', 'frobnicate'], /unknown subcommand/],
    ];
    for (const [argv, re] of cases) {
      const o = io();
      expect(await main(argv, o)).toBe(2);
      expect(o.err_.join('\n')).toMatch(re);
    }
  });
});

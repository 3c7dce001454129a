// `desfire-cms cards` end to end over HTTPS against the whole CMS: the issuer hands a card out
// (issued → active) and suspends it; an illegal transition is refused by the CMS (exit 1, 409) and
// changes nothing; a tenant admin may list/show its cards but not move them (403); usage errors
// exit 2 without a request.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import { type CmsHarness, startCms } from './api-harness.js';

let h: CmsHarness;
let base: string[];
let tokens: Record<'issuer' | 'access', string>;
const UID = '04C1A2B3C4D5E6';

/** Run `desfire-cms cards ARGS` in-process as `who` (null: no token). */
async function cli(who: keyof typeof tokens | null, ...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const lines = { out: [] as string[], err: [] as string[] };
  const env = who ? { DESFIRE_CMS_TOKEN: tokens[who] } : {};
  const io: CliIO = { out: (l) => lines.out.push(l), err: (l) => lines.err.push(l), env, cwd: process.cwd() };
  return { code: await main(['cards', ...args, ...base], io), ...lines };
}

beforeAll(async () => {
  h = await startCms();
  const dm = h.cms.deps.domain!;
  await dm.tenants.registerLayout(parseLayout(readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8'), 'campus.yaml'));
  const r = await h.call('POST', '/v1/tokens', { token: h.admin, body: { label: 'access admin', roles: ['tenant_admin'], tenants: ['access'] } });
  tokens = { issuer: h.admin, access: r.body.token as string };
  const dir = mkdtempSync(join(tmpdir(), 'cards-cli-'));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, h.cms.ca!.certificatePem);
  base = ['--cms', `https://127.0.0.1:${h.server.port}`, '--ca', caFile];
  await dm.cards.createBlank(UID);
  await dm.cards.transition(UID, 'issued');
  await dm.cards.recordInstallation(UID, 'A1C001', [0, 1, 2].map((keyNo) => ({ keyNo, version: 1 })));
}, 120_000);
afterAll(async () => h?.close());

const stateOf = async (uid: string) => (await h.cms.deps.domain!.cards.get(uid))?.state;

describe('desfire-cms cards', () => {
  it('state: issued → active → suspended; an illegal transition is 409 and changes nothing', async () => {
    const a = await cli('issuer', 'state', UID.toLowerCase(), '--to', 'active');
    expect(a.code).toBe(0);
    expect(a.out[0]).toMatch(new RegExp(`^${UID}  active`));
    expect(await stateOf(UID)).toBe('active');
    const s = await cli('issuer', 'state', UID, '--to', 'suspended', '--json');
    expect(s.code).toBe(0);
    expect(JSON.parse(s.out.join('\n'))).toMatchObject({ uid: UID, state: 'suspended' });
    // suspended → destroyed is not a lifecycle edge (→ revoked → destroyed)
    const bad = await cli('issuer', 'state', UID, '--to', 'destroyed');
    expect(bad.code).toBe(1);
    expect(bad.err[0]).toContain('409');
    expect(bad.err[0]).toContain('ERR_DOMAIN_TRANSITION');
    expect(await stateOf(UID)).toBe('suspended');
    expect((await cli('issuer', 'state', UID, '--to', 'active')).code).toBe(0);
  });

  it('list and show in scope; a tenant admin cannot move a card (403)', async () => {
    const l = await cli('access', 'list', '--state', 'active');
    expect(l.code).toBe(0);
    expect(l.out.join('\n')).toContain(UID);
    const sh = await cli('access', 'show', UID);
    expect(sh.code).toBe(0);
    expect(sh.out[1]).toContain('A1C001 (access)  keys 0:v1 1:v1 2:v1');
    const before = await stateOf(UID);
    const f = await cli('access', 'state', UID, '--to', 'revoked');
    expect(f.code).toBe(1);
    expect(f.err[0]).toContain('403');
    expect(await stateOf(UID)).toBe(before);
    const missing = await cli('issuer', 'show', '04000000000001');
    expect([missing.code, missing.err[0]]).toEqual([1, expect.stringContaining('404')]);
  });

  it('usage errors exit 2 and name the argument', async () => {
    const e1 = await cli('issuer', 'state', 'XYZ', '--to', 'active');
    expect([e1.code, e1.err.join(' ')]).toEqual([2, expect.stringContaining('UID')]);
    const e2 = await cli('issuer', 'state', UID, '--to', 'issued');
    expect([e2.code, e2.err.join(' ')]).toEqual([2, expect.stringContaining('--to')]);
    const e3 = await cli('issuer', 'state', UID);
    expect([e3.code, e3.err.join(' ')]).toEqual([2, expect.stringContaining('--to')]);
    const e4 = await cli(null, 'list');
    expect([e4.code, e4.err.join(' ')]).toEqual([2, expect.stringContaining('token')]);
    expect((await cli('issuer', 'frobnicate')).code).toBe(2);
    expect(await stateOf(UID)).toBe('active');
  });
});

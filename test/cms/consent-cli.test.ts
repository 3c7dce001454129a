// `desfire-cms consent` end to end over HTTPS against the whole CMS: the issuer requests, the tenant
// sees its pending requests and grants or refuses; authorisations listed and revoked; cardholder
// consent recorded and withdrawn (deletion scheduled); usage errors exit 2, refusals exit 1.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/io.js';
import { type CmsHarness, startCms } from './api-harness.js';

let h: CmsHarness;
let base: string[];
let tokens: Record<'issuer' | 'access' | 'cafeteria', string>;
const UID = '04AA11BB22CC33';

async function cli(who: keyof typeof tokens, ...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env: { DESFIRE_CMS_TOKEN: tokens[who] }, cwd: process.cwd() };
  const code = await main(['consent', ...args, ...base], io);
  return { code, out, err };
}

beforeAll(async () => {
  h = await startCms();
  const campus = readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8');
  expect((await h.call('POST', '/v1/layouts', { token: h.admin, raw: campus, contentType: 'application/yaml' })).status).toBe(201);
  const tok = async (tenant: string) => (await h.call('POST', '/v1/tokens', { token: h.admin, body: { label: tenant, roles: ['tenant_admin'], tenants: [tenant] } })).body.token as string;
  tokens = { issuer: h.admin, access: await tok('access'), cafeteria: await tok('cafeteria') };
  const dir = mkdtempSync(join(tmpdir(), 'consent-cli-'));
  writeFileSync(join(dir, 'ca.pem'), h.cms.ca!.certificatePem);
  base = ['--cms', `https://127.0.0.1:${h.server.port}`, '--ca', join(dir, 'ca.pem')];
  const cards = h.cms.deps.domain!.cards;
  await cards.createBlank(UID);
  await cards.transition(UID, 'issued');
  await cards.recordInstallation(UID, 'A1C001', [0, 1, 2].map((keyNo) => ({ keyNo, version: 1 })));
}, 120_000);
afterAll(async () => h?.close());

describe('desfire-cms consent', () => {
  it('request → pending → grant: the authorisation names the request; refuse; only the tenant decides', async () => {
    const r = await cli('issuer', 'request', '--tenant', 'access', '--aid', 'A1C001', '--op', 'install', '--card', UID, '--ttl', '600', '--reason', 'new staff card', '--json');
    expect(r.code).toBe(0);
    const req = JSON.parse(r.out[0]!) as { id: string; state: string };
    expect(req.state).toBe('pending');
    const r2 = JSON.parse((await cli('issuer', 'request', '--tenant', 'access', '--aid', 'A1C001', '--op', 'delete', '--profile', 'visitor', '--ttl', '600', '--reason', 'cleanup', '--json')).out[0]!) as { id: string };

    const pending = await cli('access', 'pending');
    expect(pending.code).toBe(0);
    expect(pending.out.join('\n')).toContain(req.id);
    expect(pending.out.join('\n')).toContain(r2.id);
    // another tenant sees none of them, and cannot decide them
    expect((await cli('cafeteria', 'pending')).out).toEqual([]);
    const foreign = await cli('cafeteria', 'grant', req.id);
    expect(foreign.code).toBe(1);
    expect(foreign.err[0]).toContain('403');
    // the issuer cannot grant its own request
    expect((await cli('issuer', 'grant', req.id)).err[0]).toContain('403');

    const g = await cli('access', 'grant', req.id, '--ttl', '120');
    expect(g.code).toBe(0);
    const authId = /^(auth_\S+)/.exec(g.out[0]!)![1]!;
    expect(g.out[0]).toContain(`A1C001 install card ${UID}`);
    expect((await cli('access', 'grant', req.id)).err[0]).toContain('409');
    const f = await cli('access', 'refuse', r2.id, '--reason', 'no');
    expect([f.code, f.out[0]]).toEqual([0, expect.stringContaining('refused')]);
    expect((await cli('access', 'pending')).out).toEqual([]);

    const list = await cli('access', 'list', '--active');
    expect(list.out.join('\n')).toContain(authId);
    expect((await cli('access', 'revoke', authId)).code).toBe(0);
    expect((await cli('access', 'list', '--active')).out.join('\n')).not.toContain(authId);
    expect((await cli('access', 'list')).out.join('\n')).toContain('REVOKED');
  });

  it('a tenant authorises directly; the issuer cannot', async () => {
    const ok = await cli('cafeteria', 'authorise', '--tenant', 'cafeteria', '--aid', 'CAFE01', '--op', 'rotate', '--profile', '*', '--ttl', '3600');
    expect(ok.code).toBe(0);
    expect(ok.out[0]).toMatch(/^auth_\S+ {2}cafeteria CAFE01 rotate policy profile \*/);
    const no = await cli('issuer', 'authorise', '--tenant', 'cafeteria', '--aid', 'CAFE01', '--op', 'rotate', '--profile', '*', '--ttl', '3600');
    expect([no.code, no.err[0]]).toEqual([1, expect.stringContaining('403 ERR_FORBIDDEN')]);
    const cross = await cli('cafeteria', 'authorise', '--tenant', 'access', '--aid', 'A1C001', '--op', 'rotate', '--profile', '*', '--ttl', '3600');
    expect([cross.code, cross.err[0]]).toEqual([1, expect.stringContaining('403 ERR_FORBIDDEN_TENANT')]);
  });

  it('cardholder consent: record, withdraw (deletion scheduled), deletions', async () => {
    const rec = await cli('access', 'record', '--uid', UID, '--aid', 'A1C001', '--cardholder', 'emp-1001', '--evidence', 'form 7');
    expect(rec.code).toBe(0);
    const id = /^(cns_\S+)/.exec(rec.out[0]!)![1]!;
    const w = await cli('access', 'withdraw', id);
    expect(w.code).toBe(0);
    expect(w.out.join('\n')).toContain(`deletion scheduled: ${UID} A1C001 access  consent_withdrawn`);
    const d = await cli('issuer', 'deletions', '--uid', UID);
    expect(d.out).toHaveLength(1);
    expect((await cli('cafeteria', 'deletions')).out).toEqual([]);
  });

  it("card profile: the issuer sets and clears it; a tenant admin cannot", async () => {
    const set = await cli('issuer', 'profile', UID.toLowerCase(), '--profile', 'staff');
    expect([set.code, set.out]).toEqual([0, [`${UID}  profile staff`]]);
    expect((await h.call('GET', `/v1/cards/${UID}`, { token: h.admin })).body.card.profile).toBe('staff');
    const no = await cli('access', 'profile', UID, '--profile', 'visitor');
    expect([no.code, no.err[0]]).toEqual([1, expect.stringContaining('403')]);
    expect((await cli('issuer', 'profile', UID, '--clear', '--json')).out).toEqual([JSON.stringify({ uid: UID, profile: null })]);
    expect((await cli('issuer', 'profile', UID, '--profile', '*')).code).toBe(2);
    expect((await cli('issuer', 'profile', UID)).code).toBe(2);
  });

  it('usage errors exit 2 and name the argument', async () => {
    expect((await cli('access', 'authorise', '--tenant', 'access', '--aid', 'A1C001', '--op', 'format', '--card', UID, '--ttl', '1')).code).toBe(2);
    expect((await cli('access', 'authorise', '--tenant', 'access', '--aid', 'A1C001', '--op', 'install', '--ttl', '1')).code).toBe(2);
    expect((await cli('access', 'grant', 'nope')).code).toBe(2);
    expect((await cli('access', 'frobnicate')).code).toBe(2);
    const io: CliIO = { out: () => undefined, err: () => undefined, env: {}, cwd: process.cwd() };
    expect(await main(['consent', 'list', ...base], io)).toBe(2);
  });
});

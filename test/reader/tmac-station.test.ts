// A layout with a Transaction MAC file, end to end: the campus layout's cafeteria purse with a
// 'tmac' file added (as a layout author would write it) lints clean; registered in a CMS, its
// station install job creates the TMAC file on a virtual EV2 card with the AES key derived from the
// sealed 'tmac' key; a till's transaction then yields a TMV that verifies with that key (delivered
// here to a test 'backend' reader); the counter reads freely.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { parseLayout } from '../../src/cms/layout/parse.js';
import { lintLayout } from '../../src/cms/layout/lint.js';
import { applicationPlan } from '../../src/cms/layout/desfire.js';
import { toHex } from '../../src/core/crypto/bytes.js';
import { DesfireClient } from '../../src/core/client/client.js';
import { deriveTmacKey, transactionMacValue, tmiEntry } from '../../src/core/sm/tmac.js';
import { ReaderUnsealer } from '../../src/custody/sealed.js';
import { ReaderAgent } from '../../src/reader/agent.js';
import { AuditBaton } from '../../src/reader/baton.js';
import { CmsClient } from '../../src/reader/cms-client.js';
import { HttpKeySource } from '../../src/reader/http-keys.js';
import { JobRunner } from '../../src/reader/jobs.js';
import { ReaderKeystore } from '../../src/reader/keystore.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { grantStandingConsent } from '../helpers/consent.js';
import { PASS, type StationCms, startStationCms } from './e2e-helpers.js';

/** The campus example with its purse given a key 3 (role tmac) and TMAC file 2, under a new tenant/AID. */
function tmacLayoutText(): string {
  const campus = readFileSync('examples/campus.yaml', 'utf8');
  const start = campus.indexOf('  - id: cafeteria');
  const end = campus.indexOf('  - id: library');
  const purse = campus.slice(start, end)
    .replace('id: cafeteria', 'id: kiosk-net')
    .replace('name: Cafeteria', 'name: Kiosk network')
    .replace('"CAFE01"', '"CAFE7A"')
    .replace('          - { no: 2, role: credit, description: top-up kiosks }\n',
      '          - { no: 2, role: credit, description: top-up kiosks }\n          - { no: 3, role: tmac, description: source of the TMAC key - backend only }\n')
    .trimEnd() + '\n' + [
    '          - no: 2',
    '            name: purse-tmac',
    '            type: tmac',
    '            comm: plain',
    '            access: { read: free, write: never, readWrite: never, change: amk }',
  ].join('\n') + '\n';
  return `${campus.slice(0, campus.indexOf('tenants:'))}tenants:\n${purse}`.replace(/^name: .*$/m, 'name: kiosk network');
}

let s: StationCms;
beforeAll(async () => {
  s = await startStationCms();
}, 60_000);
afterAll(async () => s?.close());

describe('layout tmac file through the station install job', () => {
  it('lints clean, plans CE with the source key number, and is refused when structurally wrong', () => {
    const layout = parseLayout(tmacLayoutText(), 'kiosk.yaml');
    expect(lintLayout(layout)).toEqual([]);
    const plan = applicationPlan(layout.tenants[0]!.applications[0]!);
    const f = plan.files.find((x) => x.fileNo === 2)!;
    expect(f.command).toBe(0xce);
    // fileNo 02, plain 00, access F0 EF (RW never, Change amk; R free, W never), TMKeyOption 02, source key 03
    expect(toHex(f.data)).toBe('0200F0EF0203');
    const bad = (from: string, to: string) => () => parseLayout(tmacLayoutText().replace(from, to), 'bad.yaml');
    expect(bad('readWrite: never, change: amk }\n', 'readWrite: never, change: amk }\n          - { no: 9, type: tmac, access: { write: never } }\n')).toThrow(/second Transaction MAC file/);
    expect(bad('{ read: free, write: never, readWrite: never, change: amk }\n', '{ read: free, write: debit, readWrite: never, change: amk }\n')).toThrow(/write must be never/);
    expect(bad('          - { no: 3, role: tmac, description: source of the TMAC key - backend only }\n', '')).toThrow(/role 'tmac'/);
  });

  it('install creates the TMAC file with the derived key: the TMV of a till transaction verifies with it', async () => {
    const cms = s.cms;
    await cms.deps.domain!.tenants.registerLayout(parseLayout(tmacLayoutText(), 'kiosk.yaml'));
    const issuer = cms.bootstrapToken ?? (await cms.deps.tokens.create({ label: 'tmac issuer', roles: ['issuer_admin'], tenants: ['*'], createdBy: null })).token;
    await grantStandingConsent(s.server.app, issuer, { aids: ['CAFE7A'] });
    const st = await s.enrolled('tmac-station', [{ tenantId: 'kiosk-net', aid: 'CAFE7A', keyNo: 0, operations: ['issue', 'install'] }]);
    const ks = ReaderKeystore.open(st.dir, new TextEncoder().encode(PASS));
    const c = ks.certificates();
    const http = new CmsClient({ url: s.url, ca: c.ca, servername: 'localhost' }, { key: ks.tlsKeyPem(), cert: c.cert });
    const agent = new ReaderAgent({ readerId: 'tmac-station', roles: [], baton: AuditBaton.open(st.dir), unsealer: new ReaderUnsealer('tmac-station', ks.privateKey), keys: { fetch: () => Promise.reject(new Error('unused')) }, cms: http });
    const jobs = new JobRunner(agent, ks, { url: s.url, servername: 'localhost' });
    const card = VirtualCard.create({ profile: 'ev2' });
    const t = new InProcessTransport(card);
    const uid = toHex(card.uid);
    expect(await jobs.run({ kind: 'issue', uid, randomUid: false }, t)).toMatchObject({ ok: true });
    expect(await jobs.run({ kind: 'install', uid, aid: 'CAFE7A' }, t)).toMatchObject({ ok: true, recorded: true });
    await cms.deps.domain!.cards.transition(uid, 'active');

    // the backend's view: key 3 (role tmac) delivered to a verifier, the TMAC key derived from it
    const be = await s.enrolled('tmac-backend', [{ tenantId: 'kiosk-net', aid: 'CAFE7A', keyNo: 3, operations: ['deliver'] }]);
    const bc = be.ks.certificates();
    const bcms = new CmsClient({ url: s.url, ca: bc.ca, servername: 'localhost' }, { key: be.ks.tlsKeyPem(), cert: bc.cert });
    const d = await new HttpKeySource(bcms).fetch({ tenant: 'kiosk-net', aid: 'CAFE7A', uid, keyNo: 3 });
    const k3 = await new ReaderUnsealer('tmac-backend', be.ks.privateKey).unseal(d.sealed, d.binding);
    const tmk = deriveTmacKey(k3);

    // the TMAC file is there (free read of TMC || TMV, not itself MAC'd)
    const dc = new DesfireClient(t);
    await dc.selectApplication(0xcafe7a);
    expect(await dc.readTransactionMac(2, { comm: 'plain' })).toEqual({ tmc: 0, tmv: new Uint8Array(8) });
    // a till's transaction (GetValue with the debit key 1), committed with TMC/TMV returned
    const till = await s.enrolled('tmac-till', [{ tenantId: 'kiosk-net', aid: 'CAFE7A', keyNo: 1, operations: ['deliver'] }]);
    const tc = till.ks.certificates();
    const tcms = new CmsClient({ url: s.url, ca: tc.ca, servername: 'localhost' }, { key: till.ks.tlsKeyPem(), cert: tc.cert });
    const d1 = await new HttpKeySource(tcms).fetch({ tenant: 'kiosk-net', aid: 'CAFE7A', uid, keyNo: 1 });
    const k1 = await new ReaderUnsealer('tmac-till', till.ks.privateKey).unseal(d1.sealed, d1.binding);
    await dc.selectApplication(0xcafe7a);
    await dc.authenticate(1, k1, { method: 'ev2' });
    expect(await dc.getValue(1, { comm: 'full' })).toBe(0);
    const r = await dc.commitTransactionWithMac();
    expect(r.tmc).toBe(1);
    const tmi = tmiEntry(0x6c, Uint8Array.of(1, 0, 0, 0, 0));
    expect(toHex(r.tmv)).toBe(toHex(transactionMacValue(tmk, card.uid, 0, tmi)));
    expect(await dc.readTransactionMac(2, { comm: 'plain' })).toEqual(r);
    jobs.close();
    agent.close();
    http.close();
    bcms.close();
    tcms.close();
  }, 120_000);
});

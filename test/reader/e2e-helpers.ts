// Shared by the end-to-end reader tests: a whole CMS with station jobs and online key delivery
// attached, over HTTPS + mTLS; readers registered, granted roles and enrolled through the reader
// keystore; a campus card personalised through station jobs (H's executor) with a credential
// written by a badge-office reader using a key delivered online. Consent is enforced (the CMS
// default): each tenant's admin grants standing install/rotate/delete authorisations in the setup.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { type RunningServer, startServer } from '../../src/cms/api/server.js';
import { type CmsApp, buildCmsApp } from '../../src/cms/app.js';
import { loadConfig, resolveSecrets } from '../../src/cms/config/index.js';
import { attachStation } from '../../src/cms/jobs/module.js';
import { parseLayout } from '../../src/cms/layout/index.js';
import { createEnrolmentCode } from '../../src/cms/pki/enrolment.js';
import { DesfireClient } from '../../src/core/client/client.js';
import { ReaderUnsealer } from '../../src/custody/sealed.js';
import { CmsClient, enrol } from '../../src/reader/cms-client.js';
import { HttpKeySource } from '../../src/reader/http-keys.js';
import { ReaderKeystore } from '../../src/reader/keystore.js';
import { CmsClient as StationHttp, StationClient } from '../../src/reader/station/index.js';
import { encodeCredential } from '../../src/reader/transactions.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { grantStandingConsent } from '../helpers/consent.js';

export const PASS = 'e2e reader passphrase';

export interface StationCms {
  cms: CmsApp;
  server: RunningServer;
  url: string;
  enrolled(id: string, roles: { tenantId: string; aid: string; keyNo: number; operations: string[] }[]): Promise<{ dir: string; ks: ReaderKeystore; passFile: string }>;
  /** A campus card (access application, credential for zones 1 and 3) personalised through station jobs; active. `randomUid`: issued with random UID (default: fixed). */
  personalisedCard(opts?: { randomUid?: boolean }): Promise<{ card: VirtualCard; uid: string }>;
  close(): Promise<void>;
}

/** `log`: receive the CMS's log lines at info level (default: warn, discarded); `layout`: the campus layout's YAML (default: examples/campus.yaml). */
/** `readerRequests`: the per-reader rate limit per window (default: the configuration's, 6,000 a minute). */
export async function startStationCms(opts: { log?: (line: string) => void; layout?: string; readerRequests?: number } = {}): Promise<StationCms> {
  const env = { DESFIRE_CMS_HTTP_PORT: '0', DESFIRE_VAULT_PASSPHRASE: 'e2e vault passphrase 0123' };
  const { config } = loadConfig({ env, overrides: { dataDir: mkdtempSync(join(tmpdir(), 'e2e-cms-')) } });
  config.logging.level = opts.log ? 'info' : 'warn';
  if (opts.readerRequests !== undefined) config.limits.readerRequests = opts.readerRequests;
  const cms = await buildCmsApp(config, resolveSecrets(config, env), { logDestination: new Writable({ write: (c: Buffer, _e, cb) => (opts.log?.(c.toString('utf8')), cb()) }) });
  await attachStation(cms);
  const server = await startServer(cms.deps, { host: '127.0.0.1', port: 0, ...(cms.tls ? { tls: cms.tls } : {}) });
  const url = `https://127.0.0.1:${server.port}`;
  await cms.deps.domain!.tenants.registerLayout(parseLayout(opts.layout ?? readFileSync('examples/campus.yaml', 'utf8'), 'campus.yaml'));
  await grantStandingConsent(server.app, cms.bootstrapToken ?? (await cms.deps.tokens.create({ label: 'e2e issuer', roles: ['issuer_admin'], tenants: ['*'], createdBy: null })).token);
  let n = 0;

  const enrolled: StationCms['enrolled'] = async (id, roles) => {
    const readers = cms.deps.domain!.readers;
    await readers.register(id, id);
    for (const r of roles) await readers.grantRole({ readerId: id, ...r } as Parameters<typeof readers.grantRole>[0]);
    const { code } = await createEnrolmentCode(cms.deps.pki!.codes, { readerId: id, createdBy: 'test' });
    const dir = mkdtempSync(join(tmpdir(), `e2e-${id}-`));
    const ks = ReaderKeystore.create(dir, new TextEncoder().encode(PASS), { N: 1 << 12, r: 8, p: 1 });
    const r = await enrol({ url, ca: cms.ca!.certificatePem, servername: 'localhost' }, await ks.csr(id), code);
    ks.saveCertificates(r.certificate, r.caCertificate);
    const passFile = join(mkdtempSync(join(tmpdir(), 'e2e-pass-')), 'passphrase');
    writeFileSync(passFile, PASS, { mode: 0o600 });
    return { dir, ks, passFile };
  };

  const out: StationCms = {
    cms,
    server,
    url,
    enrolled,
    async personalisedCard({ randomUid = false } = {}) {
      n++;
      const st = await enrolled(`station-${n}`, [{ tenantId: 'access', aid: 'A1C001', keyNo: 0, operations: ['issue', 'install'] }]);
      const c = st.ks.certificates();
      const scms = new StationHttp({ host: '127.0.0.1', port: server.port, ca: c.ca, cert: c.cert, key: st.ks.tlsKeyPem(), servername: 'localhost' });
      const card = VirtualCard.create();
      const t = new InProcessTransport(card);
      const station = new StationClient(scms, { readerId: `station-${n}`, privateKey: st.ks.privateKey });
      const p = await station.personalise(t, ['A1C001'], { randomUid });
      scms.close();
      if (!p.runs.every((r) => r.recorded)) throw new Error('personalisation not recorded');
      await cms.deps.domain!.cards.transition(p.uid, 'active');
      // badge office: the credential, written with key 2 delivered online
      const office = await enrolled(`office-${n}`, [{ tenantId: 'access', aid: 'A1C001', keyNo: 2, operations: ['deliver'] }]);
      const oc = office.ks.certificates();
      const ocms = new CmsClient({ url, ca: oc.ca, servername: 'localhost' }, { key: office.ks.tlsKeyPem(), cert: oc.cert });
      const d = await new HttpKeySource(ocms).fetch({ tenant: 'access', aid: 'A1C001', uid: p.uid, keyNo: 2 });
      const k2 = await new ReaderUnsealer(`office-${n}`, office.ks.privateKey).unseal(d.sealed, d.binding);
      const dc = new DesfireClient(t);
      await dc.selectApplication(0xa1c001);
      await dc.authenticate(2, k2, { method: 'ev2' });
      const now = Math.floor(Date.now() / 1000);
      await dc.writeData(1, 0, encodeCredential({ version: 1, blocked: false, zones: 0b1010, validFrom: now - 60, validUntil: now + 3600, holder: new TextEncoder().encode('staff-0000000007') }), { comm: 'full' });
      k2.fill(0);
      ocms.close();
      card.reset();
      return { card, uid: p.uid };
    },
    async close() {
      await out.server.close(); // the current one (a test may have restarted it)
      await cms.close();
    },
  };
  return out;
}

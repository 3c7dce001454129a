// `desfire-cms demo`: the whole story in one process, on embedded defaults. Each step checks its
// expected outcome and throws DemoStepError when the system did something else (a cross-tenant
// attempt that succeeds is a failure, not a curiosity); the first failure ends the run and the
// command exits 1. Steps whose pieces are not in this build are left out and said so — never faked.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualCard } from '../../card/virtual-card.js';
import { DesfireClient } from '../../core/client/client.js';
import { CardStatusError } from '../../core/protocol/status.js';
import type { Transport } from '../../core/transport.js';
import { parseLayout } from '../../cms/layout/index.js';
import { applicationsOf, type Layout } from '../../cms/layout/types.js';
import { ReaderError } from '../../reader/errors.js';
import { CAMPUS as CAMPUS_TX, accessCheck, encodeCredential, libraryLoan, purseDebit, type TxResult } from '../../reader/transactions.js';
import { StationClient } from '../../reader/station/client.js';
import { InProcessTransport } from '../../transport/in-process.js';
import type { CliIO } from '../io.js';
import { DemoCms, type DemoRole, type EnrolledReader } from './cms.js';
import { type FieldReader, TRANSIT, openFieldReader, transitRide } from './fleet.js';
import { declareReaderCompromised } from './compromise.js';
import { rotateTenantKey } from './rotation.js';
import { PcscStation, pcscUnavailable, vpcdSlot } from './pcsc.js';
import type { ProgressSink } from './progress.js';

export class DemoStepError extends Error {
  readonly code = 'ERR_DEMO_STEP';
  constructor(message: string) {
    super(message);
    this.name = 'DemoStepError';
  }
}

function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new DemoStepError(message);
}

export interface DemoOptions {
  cards: number;
  keep: boolean;
  pcsc: boolean;
  /** Cards worked on at once (default 4). */
  concurrency?: number;
}

export interface StepRecord {
  title: string;
  status: 'ok' | 'failed' | 'left out';
  detail: string;
  /** Wall time of the step. */
  ms: number;
}

export interface DemoReport {
  ok: boolean;
  steps: StepRecord[];
  summary: [string, string][];
  dataDir: string;
  kept: boolean;
}

interface DemoCard {
  card: VirtualCard;
  t: Transport;
  uid: string;
}

const OFFLINE_TTL_MS = 10 * 60_000;

/** Where examples/ is, from src/cli/demo (tsx) or dist/cli/demo (built): both three levels down. */
function campusYaml(): string {
  return readFileSync(new URL('../../../examples/campus.yaml', import.meta.url), 'utf8');
}

/** Run `fn` over `items` with at most `n` in flight (cards are independent; the CMS and readers are concurrent). */
async function pool<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
}

const isCardRefusal = (e: unknown) => e instanceof CardStatusError && (e.status === 0xae || e.status === 0x9d);

export async function runDemo(opts: DemoOptions, io: CliIO, progress: ProgressSink): Promise<DemoReport> {
  const steps: StepRecord[] = [];
  const conc = opts.concurrency ?? 4;
  /** AID → tenant, from the layout. */
  const TENANT_OF: Record<string, string> = {};
  const dataDir = mkdtempSync(join(tmpdir(), 'desfire-cms-demo-'));
  const vaultPassphrase = randomBytes(24).toString('base64url');
  const readerPass = new Uint8Array(randomBytes(24));
  const counts = {
    cards: 0,
    apps: 0,
    keys: 0,
    readers: 0,
    jobs: 0,
    tx: { access: 0, purse: 0, loan: 0, transit: 0, offline: 0 },
    refusedCms: 0,
    refusedCard: 0,
    refusedOffline: 0,
    refusedRevoked: 0,
    rotation: 'not run',
    compromise: 'not run',
    auditEntries: 0,
    auditLive: 'not run',
    auditExport: 'not run',
  };
  let cms: DemoCms | undefined;
  const field: FieldReader[] = [];
  const cards: DemoCard[] = [];
  let failed = false;

  const step = async (title: string, total: number, fn: () => Promise<string>): Promise<boolean> => {
    if (failed) return false;
    progress.begin(title, total);
    const t0 = performance.now();
    try {
      const detail = await fn();
      progress.end(true, detail);
      steps.push({ title, status: 'ok', detail, ms: performance.now() - t0 });
      return true;
    } catch (e) {
      const err = e as { code?: string; message?: string };
      const detail = `${err.code && err.code !== 'ERR_DEMO_STEP' ? `${err.code}: ` : ''}${err.message ?? String(e)}`;
      progress.end(false, detail);
      steps.push({ title, status: 'failed', detail, ms: performance.now() - t0 });
      failed = true;
      return false;
    }
  };
  let layout: Layout | undefined;
  const readers: Record<string, EnrolledReader> = {};
  const byId = (id: string) => field.find((f) => f.id === id)!;

  try {
    await step('start the CMS (SQLite, embedded vault, memory sessions, HTTPS + mTLS)', 0, async () => {
      cms = await DemoCms.start(dataDir, vaultPassphrase, readerPass);
      const h = await cms.op('GET', '/readyz');
      check(h.status === 200, `health: HTTP ${h.status}`);
      return `${cms.url} (data ${dataDir})`;
    });

    await step('load examples/campus.yaml', 0, async () => {
      const text = campusYaml();
      layout = parseLayout(text, 'campus.yaml');
      for (const t of layout.tenants) for (const a of t.applications) TENANT_OF[a.aid] = t.id;
      const r = await cms!.op('POST', '/v1/layouts', text, 'application/yaml');
      check(r.status === 201, `layout upload: HTTP ${r.status} ${JSON.stringify(r.body?.error ?? r.body)}`);
      const tenants = await cms!.op('GET', '/v1/tenants');
      check(tenants.status === 200, `GET /v1/tenants: HTTP ${tenants.status}`);
      return `${layout.tenants.length} tenants, ${applicationsOf(layout).length} applications (${applicationsOf(layout).map((a) => a.aid).join(', ')})`;
    });

    await step("tenants authorise the issuer (each tenant's own admin grants install and rotate; the issuer cannot grant itself)", 0, async () => {
      let granted = 0;
      for (const t of layout!.tenants) {
        const tenantAdmin = await cms!.tenantAdminToken(t.id);
        for (const a of t.applications) {
          const body = (operation: string) => ({ tenant: t.id, aid: a.aid, operation, profile: '*', ttlSeconds: 24 * 3600 });
          const self = await cms!.op('POST', '/v1/authorisations', body('install'));
          check(self.status === 403, `the issuer granting itself ${t.id}/${a.aid}: HTTP ${self.status} (must be 403)`);
          for (const operation of ['install', 'rotate']) {
            const r = await cms!.op('POST', '/v1/authorisations', body(operation), undefined, tenantAdmin);
            check(r.status === 201, `${t.id} grants ${operation} on ${a.aid}: HTTP ${r.status} ${JSON.stringify(r.body?.error ?? r.body)}`);
            granted++;
          }
        }
      }
      return `${granted} standing authorisations (install, rotate; every card profile; 24 h), each granted by the tenant's own admin; the issuer's self-grant refused (403)`;
    });

    const aids = layout ? applicationsOf(layout).map((a) => a.aid) : [];
    const keysPerCard = layout ? 1 + applicationsOf(layout).reduce((n, a) => n + a.keys.length, 0) : 0;
    const role = (aid: string, keyNo: number, operations: string[]): DemoRole => ({ tenantId: TENANT_OF[aid]!, aid, keyNo, operations });
    const RUNTIME: { id: string; roles: DemoRole[] }[] = [
      { id: 'door-1', roles: [role(CAMPUS_TX.access.aid, 1, ['deliver', 'offline'])] },
      { id: 'till-1', roles: [role(CAMPUS_TX.purse.aid, 1, ['deliver', 'offline'])] },
      { id: 'desk-1', roles: [role(CAMPUS_TX.library.aid, 1, ['deliver', 'offline']), role(CAMPUS_TX.library.aid, 2, ['deliver', 'offline'])] },
      { id: 'validator-1', roles: [role(TRANSIT.aid, 1, ['deliver', 'offline'])] },
    ];

    await step('enrol readers (CSR + one-time code over the API; mTLS certificates from the CMS CA)', 2 + RUNTIME.length, async () => {
      readers['station-1'] = await cms!.enrolReader('station-1', aids.map((aid, i) => role(aid, 0, i === 0 ? ['install', 'issue'] : ['install'])));
      progress.tick();
      // the badge office writes credentials (access key 2); the top-up kiosk credits purses (cafeteria key 2)
      readers['office-1'] = await cms!.enrolReader('office-1', [role(CAMPUS_TX.access.aid, 2, ['deliver'])]);
      readers['kiosk-1'] = await cms!.enrolReader('kiosk-1', [role(CAMPUS_TX.purse.aid, 2, ['deliver'])]);
      progress.tick();
      for (const r of RUNTIME) {
        readers[r.id] = await cms!.enrolReader(r.id, r.roles);
        progress.tick();
      }
      for (const id of ['office-1', 'kiosk-1', ...RUNTIME.map((r) => r.id)]) field.push(await openFieldReader(cms!, readers[id]!));
      counts.readers = Object.keys(readers).length;
      return `${counts.readers} readers: station-1 (issue/install), office-1, kiosk-1, ${RUNTIME.map((r) => r.id).join(', ')}`;
    });

    await step(`issue ${opts.cards} virtual cards through station-1 (station jobs, sealed keys, tokens, receipts)`, opts.cards, async () => {
      const L = layout!;
      const picc = { keySettings: { ...L.picc.keySettings } as unknown as Record<string, boolean>, randomUid: L.picc.randomUid };
      let via = '';
      const keyHashes = new Set<string>();
      const keyIds = new Set<string>();
      const stationCms = cms!.stationClient(readers['station-1']!);
      const station = new StationClient(stationCms, {
        readerId: 'station-1',
        privateKey: readers['station-1']!.keystore.privateKey,
        onKey: (b, k) => {
          // distinctness check only: a digest in memory, never printed
          const id = `${b.uid}/${b.aid}/${b.keyNo}`;
          if (!keyIds.has(id)) {
            keyIds.add(id);
            keyHashes.add(createHash('sha256').update(k).digest('hex'));
          }
        },
      });
      let pcsc: PcscStation | undefined;
      if (opts.pcsc) {
        const slot = vpcdSlot(io.env);
        const why = pcscUnavailable(slot.port);
        check(!why, `--pcsc: ${why}`);
        pcsc = await PcscStation.open(slot);
        via = ` via PC/SC (pcsclite → pcscd → vpcd ${slot.host}:${slot.port}, reader '${slot.reader}')`;
      }
      try {
        // one card in the PC/SC reader at a time; in-process cards in parallel
        await pool(Array.from({ length: opts.cards }, (_, i) => i), pcsc ? 1 : conc, async () => {
          {
            const card = VirtualCard.create();
            const t = new InProcessTransport(card);
            const p = pcsc ? await pcsc.withCard(card, (pt) => station.personalise(pt, aids, picc)) : await station.personalise(t, aids, picc);
            const bad = p.runs.find((r) => !r.ok || !r.recorded);
            check(!bad && p.runs.length === aids.length + 1, `card ${p.uid}: a station job did not complete (${p.runs.map((r) => `${r.ok}/${r.recorded}`).join(' ')})`);
            const got = await cms!.op('GET', `/v1/cards/${p.uid}`);
            check(got.status === 200 && got.body.card.state === 'issued', `card ${p.uid} is not recorded as issued`);
            check(got.body.applications.length === aids.length, `card ${p.uid}: ${got.body.applications.length} applications recorded, expected ${aids.length}`);
            await cms!.app.deps.domain!.cards.transition(p.uid, 'active');
            cards.push({ card, t, uid: p.uid });
            counts.jobs += p.runs.length;
            progress.tick();
          }
        });
      } finally {
        stationCms.close();
        await pcsc?.close();
      }
      counts.cards = cards.length;
      counts.apps = cards.length * aids.length;
      counts.keys = keyIds.size;
      check(keyIds.size === cards.length * keysPerCard, `${keyIds.size} card keys installed, expected ${cards.length * keysPerCard}`);
      check(keyHashes.size === keyIds.size, 'two card keys are equal: keys must be distinct per card, AID and key number');
      return `${cards.length} cards active, ${counts.apps} applications, ${counts.keys} distinct card keys, ${counts.jobs} station jobs completed with signed receipts${via}`;
    });

    await step('badge office writes credentials, top-up kiosk credits purses (keys delivered sealed to each reader)', cards.length, async () => {
      const office = byId('office-1').agent;
      const kiosk = byId('kiosk-1').agent;
      const now = Math.floor(Date.now() / 1000);
      await pool(cards, conc, async (c, i) => {
        const dc = new DesfireClient(c.t);
        await dc.selectApplication(parseInt(CAMPUS_TX.access.aid, 16));
        const k2 = await office.obtainKey(c.uid, CAMPUS_TX.access.aid, 2);
        await dc.authenticate(2, k2.key, { method: 'ev2' });
        k2.key.fill(0);
        const holder = new TextEncoder().encode(`student-${String(i).padStart(8, '0')}`);
        // zones 0..3, valid for a day
        await dc.writeData(1, 0, encodeCredential({ version: 1, blocked: false, zones: 0x000f, validFrom: now - 3600, validUntil: now + 86400, holder }), { comm: 'full' });
        office.record({ cardUid: c.uid, aid: CAMPUS_TX.access.aid, keyNo: 2, keyVersion: k2.version, op: 'credential-write', result: 'ok' });
        await dc.selectApplication(parseInt(CAMPUS_TX.purse.aid, 16));
        const kc = await kiosk.obtainKey(c.uid, CAMPUS_TX.purse.aid, 2);
        await dc.authenticate(2, kc.key, { method: 'ev2' });
        kc.key.fill(0);
        await dc.credit(1, 2000, { comm: 'full' });
        await dc.commitTransaction();
        kiosk.record({ cardUid: c.uid, aid: CAMPUS_TX.purse.aid, keyNo: 2, keyVersion: kc.version, op: 'purse-credit', result: 'ok:2000' });
        progress.tick();
      });
      await office.sync();
      await kiosk.sync();
      return `${cards.length} credentials written, ${cards.length} purses credited 20.00`;
    });

    const txOne = async (c: DemoCard, i: number): Promise<TxResult[]> => {
      const out: TxResult[] = [];
      out.push(await accessCheck(byId('door-1').agent, c.t, { uid: c.uid, zone: 1 }));
      out.push(await purseDebit(byId('till-1').agent, c.t, 250, { uid: c.uid }));
      out.push(await libraryLoan(byId('desk-1').agent, c.t, new TextEncoder().encode(`book${String(i).padStart(4, '0')}`), { uid: c.uid }));
      const trip = new Uint8Array(32);
      new DataView(trip.buffer).setUint32(0, Math.floor(Date.now() / 1000));
      trip.set(new TextEncoder().encode('line-7 stop-12'), 4);
      out.push(await transitRide(byId('validator-1').agent, c.t, c.uid, trip));
      return out;
    };

    await step("runtime transactions through each tenant's reader (access, purse debit, library loan, transit ride)", cards.length, async () => {
      await pool(cards, conc, async (c, i) => {
        const [acc, pur, loan, ride] = await txOne(c, i);
        check(acc!.result === 'granted' && acc!.mode === 'online', `card ${c.uid}: access ${acc!.result}`);
        check(pur!.result === 'ok:250:1750', `card ${c.uid}: purse ${pur!.result}`);
        check(loan!.result === 'ok:loan:1', `card ${c.uid}: loan ${loan!.result}`);
        check(ride!.result === 'ok:ride', `card ${c.uid}: transit ${ride!.result}`);
        counts.tx.access++;
        counts.tx.purse++;
        counts.tx.loan++;
        counts.tx.transit++;
        progress.tick();
      });
      for (const f of field) await f.agent.sync();
      const baton = await cms!.app.deps.domain!.db.selectFrom('reader_baton').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
      return `${cards.length * 4} transactions ok (online keys, EV2 sessions); ${Number(baton?.n ?? 0)} baton entries synced to the CMS`;
    });

    await step('cross-tenant attempts: refused by the CMS (403) and by the card', cards.length, async () => {
      const RT = [
        { id: 'door-1', aid: CAMPUS_TX.access.aid, keyNo: 1, file: 1, read: (d: DesfireClient) => d.readData(1, 0, 32, { comm: 'plain' }) },
        { id: 'till-1', aid: CAMPUS_TX.purse.aid, keyNo: 1, file: 1, read: (d: DesfireClient) => d.getValue(1, { comm: 'plain' }) },
        { id: 'desk-1', aid: CAMPUS_TX.library.aid, keyNo: 1, file: 1, read: (d: DesfireClient) => d.readRecords(1, 0, 1, { comm: 'plain', recordSize: 16 }) },
        { id: 'validator-1', aid: TRANSIT.aid, keyNo: 1, file: 1, read: (d: DesfireClient) => d.readData(1, 0, 32, { comm: 'plain' }) },
      ];
      await pool(cards, conc, async (c, i) => {
        for (const [j, r] of RT.entries()) {
          const fr = byId(r.id);
          const other = RT[(j + 1 + (i % 3)) % RT.length]!;
          // the CMS: this reader has no role on the other tenant's application
          const res = await fr.cms.raw<{ error?: { code?: string } }>('POST', '/v1/keys/deliver', { uid: c.uid, aid: other.aid, keyNo: other.keyNo });
          check(res.status === 403, `CMS delivered ${other.aid} key ${other.keyNo} of card ${c.uid} to ${r.id} (HTTP ${res.status})`);
          counts.refusedCms++;
          // the card: the reader's own key does not open the other application…
          const k = await fr.agent.obtainKey(c.uid, r.aid, r.keyNo);
          const dc = new DesfireClient(c.t);
          await dc.selectApplication(parseInt(other.aid, 16));
          const e1 = await dc.authenticate(other.keyNo, k.key, { method: 'ev2' }).then(
            () => undefined,
            (e: unknown) => e,
          );
          k.key.fill(0);
          check(isCardRefusal(e1), `card ${c.uid} accepted ${r.id}'s key on ${other.aid}`);
          counts.refusedCard++;
          // …and its files cannot be read without authentication
          const fresh = new DesfireClient(c.t);
          await fresh.selectApplication(parseInt(other.aid, 16));
          const e2 = await (other.read(fresh) as Promise<unknown>).then(
            () => undefined,
            (e: unknown) => e,
          );
          check(isCardRefusal(e2), `card ${c.uid}: file ${other.file} of ${other.aid} read without authentication (${(e2 as Error | undefined)?.message ?? 'no error'})`);
          counts.refusedCard++;
        }
        progress.tick();
      });
      const events = cms!.events.events.filter((e) => e.op === 'key_delivery' && e.outcome === 'refused').length;
      check(events >= counts.refusedCms, `only ${events} refused deliveries audited for ${counts.refusedCms} refusals`);
      return `${counts.refusedCms} key requests refused by the CMS (403, audited), ${counts.refusedCard} card operations refused by the cards (0xAE/0x9D)`;
    });

    await step('CMS offline: readers work from their offline cache until the TTL, then refuse', 4, async () => {
      const door = byId('door-1');
      const sample = cards.slice(0, Math.min(cards.length, 5));
      for (const c of sample) check((await accessCheck(door.agent, c.t, { uid: c.uid, zone: 1 })).mode === 'online', 'door-1 is not online before the outage');
      await cms!.goOffline();
      progress.tick();
      for (const c of sample) {
        const r = await accessCheck(door.agent, c.t, { uid: c.uid, zone: 1 });
        check(r.mode === 'offline' && r.result === 'granted', `offline at t+0: ${r.mode} ${r.result}`);
        counts.tx.offline++;
      }
      progress.tick();
      // time machine: 9 minutes later, still inside the 10-minute TTL
      door.skewMs = OFFLINE_TTL_MS - 60_000;
      for (const c of sample) {
        const r = await accessCheck(door.agent, c.t, { uid: c.uid, zone: 1 });
        check(r.mode === 'offline' && r.result === 'granted', `offline at t+9min: ${r.mode} ${r.result}`);
        counts.tx.offline++;
      }
      progress.tick();
      // 11 minutes: past the TTL, the cache is wiped and every card is refused
      door.skewMs = OFFLINE_TTL_MS + 60_000;
      for (const c of sample) {
        const e = await accessCheck(door.agent, c.t, { uid: c.uid, zone: 1 }).then(
          () => undefined,
          (x: unknown) => x,
        );
        check(e instanceof ReaderError && e.code === 'ERR_READER_OFFLINE_EXPIRED', `offline at t+11min: expected ERR_READER_OFFLINE_EXPIRED, got ${(e as { code?: string })?.code ?? 'success'}`);
        counts.refusedOffline++;
      }
      await cms!.listen();
      door.skewMs = 0;
      const back = await accessCheck(door.agent, sample[0]!.t, { uid: sample[0]!.uid, zone: 1 });
      check(back.mode === 'online' && back.result === 'granted', `after the CMS is back: ${back.mode} ${back.result}`);
      await door.agent.sync();
      progress.tick();
      return `${counts.tx.offline} offline access checks granted (t+0, t+9 min), ${counts.refusedOffline} refused at t+11 min (ERR_READER_OFFLINE_EXPIRED); online again after restart`;
    });

    await step('rotate the access tenant\'s application master key (A1C001 key 0) with a campaign (API + campaign runner)', cards.length, async () => {
      const k = { tenantId: TENANT_OF[CAMPUS_TX.access.aid]!, aid: CAMPUS_TX.access.aid, keyNo: 0 };
      let last = 0;
      const r = await rotateTenantKey(cms!, k, cards, (n) => {
        progress.tick(n - last);
        last = n;
      });
      const c = r.campaign;
      counts.rotation = `${k.tenantId}/${k.aid}/key ${k.keyNo}: v${c.fromVersion} -> v${c.toVersion}, ${r.done}/${c.cardCount} cards, campaign ${c.state}`;
      check(r.failed === 0 && r.done === cards.length, `campaign: ${r.done} done, ${r.failed} failed of ${cards.length}`);
      check(c.state === 'completed', `campaign is ${c.state}, expected completed`);
      check(r.cardVersions.every((v) => v === c.toVersion), `cards report key versions ${[...new Set(r.cardVersions)].join(',')}, expected ${c.toVersion}`);
      const rows = await cms!.app.deps.domain!.db.selectFrom('card_keys').select('key_version').where('aid', '=', k.aid).where('key_no', '=', k.keyNo).execute();
      check(rows.length === cards.length && rows.every((x) => Number(x.key_version) === c.toVersion), 'the CMS mapping of card key versions does not match the cards');
      // the door readers' key (key 1) did not change: access checks still granted online
      const after = await accessCheck(byId('door-1').agent, cards[0]!.t, { uid: cards[0]!.uid, zone: 1 });
      check(after.result === 'granted', `access after the rotation: ${after.result}`);
      return `planned, started and completed over the API; ${r.done} cards rotated v${c.fromVersion} -> v${c.toVersion} (verified by authentication), old version retired`;
    });
    await step('declare till-1 compromised over the API: revoked, blast radius from the audit log, campaigns proposed', 0, async () => {
      const till = byId('till-1');
      const { report, states } = await declareReaderCompromised(cms!, 'till-1');
      check(report.revoked, 'till-1 was not revoked');
      const purse = report.keys.filter((k) => k.aid === CAMPUS_TX.purse.aid && k.keyNo === 1);
      check(report.keys.length > 0 && report.keys.every((k) => k.aid === CAMPUS_TX.purse.aid && k.keyNo === 1), `blast radius names keys outside till-1's role: ${report.keys.map((k) => `${k.aid}/${k.keyNo}`).join(', ')}`);
      const uids = new Set(purse.flatMap((k) => k.uids));
      check(uids.size === cards.length && cards.every((c) => uids.has(c.uid)), `blast radius covers ${uids.size} cards, expected the ${cards.length} the till served`);
      const proposed = report.campaigns.filter((c) => c.campaignId);
      check(proposed.length === 1 && proposed[0]!.cards === cards.length, `proposed campaigns: ${JSON.stringify(report.campaigns)}`);
      check(states.every((s) => s === 'awaiting_approval'), `proposed campaigns are ${states.join(',')}, expected awaiting_approval`);
      // the till learns it on its next contact: refused, offline cache wiped, agent stopped
      const e = await purseDebit(till.agent, cards[0]!.t, 100, { uid: cards[0]!.uid }).then(
        () => undefined,
        (x: unknown) => x,
      );
      check(e instanceof ReaderError && (e.code === 'ERR_READER_REVOKED' || e.code === 'ERR_READER_STOPPED'), `revoked till-1 still debits (${(e as { code?: string })?.code ?? 'success'})`);
      check(till.agent.cache.size === 0, 'the revoked reader kept offline keys');
      counts.refusedRevoked++;
      const deliveries = purse.reduce((n, k) => n + k.deliveries, 0);
      counts.compromise = `till-1 revoked; blast radius ${purse.map((k) => `${k.tenant}/${k.aid}/key ${k.keyNo} v${k.version}`).join(', ')} on ${uids.size} cards (${deliveries} deliveries); ${proposed.length} campaign proposed (awaiting approval)`;
      return `${counts.compromise}; the till's next debit refused (${(e as ReaderError).code}), its offline cache wiped`;
    });

    await step('verify the audit log (live database, then an export)', 2, async () => {
      const { main } = await import('../main.js');
      const lines: string[] = [];
      const cap: CliIO = { out: (l) => lines.push(l), err: () => undefined, env: {}, cwd: dataDir };
      const keyFile = join(dataDir, 'audit', 'audit-checkpoint.vkey');
      // quiesce the field first: background baton syncs finish (a revoked reader's is refused, and
      // that refusal is audited too), then the readers stop, so no entry lands after the checkpoint
      for (const f of field.splice(0)) {
        await f.agent.sync().catch(() => undefined);
        f.close();
      }
      // the operator asks the live CMS to sign a checkpoint over everything so far
      const cp = await cms!.op('POST', '/v1/audit/checkpoints', {});
      check(cp.status === 201, `POST /v1/audit/checkpoints: HTTP ${cp.status}`);
      const live = await main(['audit', 'verify', '--data-dir', dataDir, '--key-file', keyFile], cap);
      counts.auditLive = live === 0 ? 'OK' : 'FAILED';
      check(live === 0, `audit verify (live): ${lines.at(-1) ?? 'exit ' + live}`);
      const m = /(\d+) entries/.exec(lines.at(-1) ?? '');
      counts.auditEntries = m ? Number(m[1]) : 0;
      check(counts.auditEntries > 0, 'the audit log is empty');
      progress.tick();
      const out = join(dataDir, 'audit-export.jsonl');
      const ex = await main(['audit', 'export', '--data-dir', dataDir, '--key-dir', join(dataDir, 'audit'), '--out', out], cap);
      check(ex === 0, `audit export: exit ${ex}`);
      const fv = await main(['audit', 'verify', '--file', out, '--key-file', keyFile], cap);
      counts.auditExport = fv === 0 ? 'OK' : 'FAILED';
      check(fv === 0, `audit verify (export): ${lines.at(-1) ?? 'exit ' + fv}`);
      progress.tick();
      return `${counts.auditEntries} entries verified on the live database and on an export (${opts.keep ? out : 'audit-export.jsonl'})`;
    });
  } finally {
    for (const f of field) f.close();
    await cms?.close().catch(() => undefined);
    readerPass.fill(0);
  }

  // a failed run keeps its data for inspection (database, audit log, reader batons)
  const kept = opts.keep || failed;
  if (kept) writeFileSync(join(dataDir, 'vault-passphrase'), vaultPassphrase + '\n', { mode: 0o600 });
  else rmSync(dataDir, { recursive: true, force: true });

  const summary: [string, string][] = [
    ['cards', `${counts.cards} issued and active (virtual, random UID)`],
    ['applications', `${counts.apps} installed (${layout ? applicationsOf(layout).length : 0} per card, ${layout?.tenants.length ?? 0} tenants)`],
    ['keys', `${counts.keys} distinct card keys (diversified in custody, delivered sealed)`],
    ['readers', `${counts.readers} enrolled (mTLS)`],
    ['station jobs', `${counts.jobs} completed with signed receipts`],
    ['transactions', `${counts.tx.access} access, ${counts.tx.purse} purse, ${counts.tx.loan} loan, ${counts.tx.transit} transit online; ${counts.tx.offline} offline`],
    ['refusals', `${counts.refusedCms} by the CMS (403), ${counts.refusedCard} by the cards, ${counts.refusedOffline} offline past TTL, ${counts.refusedRevoked} revoked reader`],
    ['rotation', counts.rotation],
    ['compromise', counts.compromise],
    ['audit entries', String(counts.auditEntries)],
    ['verification', `live ${counts.auditLive}, export ${counts.auditExport}`],
    ['result', failed ? 'FAILED' : 'ok'],
  ];
  return { ok: !failed, steps, summary, dataDir, kept };
}

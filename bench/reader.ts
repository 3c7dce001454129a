// Reader agent runtime transactions per second, per reader, with an in-process virtual card:
// GET DATA (UID) + SelectApplication + EV2 authenticate + read the 32-byte credential (full mode)
// + decide. Three ways, in the same run:
//   card-only  the key already in hand: no agent (the baseline)
//   offline    the agent with the CMS unreachable: key from the in-memory cache (AES-GCM under the
//              local key), denylist check, baton entry appended and fsync'd
//   online     the agent with a real CMS over HTTPS + mTLS (in this process, station jobs and key
//              delivery attached): per transaction POST /v1/keys/deliver, unseal, the baton entry
//              (fdatasync'd) and its background sync to the CMS; card personalised by station jobs
// Figures: tx/s each, and what the agent adds per transaction (offline: mean; online: p99).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DesfireClient } from '../src/core/client/client.js';
import { ReaderUnsealer, generateReaderKeyPair } from '../src/custody/sealed.js';
import { type KeyDelivery, type OnlineKeySource, ReaderAgent } from '../src/reader/agent.js';
import { AuditBaton } from '../src/reader/baton.js';
import { CmsClient } from '../src/reader/cms-client.js';
import { ReaderError } from '../src/reader/errors.js';
import { accessCheck, decide, decodeCredential, readUid } from '../src/reader/transactions.js';
import { HttpKeySource } from '../src/reader/http-keys.js';
import { InProcessTransport } from '../src/transport/in-process.js';
import { startStationCms } from '../test/reader/e2e-helpers.js';
import { CAMPUS_ROLES, makeCard, SealingKeySource } from '../test/reader/fixture.js';
import { type BenchOptions, type Figure, percentile } from './types.js';

async function timeEach(n: number, fn: () => Promise<void>): Promise<{ perSec: number; mean: number; p99: number }> {
  for (let i = 0; i < Math.min(50, n); i++) await fn();
  const ms: number[] = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    await fn();
    ms.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  const total = Number(process.hrtime.bigint() - t0) / 1e9;
  ms.sort((x, y) => x - y);
  return { perSec: n / total, mean: ms.reduce((s, x) => s + x, 0) / n, p99: percentile(ms, 99) };
}

class Down implements OnlineKeySource {
  down = false;
  constructor(private readonly inner: OnlineKeySource) {}
  fetch(r: Parameters<OnlineKeySource['fetch']>[0]): Promise<KeyDelivery> {
    return this.down ? Promise.reject(new ReaderError('ERR_READER_CMS_UNREACHABLE', 'bench: offline')) : this.inner.fetch(r);
  }
}

export async function figures(opts: BenchOptions): Promise<Figure[]> {
  const n = opts.quick ? 300 : 2000;
  const card = await makeCard({ balance: 100 });
  const t = card.transport;
  const key = card.keys.A1C001![1]!;

  // card-only baseline
  const base = await timeEach(n, async () => {
    await readUid(t);
    const c = new DesfireClient(t);
    await c.selectApplication(0xa1c001);
    await c.authenticate(1, key, { method: 'ev2' });
    const d = await c.readData(1, 0, 32, { comm: 'full' });
    if (decide(decodeCredential(d), 0, Date.now()) !== 'granted') throw new Error('bench: not granted');
  });

  // offline: cache filled once, then the CMS is gone
  const kp = generateReaderKeyPair();
  const src = new Down(new SealingKeySource('bench-off', kp.publicKey, () => [card]));
  const offAgent = new ReaderAgent({ readerId: 'bench-off', roles: CAMPUS_ROLES, baton: AuditBaton.open(mkdtempSync(join(tmpdir(), 'bench-baton-'))), unsealer: new ReaderUnsealer('bench-off', kp.privateKey), keys: src });
  await accessCheck(offAgent, t);
  src.down = true;
  const off = await timeEach(n, async () => {
    const r = await accessCheck(offAgent, t);
    if (r.mode !== 'offline' || !r.ok) throw new Error('bench: offline tx failed');
  });
  offAgent.close();
  // the same without the baton's flush to disk (what the agent itself costs; NOT a durable mode)
  const src2 = new Down(new SealingKeySource('bench-off2', kp.publicKey, () => [card]));
  const kp2Agent = new ReaderAgent({ readerId: 'bench-off2', roles: CAMPUS_ROLES, baton: AuditBaton.open(mkdtempSync(join(tmpdir(), 'bench-baton-')), { fsync: false }), unsealer: new ReaderUnsealer('bench-off2', kp.privateKey), keys: src2 });
  src2.down = false;
  await accessCheck(kp2Agent, t);
  src2.down = true;
  const offNoFlush = await timeEach(n, async () => void (await accessCheck(kp2Agent, t)));
  kp2Agent.close();

  // online: the whole CMS (embedded: SQLite, sealed vault; station jobs + key delivery attached; log
  // level warn) over HTTPS + mTLS in this process; a card personalised through station jobs, the key
  // delivered by POST /v1/keys/deliver for every transaction
  const s = await startStationCms();
  let on: { perSec: number; mean: number; p99: number };
  let rtt: { perSec: number; mean: number; p99: number };
  let onBase: { perSec: number; mean: number; p99: number };
  try {
    const { card: sc, uid } = await s.personalisedCard();
    const st = new InProcessTransport(sc);
    const door = await s.enrolled('bench-on', [{ tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver', 'offline'] }]);
    const c = door.ks.certificates();
    const cms = new CmsClient({ url: s.url, ca: c.ca, servername: 'localhost' }, { key: door.ks.tlsKeyPem(), cert: c.cert });
    const keys = new HttpKeySource(cms);
    const onAgent = new ReaderAgent({ readerId: 'bench-on', roles: [{ tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver'] }], baton: AuditBaton.open(mkdtempSync(join(tmpdir(), 'bench-baton-'))), unsealer: new ReaderUnsealer('bench-on', door.ks.privateKey), keys, cms });
    // card-only on this card (same key, obtained once)
    const k = await onAgent.obtainKey(uid, 'A1C001', 1);
    const key1 = k.key.slice();
    onBase = await timeEach(Math.floor(n / 2), async () => {
      await readUid(st);
      const dc = new DesfireClient(st);
      await dc.selectApplication(0xa1c001);
      await dc.authenticate(1, key1, { method: 'ev2' });
      const d = await dc.readData(1, 0, 32, { comm: 'full' });
      if (decide(decodeCredential(d), 1, Date.now()) !== 'granted') throw new Error('bench: not granted');
    });
    rtt = await timeEach(Math.floor(n / 4), async () => void (await keys.fetch({ tenant: 'access', aid: 'A1C001', uid, keyNo: 1 })));
    on = await timeEach(Math.floor(n / 2), async () => {
      const r = await accessCheck(onAgent, st, { zone: 1 });
      if (r.mode !== 'online' || !r.ok) throw new Error('bench: online tx failed');
    });
    await onAgent.sync();
    onAgent.close();
    cms.close();
  } finally {
    await s.close();
  }

  const baseline = { name: 'reader.card_only_tx', value: base.perSec };
  const baseMs = { name: 'reader.card_only_tx', value: base.mean };
  return [
    { name: 'reader.card_only_tx', value: base.perSec, unit: 'tx/s', note: `EV2 auth + 32-byte full-mode read + decide, key in hand; mean ${base.mean.toFixed(3)} ms, p99 ${base.p99.toFixed(3)} ms` },
    { name: 'reader.offline_tx', value: off.perSec, unit: 'tx/s', baseline, note: `cache + denylist + baton fsync; mean ${off.mean.toFixed(3)} ms, p99 ${off.p99.toFixed(3)} ms` },
    { name: 'reader.online_tx', value: on!.perSec, unit: 'tx/s', baseline: { name: 'reader.card_only_tx (station card)', value: onBase!.perSec }, note: `key delivery (mTLS) + unseal + baton fdatasync + background sync; mean ${on!.mean.toFixed(3)} ms, p99 ${on!.p99.toFixed(3)} ms` },
    { name: 'reader.offline_added_ms', value: off.mean - base.mean, unit: 'ms', baseline: baseMs, target: { op: '<=', value: 1 }, note: 'mean offline tx time minus mean card-only time' },
    { name: 'reader.offline_added_ms_without_flush', value: offNoFlush.mean - base.mean, unit: 'ms', baseline: baseMs, note: 'diagnostic: the same with the baton fdatasync off (the agent itself; the rest is the disk flush)' },
    { name: 'reader.delivery_roundtrip_p99_ms', value: rtt!.p99, unit: 'ms', note: `diagnostic: one POST /v1/keys/deliver over mTLS (CMS-side checks, derive + seal) without the card; mean ${rtt!.mean.toFixed(3)} ms` },
    { name: 'reader.online_added_p99_ms', value: on!.p99 - onBase!.p99, unit: 'ms', baseline: { name: 'reader.card_only_tx_p99 (station card)', value: onBase!.p99 }, target: { op: '<=', value: 5 }, note: 'p99 online tx time minus p99 card-only time on the same card' },
  ];
}

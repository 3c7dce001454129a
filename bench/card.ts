// Virtual card throughput, host and card in one process.
//   card.ev2_full_read32          DesfireClient.readData of 32 bytes from a full-mode file in an
//                                 EV2 session (host wrap, ISO framing, card dispatch + SM, host
//                                 unwrap), through an in-memory Transport. Target >= 20,000/s.
//   card.ev2_full_read32_sync     the same exchange without the client's promise machinery
//                                 (HostSession.wrapCommand -> card.process -> unwrapResponse).
// Both re-authenticate every 50,000 commands (an EV2 session's CmdCtr ends at 65,535).
//   baseline card.plain_read32    the same ReadData without a session (plain), via the client.
import { VirtualCard } from '../src/card/index.js';
import { DesfireClient } from '../src/core/client/index.js';
import { wrapCommand } from '../src/core/protocol/apdu.js';
import type { Transport } from '../src/core/transport.js';
import type { BenchOptions, Figure } from './types.js';

// The machine is shared: besides wall-clock rates the figures count commands per CPU-second of
// this process (process.cpuUsage), which other processes' load barely disturbs.
interface Rate {
  wall: number;
  cpu: number;
}

async function measure(fn: () => unknown, ms: number): Promise<Rate> {
  for (let i = 0; i < 200; i++) await fn();
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(ms) * 1_000_000n;
  let now = t0;
  while (now < end) {
    for (let i = 0; i < 50; i++) await fn();
    n += 50;
    now = process.hrtime.bigint();
  }
  const c = process.cpuUsage(c0);
  return { wall: (n * 1e9) / Number(now - t0), cpu: (n * 1e6) / (c.user + c.system) };
}

const AID = 0x0000b1;
const KEY = new Uint8Array(16);

async function setup(): Promise<{ card: VirtualCard; client: DesfireClient }> {
  const card = VirtualCard.create({ profile: 'ev2' });
  const t: Transport = { transmit: async (a) => card.process(a) };
  const client = new DesfireClient(t);
  await client.createApplication({
    aid: AID,
    settings: { masterKeyChangeable: true, freeDirectoryList: true, freeCreateDelete: true, configurationChangeable: true, changeKeyAccess: 0 },
    keyCount: 2,
    keyType: 'aes',
    isoFileIds: false,
  });
  await client.selectApplication(AID);
  await client.createStdDataFile({ fileNo: 1, comm: 'full', access: { read: 1, write: 1, readWrite: 1, change: 0 }, fileSize: 32 });
  await client.createStdDataFile({ fileNo: 2, comm: 'plain', access: { read: 14, write: 14, readWrite: 14, change: 0 }, fileSize: 32 });
  return { card, client };
}

export async function figures(opts: BenchOptions): Promise<Figure[]> {
  const ms = opts.quick ? 600 : 2500;

  const plain = await setup();
  const base = await measure(() => plain.client.readData(2, 0, 32, { comm: 'plain' }), ms);

  const { card, client } = await setup();
  await client.authenticate(1, KEY, { method: 'ev2' });
  // An EV2 session allows 65,535 commands (16-bit CmdCtr): re-authenticate well before that.
  let count = 0;
  const v = await measure(async () => {
    if (++count % 50_000 === 0) await client.authenticate(1, KEY, { method: 'ev2' });
    const d = await client.readData(1, 0, 32, { comm: 'full' });
    if (d.length !== 32) throw new Error('bad read');
  }, ms);

  await client.authenticate(1, KEY, { method: 'ev2' });
  let session = client.session!;
  count = 0;
  const header = Uint8Array.of(1, 0, 0, 0, 32, 0, 0);
  const empty = new Uint8Array(0);
  const sync = await measure(async () => {
    if (++count % 50_000 === 0) {
      await client.authenticate(1, KEY, { method: 'ev2' });
      session = client.session!;
    }
    const payload = session.wrapCommand(0xbd, header, empty, 'full');
    const r = card.process(wrapCommand(0xbd, payload));
    const d = session.unwrapResponse(0xbd, r[r.length - 1]!, r.subarray(0, r.length - 2), 'full', 32);
    if (d.length !== 32) throw new Error('bad read');
  }, ms);

  const target = { op: '>=' as const, value: 20000 };
  return [
    {
      name: 'card.ev2_full_read32',
      value: v.cpu,
      unit: 'commands/cpu-s',
      baseline: { name: 'card.plain_read32', value: base.cpu },
      target,
      note: 'DesfireClient, EV2 session, full mode, 32 bytes; per CPU-second',
    },
    { name: 'card.ev2_full_read32_wall', value: v.wall, unit: 'commands/s', baseline: { name: 'card.plain_read32_wall', value: base.wall }, note: 'wall clock (shared machine)' },
    { name: 'card.ev2_full_read32_sync', value: sync.cpu, unit: 'commands/cpu-s', baseline: { name: 'card.plain_read32', value: base.cpu }, target, note: 'HostSession + card.process, no promises' },
  ];
}

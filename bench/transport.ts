// Transport benchmarks: the round trip of one APDU through the whole PC/SC stack
// (pcsclite → pcscd → vpcd → bridge → virtual card and back) with TCP quick-ACK on and off, and a
// whole GetVersion (3 APDUs) through the host library; the same APDU through the in-process
// transport is the baseline, measured in the same run. The PC/SC figures are skipped with a note
// when pcscd (with the vpcd driver) is not running. Set DESFIRE_BENCH_VPCD=HOST:PORT to use
// another vpcd slot (default 127.0.0.1:35963, reader "Virtual PCD 00 00").
import { existsSync, readFileSync } from 'node:fs';
import { VirtualCard } from '../src/card/virtual-card.js';
import { DesfireClient } from '../src/core/client/index.js';
import type { Transport } from '../src/core/transport.js';
import { InProcessTransport } from '../src/transport/in-process.js';
import { PcscContext } from '../src/transport/pcsc.js';
import { PcscFrontEnd } from '../src/transport/pcsc-frontend.js';
import { VpcdBridge, parseHostPort } from '../src/transport/vpcd-bridge.js';
import { type BenchOptions, type Figure, percentile } from './types.js';

// GetFreeMemory: a 1-byte native command, one APDU each way, no state change.
const APDU = Uint8Array.of(0x90, 0x6e, 0x00, 0x00, 0x00);

async function rtts(t: Transport, n: number, warm = 20): Promise<number[]> {
  for (let i = 0; i < warm; i++) await t.transmit(APDU);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    const r = await t.transmit(APDU);
    out.push(Number(process.hrtime.bigint() - s) / 1e6);
    if (r[r.length - 2] !== 0x91 || r[r.length - 1] !== 0x00) throw new Error('GetFreeMemory failed');
  }
  return out.sort((a, b) => a - b);
}

function vpcdListening(port: number): string | undefined {
  if (!existsSync('/run/pcscd/pcscd.comm')) return 'pcscd is not running';
  if (!existsSync('/proc/net/tcp')) return undefined;
  const hp = port.toString(16).toUpperCase().padStart(4, '0');
  const re = new RegExp(`^\\s*\\d+: [0-9A-F]{8}:${hp} [0-9A-F]{8}:0000 0A `, 'im');
  return re.test(readFileSync('/proc/net/tcp', 'utf8')) ? undefined : `vpcd is not listening on port ${port}`;
}

/** Attach a fresh card to vpcd, connect through pcsclite, run `fn`, detach. */
async function overPcsc<T>(host: string, port: number, quickAck: boolean, fn: (t: Transport) => Promise<T>): Promise<T> {
  const slot = port - 35963;
  const reader = `Virtual PCD 00 ${String(slot).padStart(2, '0')}`;
  const bridge = await VpcdBridge.start({ frontEnd: new PcscFrontEnd(VirtualCard.create()), host, port, quickAck });
  const ctx = await PcscContext.open();
  try {
    await bridge.waitConnected(10_000);
    await ctx.waitForCard(reader, 20_000);
    const t = await ctx.connect(reader, { protocol: 'T1' });
    try {
      return await fn(t);
    } finally {
      await t.close('reset');
    }
  } finally {
    await ctx.close();
    await bridge.stop();
    // Let pcscd notice the card left before the next attach.
    await new Promise((r) => setTimeout(r, 300));
  }
}

export async function figures(opts: BenchOptions): Promise<Figure[]> {
  const n = opts.quick ? 300 : 3000;
  const inproc = await rtts(new InProcessTransport(VirtualCard.create()), n * 5, 200);
  const base50 = { name: 'transport.inprocess_apdu_rtt_p50', value: percentile(inproc, 50) };
  const base99 = { name: 'transport.inprocess_apdu_rtt_p99', value: percentile(inproc, 99) };
  const figs: Figure[] = [
    { name: base50.name, value: base50.value, unit: 'ms', note: 'GetFreeMemory through InProcessTransport + PcscFrontEnd' },
    { name: base99.name, value: base99.value, unit: 'ms' },
  ];
  const { host, port } = parseHostPort(process.env.DESFIRE_BENCH_VPCD ?? '127.0.0.1:35963');
  const missing = vpcdListening(port);
  if (missing) {
    const note = `skipped: ${missing}`;
    for (const name of ['transport.pcsc_apdu_rtt_p50', 'transport.pcsc_apdu_rtt_p99']) figs.push({ name, value: NaN, unit: 'ms', note });
    return figs;
  }
  const pcsc = await overPcsc(host, port, true, (t) => rtts(t, n));
  figs.push(
    { name: 'transport.pcsc_apdu_rtt_p50', value: percentile(pcsc, 50), unit: 'ms', baseline: base50, target: { op: '<=', value: 2 }, note: 'pcsclite → pcscd → vpcd → bridge → card, TCP quick-ACK on' },
    { name: 'transport.pcsc_apdu_rtt_p99', value: percentile(pcsc, 99), unit: 'ms', baseline: base99 },
  );
  const gv = await overPcsc(host, port, true, async (t) => {
    const c = new DesfireClient(t);
    for (let i = 0; i < 10; i++) await c.getVersion();
    const out: number[] = [];
    for (let i = 0; i < Math.max(50, n / 10); i++) {
      const s = process.hrtime.bigint();
      await c.getVersion();
      out.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    return out.sort((a, b) => a - b);
  });
  figs.push({ name: 'transport.pcsc_getversion_p50', value: percentile(gv, 50), unit: 'ms', note: 'DesfireClient.getVersion (3 APDUs) over PC/SC' });
  figs.push({ name: 'transport.pcsc_getversion_p99', value: percentile(gv, 99), unit: 'ms' });
  // Without quick-ACK every APDU waits for the delayed ACK: a few samples show it.
  const slow = await overPcsc(host, port, false, (t) => rtts(t, 20, 3));
  figs.push({
    name: 'transport.pcsc_apdu_rtt_p50_no_quickack',
    value: percentile(slow, 50),
    unit: 'ms',
    baseline: { name: 'transport.pcsc_apdu_rtt_p50', value: percentile(pcsc, 50) },
    note: 'the same with TCP_QUICKACK off (delayed ACK)',
  });
  return figs;
}

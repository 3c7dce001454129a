// `demo --pcsc`: the station reaches each card through the real PC/SC stack — the virtual card is
// attached to vpcd (vsmartcard's virtual reader driver in pcscd) by the same bridge `desfire-cms
// card serve` runs, and the station talks to it through pcsclite like to any contactless reader.
import { existsSync, readFileSync } from 'node:fs';
import type { VirtualCard } from '../../card/virtual-card.js';
import type { Transport } from '../../core/transport.js';
import { PcscFrontEnd } from '../../transport/pcsc-frontend.js';
import { PcscContext } from '../../transport/pcsc.js';
import { VpcdBridge, parseHostPort } from '../../transport/vpcd-bridge.js';

/** vpcd slot (HOST:PORT) and the PC/SC reader name it shows: slot 0 unless DESFIRE_DEMO_VPCD says otherwise. */
export function vpcdSlot(env: NodeJS.ProcessEnv): { host: string; port: number; reader: string } {
  const { host, port } = parseHostPort(env.DESFIRE_DEMO_VPCD ?? '127.0.0.1:35963');
  const slot = port - 35963;
  return { host, port, reader: env.DESFIRE_DEMO_PCSC_READER ?? `Virtual PCD 00 ${String(Math.max(0, slot)).padStart(2, '0')}` };
}

/** Why the PC/SC path cannot run here, or undefined when pcscd and a vpcd slot are present. */
export function pcscUnavailable(port: number): string | undefined {
  if (!existsSync('/run/pcscd/pcscd.comm')) return 'pcscd is not running (no /run/pcscd/pcscd.comm)';
  if (existsSync('/proc/net/tcp')) {
    const hex = port.toString(16).toUpperCase().padStart(4, '0');
    const listening = ['/proc/net/tcp', '/proc/net/tcp6'].some((f) => existsSync(f) && new RegExp(`^\\s*\\d+: [0-9A-F]+:${hex} [0-9A-F]+:0000 0A `, 'im').test(readFileSync(f, 'utf8')));
    if (!listening) return `no vpcd listens on TCP port ${port} (pcscd without the vpcd driver?)`;
  }
  return undefined;
}

export class PcscStation {
  private constructor(
    private readonly ctx: PcscContext,
    private readonly slot: { host: string; port: number; reader: string },
  ) {}

  static async open(slot: { host: string; port: number; reader: string }): Promise<PcscStation> {
    return new PcscStation(await PcscContext.open(), slot);
  }

  /** Put `card` in the reader, run `fn` on the PC/SC transport, take the card out again. */
  async withCard<T>(card: VirtualCard, fn: (t: Transport) => Promise<T>): Promise<T> {
    const bridge = await VpcdBridge.start({ frontEnd: new PcscFrontEnd(card), host: this.slot.host, port: this.slot.port });
    try {
      await bridge.waitConnected(10_000);
      const state = await this.ctx.waitForCard(this.slot.reader, 15_000);
      const t = await this.ctx.connect(state.name);
      try {
        return await fn(t);
      } finally {
        await t.close().catch(() => undefined);
      }
    } finally {
      await bridge.stop();
      await this.ctx.waitForRemoval(this.slot.reader, 10_000).catch(() => undefined);
    }
  }

  close(): Promise<void> {
    return this.ctx.close();
  }
}

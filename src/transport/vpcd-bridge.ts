// The vpcd bridge: attaches a virtual card to vsmartcard's vpcd driver inside pcscd, so the
// operating system sees a reader ("Virtual PCD 00 00") with the card in it. vpcd is the TCP server
// (127.0.0.1:35963 for slot 0); the card side connects to it as a client, answers GET ATR with a
// PC/SC part 3 contactless ATR, power/reset control codes with a card reset, and APDUs through the
// PcscFrontEnd (GET DATA UID answered here, everything else by the card).
// When vpcd goes away (pcscd restarted or stopped) the card leaves the field (reset) and the
// bridge reconnects until it is stopped.
import { createConnection, type Socket } from 'node:net';
import { TransportError } from './errors.js';
import type { PcscFrontEnd } from './pcsc-frontend.js';
import { loadQuickAck, quickAckUnavailableReason, type QuickAck } from './quickack.js';
import { FrameDecoder, VPCD_DEFAULT_PORT, VpcdControl, classify, encodeFrame } from './vpcd-protocol.js';

export type BridgeEvent =
  | { type: 'connected'; host: string; port: number; quickAck: boolean }
  | { type: 'disconnected'; reason: string }
  | { type: 'connect-failed'; reason: string }
  | { type: 'control'; code: number }
  | { type: 'apdu'; command: Uint8Array; response: Uint8Array }
  | { type: 'error'; error: Error };

export interface VpcdBridgeOptions {
  frontEnd: PcscFrontEnd;
  host?: string;
  port?: number;
  /** Set TCP_QUICKACK on the socket (default true; see quickack.ts). */
  quickAck?: boolean;
  /** Delay before reconnecting after vpcd went away or refused (default 250 ms, doubling to 2 s). */
  reconnectDelayMs?: number;
  /**
   * Called after each APDU the card processed and before its response is sent (e.g. save the
   * card image when its state changed, so an answered command is a persisted one).
   */
  afterCommand?: () => void | Promise<void>;
  onEvent?: (e: BridgeEvent) => void;
  /**
   * Delay each answer by the card's latency model estimate (`card.lastLatencyMs`, see
   * src/card/latency.ts) so PC/SC clients see real-card timings. Off by default.
   */
  latency?: boolean;
}

export interface BridgeStats {
  connects: number;
  apdus: number;
  controls: number;
}

/** Parse "HOST:PORT" (or ":PORT", or "HOST"); the port defaults to vpcd's 35963. */
export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*))(?::(\d{1,5}))?$/.exec(s.trim());
  if (!m) throw new TransportError('ERR_VPCD_CONNECT', `not HOST:PORT: '${s}'`);
  const host = m[1] ?? (m[2] || '127.0.0.1');
  const port = m[3] === undefined ? VPCD_DEFAULT_PORT : Number(m[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TransportError('ERR_VPCD_CONNECT', `bad port in '${s}'`);
  return { host, port };
}

export class VpcdBridge {
  readonly host: string;
  readonly port: number;
  readonly stats: BridgeStats = { connects: 0, apdus: 0, controls: 0 };
  private socket: Socket | undefined;
  private stopped = false;
  private quickAck: QuickAck | undefined;
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private waiters: Array<() => void> = [];
  private failedSinceConnect = false;
  private delay: { timer: NodeJS.Timeout; done: () => void } | undefined;

  private constructor(private readonly opts: VpcdBridgeOptions) {
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? VPCD_DEFAULT_PORT;
    this.retryMs = opts.reconnectDelayMs ?? 250;
  }

  /** Start connecting (and reconnecting) to vpcd; resolves at once, see waitConnected(). */
  static async start(opts: VpcdBridgeOptions): Promise<VpcdBridge> {
    const b = new VpcdBridge(opts);
    if (opts.quickAck ?? true) {
      b.quickAck = await loadQuickAck();
      if (!b.quickAck) b.emit({ type: 'error', error: new Error(`TCP quick-ACK off: ${quickAckUnavailableReason()}`) });
    }
    b.connect();
    return b;
  }

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.connecting && !this.socket.destroyed;
  }

  get quickAckEnabled(): boolean {
    return this.quickAck !== undefined;
  }

  /** Resolves when connected to vpcd; rejects with ERR_VPCD_CONNECT after timeoutMs. */
  waitConnected(timeoutMs = 10_000): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        reject(new TransportError('ERR_VPCD_CONNECT', `no vpcd at ${this.host}:${this.port} after ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        resolve();
      };
      this.waiters.push(done);
    });
  }

  /** Take the card out of the reader for good: close the connection and stop reconnecting. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.delay) {
      clearTimeout(this.delay.timer);
      this.delay.done();
    }
    const s = this.socket;
    this.socket = undefined;
    if (s && !s.destroyed) {
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.destroy();
      });
    }
    await this.chain.catch(() => undefined);
  }

  /** A latency-model delay that stop() cuts short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.delay = undefined;
        resolve();
      };
      this.delay = { timer: setTimeout(done, ms), done };
    });
  }

  private emit(e: BridgeEvent): void {
    this.opts.onEvent?.(e);
  }

  private connect(): void {
    if (this.stopped) return;
    const s = createConnection({ host: this.host, port: this.port });
    this.socket = s;
    s.setNoDelay(true);
    const decoder = new FrameDecoder();
    s.once('connect', () => {
      this.stats.connects++;
      this.retryMs = this.opts.reconnectDelayMs ?? 250;
      this.failedSinceConnect = false;
      this.quickAck?.(s);
      this.emit({ type: 'connected', host: this.host, port: this.port, quickAck: this.quickAckEnabled });
      const ws = this.waiters;
      this.waiters = [];
      for (const w of ws) w();
    });
    s.on('data', (chunk: Buffer) => {
      // Linux clears TCP_QUICKACK after it sends an ACK: re-arm on every read.
      this.quickAck?.(s);
      let payloads: Uint8Array[];
      try {
        payloads = decoder.push(chunk);
      } catch (e) {
        this.emit({ type: 'error', error: e as Error });
        s.destroy();
        return;
      }
      for (const p of payloads) this.chain = this.chain.then(() => this.handle(s, p));
    });
    let wasConnected = false;
    s.once('connect', () => (wasConnected = true));
    s.on('error', (e) => {
      if (!wasConnected) {
        if (!this.failedSinceConnect) this.emit({ type: 'connect-failed', reason: e.message });
        this.failedSinceConnect = true;
      } else this.emit({ type: 'disconnected', reason: e.message });
    });
    s.once('close', () => {
      if (wasConnected) {
        // The card left the field: a power loss for it.
        this.opts.frontEnd.reset();
        if (!this.stopped) this.emit({ type: 'disconnected', reason: 'vpcd closed the connection' });
      }
      if (this.socket === s) this.socket = undefined;
      if (this.stopped) return;
      const delay = this.retryMs;
      this.retryMs = Math.min(this.retryMs * 2, 2000);
      this.retryTimer = setTimeout(() => this.connect(), delay);
    });
  }

  private async handle(s: Socket, payload: Uint8Array): Promise<void> {
    if (s.destroyed) return;
    let msg;
    try {
      msg = classify(payload);
    } catch (e) {
      this.emit({ type: 'error', error: e as Error });
      return;
    }
    const fe = this.opts.frontEnd;
    if (msg.kind === 'control') {
      this.stats.controls++;
      this.emit({ type: 'control', code: msg.code });
      switch (msg.code) {
        case VpcdControl.POWER_OFF:
        case VpcdControl.POWER_ON:
        case VpcdControl.RESET:
          fe.reset();
          return;
        case VpcdControl.GET_ATR:
          s.write(encodeFrame(fe.atr));
          return;
        default:
          // Unknown control code: vpcd expects no answer to control codes other than GET ATR.
          return;
      }
    }
    this.stats.apdus++;
    const response = fe.transmit(msg.apdu);
    if (this.opts.afterCommand) {
      try {
        await this.opts.afterCommand();
      } catch (e) {
        this.emit({ type: 'error', error: e as Error });
      }
    }
    const ms = this.opts.latency ? (fe.card.lastLatencyMs ?? 0) : 0;
    if (ms > 0) await this.sleep(ms);
    this.emit({ type: 'apdu', command: msg.apdu, response });
    if (!s.destroyed) s.write(encodeFrame(response));
  }
}

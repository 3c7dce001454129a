// PC/SC transport through the optional `pcsclite` package (libpcsclite + a running pcscd): list
// readers, wait for a card to be inserted or removed, connect (T=1 or any protocol), transmit,
// disconnect. `pcsclite` is a native driver: it is loaded lazily, only here, and its absence (or
// pcscd's) is a typed TransportError, not a crash.
import type PcscLiteFactory from 'pcsclite';
import type { Transport } from '../core/transport.js';
import { TransportError, checkApdu } from './errors.js';

type PcscLite = ReturnType<typeof PcscLiteFactory>;
type CardReader = Parameters<Parameters<PcscLite['on']>[1]>[0] & { name: string };

export interface ReaderState {
  name: string;
  present: boolean;
  atr?: Uint8Array;
}

export interface ConnectOptions {
  /** 'T1' (the contactless protocol, default) or 'any' (T=0 or T=1, whatever the card gives). */
  protocol?: 'T1' | 'any';
  /** Shared access (default) lets pcsc_scan & co. look at the reader at the same time. */
  share?: 'shared' | 'exclusive';
}

const PRESENT = 0x20; // SCARD_STATE_PRESENT
const MAX_RESPONSE = 65538;

let factory: Promise<typeof PcscLiteFactory> | undefined;

async function loadPcscLite(): Promise<typeof PcscLiteFactory> {
  factory ??= (async () => {
    try {
      const m = (await import('pcsclite')) as unknown as { default: typeof PcscLiteFactory };
      return m.default;
    } catch (e) {
      factory = undefined;
      throw new TransportError('ERR_PCSC_UNAVAILABLE', `the optional 'pcsclite' module cannot be loaded (install libpcsclite-dev and rebuild it): ${(e as Error).message}`, { cause: e });
    }
  })();
  return factory;
}

/** Map a pcsclite failure (its message carries the PC/SC return code) to a typed TransportError. */
export function pcscError(e: unknown, what: string): TransportError {
  if (e instanceof TransportError) return e;
  const msg = (e as Error)?.message ?? String(e);
  if (/0x8010001D|Service not available|No such file/i.test(msg)) return new TransportError('ERR_PCSC_NO_SERVICE', `pcscd is not running (${what}: ${msg})`, { cause: e });
  if (/0x8010000C|No smart card|0x80100069|removed/i.test(msg)) return new TransportError('ERR_PCSC_NO_CARD', `no card in the reader (${what}: ${msg})`, { cause: e });
  if (/0x80100009|Unknown reader|0x80100017|unavailable/i.test(msg)) return new TransportError('ERR_PCSC_NO_READER', `reader not available (${what}: ${msg})`, { cause: e });
  return new TransportError('ERR_PCSC_IO', `${what}: ${msg}`, { cause: e });
}

/**
 * One PC/SC context: the readers pcscd knows and their card state, kept current by pcsclite's
 * monitoring threads. Close it when done, or the process will not exit.
 */
export class PcscContext {
  private readonly states = new Map<string, ReaderState>();
  private readonly readers = new Map<string, CardReader>();
  private listeners = new Set<() => void>();
  private closed = false;
  private lastError: Error | undefined;

  private constructor(private readonly pcsc: PcscLite) {
    pcsc.on('reader', (r) => {
      const reader = r as CardReader;
      this.readers.set(reader.name, reader);
      this.states.set(reader.name, { name: reader.name, present: false });
      reader.on('status', (st) => {
        const present = (st.state & PRESENT) !== 0;
        const s: ReaderState = { name: reader.name, present };
        if (present && st.atr && st.atr.length) s.atr = Uint8Array.from(st.atr);
        this.states.set(reader.name, s);
        this.notify();
      });
      reader.on('error', (e) => {
        this.lastError = e as Error;
        this.notify();
      });
      reader.on('end', () => {
        this.readers.delete(reader.name);
        this.states.delete(reader.name);
        this.notify();
      });
      this.notify();
    });
    pcsc.on('error', (e) => {
      this.lastError = e as Error;
      this.notify();
    });
  }

  /** Open a context: ERR_PCSC_UNAVAILABLE without pcsclite, ERR_PCSC_NO_SERVICE without pcscd. */
  static async open(): Promise<PcscContext> {
    const make = await loadPcscLite();
    let p: PcscLite;
    try {
      p = make();
    } catch (e) {
      throw pcscError(e, 'SCardEstablishContext');
    }
    const ctx = new PcscContext(p);
    // pcsclite reports its readers asynchronously; give it one turn to list what is there.
    await ctx.settle(200);
    if (ctx.lastError && ctx.readers.size === 0) {
      const err = pcscError(ctx.lastError, 'SCardListReaders');
      // "no readers" is not an error of the context.
      if (err.code !== 'ERR_PCSC_NO_READER') {
        await ctx.close();
        throw err;
      }
    }
    return ctx;
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  private settle(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
  }

  /** Wait until `pred` holds (checked on every change), or fail with ERR_PCSC_TIMEOUT. */
  private until<T>(pred: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const now = pred();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = pred();
        if (v !== undefined) {
          cleanup();
          resolve(v);
        }
      };
      const t = setTimeout(() => {
        cleanup();
        reject(new TransportError('ERR_PCSC_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(t);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
    });
  }

  /** Readers pcscd knows now, with their card state. */
  listReaders(): ReaderState[] {
    return [...this.states.values()].map((s) => ({ ...s }));
  }

  /** Wait until a reader whose name contains `match` (any reader when omitted) appears. */
  waitForReader(match?: string | RegExp, timeoutMs = 10_000): Promise<ReaderState> {
    return this.until(() => this.find(match), timeoutMs, `a reader${match ? ` matching ${String(match)}` : ''}`);
  }

  /** Wait until a card is present in a matching reader; resolves with that reader's state (ATR). */
  waitForCard(match?: string | RegExp, timeoutMs = 10_000): Promise<ReaderState> {
    return this.until(() => this.find(match, (s) => s.present), timeoutMs, `a card${match ? ` in ${String(match)}` : ''}`);
  }

  /** Wait until the card has left the named reader (or the reader itself is gone). */
  async waitForRemoval(reader: string, timeoutMs = 10_000): Promise<void> {
    await this.until(() => (this.states.get(reader)?.present ? undefined : true), timeoutMs, `removal of the card in ${reader}`);
  }

  private find(match: string | RegExp | undefined, extra: (s: ReaderState) => boolean = () => true): ReaderState | undefined {
    for (const s of this.states.values()) {
      const ok = match === undefined || (typeof match === 'string' ? s.name.includes(match) : match.test(s.name));
      if (ok && extra(s)) return { ...s };
    }
    return undefined;
  }

  /** Connect to the card in `reader` (exact name). */
  async connect(reader: string, opts: ConnectOptions = {}): Promise<PcscTransport> {
    if (this.closed) throw new TransportError('ERR_TRANSPORT_CLOSED', 'PC/SC context is closed');
    const r = this.readers.get(reader);
    if (!r) throw new TransportError('ERR_PCSC_NO_READER', `no reader named '${reader}'`);
    const protocolMask = opts.protocol === 'any' ? r.SCARD_PROTOCOL_T0 | r.SCARD_PROTOCOL_T1 : r.SCARD_PROTOCOL_T1;
    const share = opts.share === 'exclusive' ? r.SCARD_SHARE_EXCLUSIVE : r.SCARD_SHARE_SHARED;
    const protocol = await new Promise<number>((resolve, reject) => {
      r.connect({ share_mode: share, protocol: protocolMask }, (err, proto) => (err ? reject(pcscError(err, 'SCardConnect')) : resolve(proto)));
    });
    const atr = this.states.get(reader)?.atr ?? new Uint8Array(0);
    return new PcscTransport(r, reader, protocol, atr);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    for (const r of this.readers.values()) r.close();
    this.pcsc.close();
  }
}

/** A connected card in a PC/SC reader. */
export class PcscTransport implements Transport {
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly reader: CardReader,
    readonly readerName: string,
    /** The protocol pcscd negotiated (SCARD_PROTOCOL_T0 = 1, SCARD_PROTOCOL_T1 = 2). */
    readonly protocol: number,
    readonly atr: Uint8Array,
  ) {}

  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new TransportError('ERR_TRANSPORT_CLOSED', `PC/SC transport to '${this.readerName}' is closed`));
    try {
      checkApdu(apdu);
    } catch (e) {
      return Promise.reject(e);
    }
    // One APDU at a time per card, in order.
    const run = () =>
      new Promise<Uint8Array>((resolve, reject) => {
        this.reader.transmit(Buffer.from(apdu), MAX_RESPONSE, this.protocol, (err, data) =>
          err ? reject(pcscError(err, 'SCardTransmit')) : resolve(new Uint8Array(data.buffer, data.byteOffset, data.length)),
        );
      });
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Disconnect, leaving the card powered (default) or resetting it. */
  async close(disposition: 'leave' | 'reset' | 'unpower' = 'leave'): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    const r = this.reader;
    const d = disposition === 'reset' ? r.SCARD_RESET_CARD : disposition === 'unpower' ? r.SCARD_UNPOWER_CARD : r.SCARD_LEAVE_CARD;
    await new Promise<void>((resolve, reject) => r.disconnect(d, (err) => (err ? reject(pcscError(err, 'SCardDisconnect')) : resolve())));
  }
}

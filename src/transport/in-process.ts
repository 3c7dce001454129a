// The in-process transport: a Transport over a virtual card living in the same process, with
// the reader's PC/SC behaviour in front of it (ATR, GET DATA UID), so code written against a
// PC/SC reader sees the same thing here. Optionally sleeps for a latency model's delay so station
// benchmarks can see realistic timings; off by default.
import type { Transport } from '../core/transport.js';
import type { CardPort } from './card-port.js';
import { TransportError, checkApdu } from './errors.js';
import { PcscFrontEnd, type FrontEndOptions } from './pcsc-frontend.js';

/** Delay in milliseconds a real card+reader would take for this command/response. */
export type LatencyModel = (command: Uint8Array, response: Uint8Array) => number;

export interface InProcessOptions extends FrontEndOptions {
  /** Answer class-FF pseudo-APDUs like a PC/SC reader (default true). */
  pcsc?: boolean;
  /**
   * Optional delay per APDU, off by default: `true` sleeps for the card's own latency model
   * estimate (`card.lastLatencyMs`, e.g. its 106 or 848 kbit/s timing profile); a function
   * computes the delay itself.
   */
  latency?: boolean | LatencyModel;
}

export class InProcessTransport implements Transport {
  readonly frontEnd: PcscFrontEnd;
  private closed = false;
  private readonly pcsc: boolean;
  private readonly latency: LatencyModel | undefined;

  constructor(
    readonly card: CardPort,
    opts: InProcessOptions = {},
  ) {
    this.frontEnd = new PcscFrontEnd(card, opts);
    this.pcsc = opts.pcsc ?? true;
    this.latency = opts.latency === true ? () => card.lastLatencyMs ?? 0 : opts.latency || undefined;
  }

  /** The ATR a PC/SC reader would present for this card. */
  get atr(): Uint8Array {
    return this.frontEnd.atr;
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new TransportError('ERR_TRANSPORT_CLOSED', 'in-process transport is closed');
    checkApdu(apdu);
    const response = this.pcsc ? this.frontEnd.transmit(apdu) : this.card.process(apdu);
    if (this.latency) {
      const ms = this.latency(apdu, response);
      if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    }
    return response;
  }

  /** Take the card out of the field and put it back: a reset, as on a real reader. */
  async reconnect(): Promise<void> {
    this.card.reset();
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

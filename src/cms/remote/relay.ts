// The CMS side of remote mode: a Transport whose transmit() goes through a reader. The reader
// only relays: it polls the CMS for the next command APDU, sends it to the card, and posts the
// card's answer back; the CMS runs authentication and secure messaging itself, so no card key
// ever leaves it.
//
// One relay = one exchange at a time: transmit() publishes the APDU and waits for deliver();
// next() is what the HTTP side awaits (an APDU to send, or the end of the operation).
import type { Transport } from '../../core/transport.js';
import { JobError } from '../jobs/errors.js';

export type RelayEvent = { kind: 'apdu'; apdu: Uint8Array } | { kind: 'done'; result: unknown } | { kind: 'error'; code: string; message: string };

export class RelayTransport implements Transport {
  private pending: { resolve: (r: Uint8Array) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  private events: RelayEvent[] = [];
  private waiter: ((e: RelayEvent) => void) | undefined;
  private closed = false;
  /** APDUs relayed so far. */
  exchanges = 0;

  constructor(private readonly stepTimeoutMs = 15_000) {}

  /** Called by the operation (DesfireClient): waits for the reader to relay the answer. */
  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new JobError('ERR_REMOTE_STATE', 'remote session is closed'));
    if (this.pending) return Promise.reject(new JobError('ERR_REMOTE_STATE', 'one exchange at a time'));
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        this.closed = true;
        reject(new JobError('ERR_REMOTE_TIMEOUT', 'the reader did not relay the answer in time'));
      }, this.stepTimeoutMs);
      timer.unref?.();
      this.pending = { resolve, reject, timer };
      this.exchanges++;
      this.emit({ kind: 'apdu', apdu: Uint8Array.from(apdu) });
    });
  }

  /** The reader's answer to the last APDU. */
  deliver(response: Uint8Array): void {
    const p = this.pending;
    if (!p) throw new JobError('ERR_REMOTE_STATE', 'no command is waiting for an answer');
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve(Uint8Array.from(response));
  }

  get awaitingAnswer(): boolean {
    return this.pending !== undefined;
  }

  emit(e: RelayEvent): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w(e);
    } else this.events.push(e);
  }

  /** The next event for the reader (an APDU to relay, or the end). */
  next(): Promise<RelayEvent> {
    const e = this.events.shift();
    if (e) return Promise.resolve(e);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    const p = this.pending;
    if (p) {
      this.pending = undefined;
      clearTimeout(p.timer);
      p.reject(new JobError('ERR_REMOTE_STATE', 'remote session closed'));
    }
  }
}

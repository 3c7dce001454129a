// Transport errors: one class, a stable `code` per failure so callers (CLI, reader agent, tests)
// can switch on it. Messages name readers, hosts and status words, never key bytes.
import { DesfireError } from '../core/errors.js';

export type TransportErrorCode =
  /** The optional `pcsclite` module (or its libpcsclite) could not be loaded. */
  | 'ERR_PCSC_UNAVAILABLE'
  /** pcscd is not running / its socket is not reachable. */
  | 'ERR_PCSC_NO_SERVICE'
  /** No reader of that name (or no reader at all). */
  | 'ERR_PCSC_NO_READER'
  /** The reader has no card in it. */
  | 'ERR_PCSC_NO_CARD'
  /** Waiting for a reader/card insert/remove took longer than allowed. */
  | 'ERR_PCSC_TIMEOUT'
  /** SCardConnect / SCardTransmit / SCardDisconnect failed (message carries pcsc's text). */
  | 'ERR_PCSC_IO'
  /** transmit() after close(). */
  | 'ERR_TRANSPORT_CLOSED'
  /** An APDU that cannot be sent (empty, or longer than an extended APDU). */
  | 'ERR_TRANSPORT_APDU'
  /** A vpcd frame that breaks the protocol (e.g. a zero-length frame). */
  | 'ERR_VPCD_FRAME'
  /** The bridge could not reach vpcd. */
  | 'ERR_VPCD_CONNECT'
  /** An existing card image contradicts the UID or profile asked for. */
  | 'ERR_CARD_IMAGE_MISMATCH'
  /** Another live `card serve` process holds this image. */
  | 'ERR_CARD_IMAGE_LOCKED';

export class TransportError extends DesfireError {
  declare readonly code: TransportErrorCode;
  constructor(code: TransportErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message);
    if (options?.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
  }
}

/** The largest command APDU any transport accepts (extended length: 4 + 3 + 65535 + 2). */
export const MAX_APDU = 4 + 3 + 65535 + 2;

export function checkApdu(apdu: Uint8Array): void {
  if (!(apdu instanceof Uint8Array)) throw new TransportError('ERR_TRANSPORT_APDU', 'APDU must be a Uint8Array');
  if (apdu.length === 0) throw new TransportError('ERR_TRANSPORT_APDU', 'empty APDU');
  if (apdu.length > MAX_APDU) throw new TransportError('ERR_TRANSPORT_APDU', `APDU of ${apdu.length} bytes is too long`);
}

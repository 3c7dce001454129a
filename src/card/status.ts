// The status bytes the virtual card answers with, and the internal exception a command handler
// throws to answer one.
import { Status } from '../core/protocol/status.js';

/** The native status bytes (the one table is src/core/protocol/status.ts), plus OK for 0x00. */
export const ST = { ...Status, OK: Status.OPERATION_OK } as const;

/** Thrown inside the card by a command handler: the card answers `91 status`. */
export class CardFault extends Error {
  readonly code = 'ERR_CARD_FAULT';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'CardFault';
    this.status = status;
  }
}

export function fault(status: number, message: string): CardFault {
  return new CardFault(status, message);
}

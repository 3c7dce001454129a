// Native DESFire status bytes the virtual card answers with, and the internal exception a command
// handler throws to answer one. The host-side table with names and error codes lives in
// src/core/protocol (engineer A2); the card only needs the bytes.

export const ST = {
  OK: 0x00,
  NO_CHANGES: 0x0c,
  OUT_OF_EEPROM: 0x0e,
  ILLEGAL_COMMAND: 0x1c,
  INTEGRITY_ERROR: 0x1e,
  NO_SUCH_KEY: 0x40,
  LENGTH_ERROR: 0x7e,
  PERMISSION_DENIED: 0x9d,
  PARAMETER_ERROR: 0x9e,
  APPLICATION_NOT_FOUND: 0xa0,
  AUTHENTICATION_ERROR: 0xae,
  ADDITIONAL_FRAME: 0xaf,
  BOUNDARY_ERROR: 0xbe,
  COMMAND_ABORTED: 0xca,
  COUNT_ERROR: 0xce,
  DUPLICATE_ERROR: 0xde,
  MEMORY_ERROR: 0xee,
  FILE_NOT_FOUND: 0xf0,
} as const;

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

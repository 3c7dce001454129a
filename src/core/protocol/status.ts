// Every DESFire native status code, from one table, and the typed error that carries it.
// On the wire the status is SW2 of an ISO-wrapped response (`91 SW2`), or the first byte of a
// native response.

import { DesfireError } from '../errors.js';

/** The status table: name -> byte. Names are stable (they form the error codes). */
export const Status = {
  OPERATION_OK: 0x00,
  NO_CHANGES: 0x0c,
  OUT_OF_EEPROM: 0x0e,
  ILLEGAL_COMMAND: 0x1c,
  INTEGRITY_ERROR: 0x1e,
  NO_SUCH_KEY: 0x40,
  LENGTH_ERROR: 0x7e,
  PERMISSION_DENIED: 0x9d,
  PARAMETER_ERROR: 0x9e,
  APPLICATION_NOT_FOUND: 0xa0,
  APPLICATION_INTEGRITY_ERROR: 0xa1,
  AUTHENTICATION_ERROR: 0xae,
  ADDITIONAL_FRAME: 0xaf,
  BOUNDARY_ERROR: 0xbe,
  PICC_INTEGRITY_ERROR: 0xc1,
  COMMAND_ABORTED: 0xca,
  PICC_DISABLED: 0xcd,
  COUNT_ERROR: 0xce,
  DUPLICATE_ERROR: 0xde,
  MEMORY_ERROR: 0xee,
  FILE_NOT_FOUND: 0xf0,
  FILE_INTEGRITY_ERROR: 0xf1,
} as const;

export type StatusName = keyof typeof Status;

const DESCRIPTIONS: Record<StatusName, string> = {
  OPERATION_OK: 'successful operation',
  NO_CHANGES: 'no changes done to backup files',
  OUT_OF_EEPROM: 'insufficient NV memory to complete the command',
  ILLEGAL_COMMAND: 'command code not supported',
  INTEGRITY_ERROR: 'CRC or MAC does not match data, or padding bytes are invalid',
  NO_SUCH_KEY: 'invalid key number',
  LENGTH_ERROR: 'length of command string invalid',
  PERMISSION_DENIED: 'current configuration or status does not allow the command',
  PARAMETER_ERROR: 'value of the parameter(s) invalid',
  APPLICATION_NOT_FOUND: 'requested AID not present on the PICC',
  APPLICATION_INTEGRITY_ERROR: 'unrecoverable error within the application',
  AUTHENTICATION_ERROR: 'current authentication status does not allow the command',
  ADDITIONAL_FRAME: 'additional data frame is expected',
  BOUNDARY_ERROR: 'attempt to read/write beyond the limits of a file, record or value',
  PICC_INTEGRITY_ERROR: 'unrecoverable error within the PICC',
  COMMAND_ABORTED: 'previous command was not fully completed',
  PICC_DISABLED: 'PICC was disabled by an unrecoverable error',
  COUNT_ERROR: 'number of applications or files limited, no more can be created',
  DUPLICATE_ERROR: 'an application or file with that number already exists',
  MEMORY_ERROR: 'could not complete the NV write operation',
  FILE_NOT_FOUND: 'specified file number does not exist',
  FILE_INTEGRITY_ERROR: 'unrecoverable error within the file',
};

const BY_BYTE = new Map<number, StatusName>(
  (Object.entries(Status) as [StatusName, number][]).map(([name, code]) => [code, name]),
);

/** The name of a status byte, or undefined for a byte that is not a DESFire status. */
export function statusName(status: number): StatusName | undefined {
  return BY_BYTE.get(status);
}

/** Human description of a status byte. */
export function statusDescription(status: number): string {
  const name = BY_BYTE.get(status);
  return name ? DESCRIPTIONS[name] : 'unknown status';
}

/** True for the statuses that end a command successfully or continue it (00, AF). */
export function isSuccessStatus(status: number): boolean {
  return status === Status.OPERATION_OK || status === Status.ADDITIONAL_FRAME;
}

function hex2(b: number): string {
  return b.toString(16).toUpperCase().padStart(2, '0');
}

/**
 * A card answered with an error status. `status` is the native byte, `statusName` its table name
 * (`UNKNOWN` when the byte is not a DESFire status), `code` is `ERR_CARD_<statusName>`.
 * The card side throws it too (`CardStatusError.of('PERMISSION_DENIED')`) to answer with that status.
 */
export class CardStatusError extends DesfireError {
  readonly status: number;
  readonly statusName: StatusName | 'UNKNOWN';
  /** The command byte that was answered with this status, when known. */
  readonly ins: number | undefined;

  constructor(status: number, ins?: number, detail?: string) {
    if (!Number.isInteger(status) || status < 0 || status > 0xff) {
      throw new RangeError('status must be a byte');
    }
    const name = BY_BYTE.get(status) ?? 'UNKNOWN';
    const where = ins === undefined ? '' : ` (command ${hex2(ins)})`;
    const extra = detail ? `: ${detail}` : '';
    super(`ERR_CARD_${name}`, `card status ${hex2(status)} ${name}${where}${extra}`);
    this.status = status;
    this.statusName = name;
    this.ins = ins;
  }

  /** Build the error for a status name (card side: `throw CardStatusError.of('BOUNDARY_ERROR')`). */
  static of(name: StatusName, detail?: string): CardStatusError {
    return new CardStatusError(Status[name], undefined, detail);
  }
}

/** Throw CardStatusError unless `status` is OPERATION_OK (or ADDITIONAL_FRAME when allowed). */
export function checkStatus(status: number, ins?: number, allowAdditionalFrame = false): void {
  if (status === Status.OPERATION_OK) return;
  if (allowAdditionalFrame && status === Status.ADDITIONAL_FRAME) return;
  throw new CardStatusError(status, ins);
}

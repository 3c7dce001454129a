// Errors of the protocol layer beyond the core ones (FrameError for malformed bytes lives in
// ../errors.ts). ValueRangeError: a caller asked to encode a value the protocol cannot carry
// (file number 40, a 4-byte AID, a key count of 15...). Nothing is sent when it is thrown.

import { DesfireError } from '../errors.js';

export class ValueRangeError extends DesfireError {
  /** The name of the offending field, e.g. `fileNo`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super('ERR_VALUE_RANGE', `${field}: ${message}`);
    this.field = field;
  }
}

/** Check an integer field; throws ValueRangeError naming the field. */
export function checkInt(field: string, v: number, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ValueRangeError(field, `must be an integer in ${min}..${max}`);
  }
  return v;
}

/** Check a byte-array field's length; throws ValueRangeError naming the field. */
export function checkBytes(field: string, v: Uint8Array, min: number, max = min): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length < min || v.length > max) {
    const want = min === max ? `${min}` : `${min}..${max}`;
    throw new ValueRangeError(field, `must be ${want} bytes`);
  }
  return v;
}

// ISO 7816-4 wrapping of DESFire native commands (CLA 0x90) and its strict inverse, for both
// sides: the host builds command APDUs and parses responses; the card parses command APDUs and
// builds responses.
//
//   command:  90 INS 00 00 [Lc data] 00      (Lc 1..255; no Lc/data when there is no data)
//   response: data 91 SW2                    (SW2 = the native DESFire status)

import { FrameError } from '../errors.js';
import { Status } from './status.js';
import { checkInt } from './errors.js';
import { copyBytes } from './codecs/reader.js';

export const DESFIRE_CLA = 0x90;
export const SW1_DESFIRE = 0x91;
/** Largest Lc of a short APDU. */
export const MAX_SHORT_LC = 255;

export interface NativeFrame {
  /** Native command byte (host → card) */
  readonly ins: number;
  /** Command data after INS (may be empty). */
  readonly data: Uint8Array;
}

export interface ResponseFrame {
  /** Native status byte (SW2). */
  readonly status: number;
  /** Response data of this frame (may be empty). */
  readonly data: Uint8Array;
}

/** Host: wrap one native frame as `90 INS 00 00 [Lc data] 00`. */
export function wrapCommand(ins: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  checkInt('ins', ins, 0, 0xff);
  if (data.length > MAX_SHORT_LC) {
    throw new FrameError(`command data of ${data.length} bytes does not fit one short APDU (max ${MAX_SHORT_LC})`);
  }
  if (data.length === 0) return Uint8Array.of(DESFIRE_CLA, ins, 0x00, 0x00, 0x00);
  const out = new Uint8Array(6 + data.length);
  out[0] = DESFIRE_CLA;
  out[1] = ins;
  out[4] = data.length;
  out.set(data, 5);
  out[5 + data.length] = 0x00;
  return out;
}

/**
 * Card: parse a wrapped command APDU strictly. Accepts `90 INS 00 00 00` (no data),
 * `90 INS 00 00 Lc data 00` and `90 INS 00 00 Lc data` (no Le). Anything else → FrameError.
 */
export function unwrapCommand(apdu: Uint8Array): NativeFrame {
  if (apdu.length < 5) throw new FrameError(`command APDU truncated (${apdu.length} bytes)`);
  if (apdu[0] !== DESFIRE_CLA) throw new FrameError('command APDU CLA is not 0x90');
  if (apdu[2] !== 0x00 || apdu[3] !== 0x00) throw new FrameError('command APDU P1/P2 must be 00 00');
  const ins = apdu[1]!;
  if (apdu.length === 5) {
    if (apdu[4] !== 0x00) throw new FrameError('command APDU Le must be 00');
    return { ins, data: new Uint8Array(0) };
  }
  const lc = apdu[4]!;
  if (lc === 0) throw new FrameError('command APDU Lc of 0 with trailing bytes');
  if (apdu.length === 5 + lc) return { ins, data: copyBytes(apdu, 5, 5 + lc) };
  if (apdu.length === 6 + lc) {
    if (apdu[5 + lc] !== 0x00) throw new FrameError('command APDU Le must be 00');
    return { ins, data: copyBytes(apdu, 5, 5 + lc) };
  }
  if (apdu.length < 5 + lc) throw new FrameError(`command APDU truncated (Lc ${lc}, ${apdu.length - 5} bytes follow)`);
  throw new FrameError(`command APDU overlong (Lc ${lc}, ${apdu.length - 5} bytes follow)`);
}

/** Card: build a response APDU `data 91 status`. */
export function wrapResponse(status: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  checkInt('status', status, 0, 0xff);
  const out = new Uint8Array(data.length + 2);
  out.set(data, 0);
  out[data.length] = SW1_DESFIRE;
  out[data.length + 1] = status;
  return out;
}

export interface UnwrapResponseOptions {
  /** Largest data part accepted in one response frame (default 256). */
  readonly maxData?: number;
}

/**
 * Host: parse a response APDU strictly: at least SW1 SW2, SW1 must be 0x91, at most `maxData`
 * bytes of data, and no data under an error status (a card never sends data with an error).
 * Does not throw for error statuses: the caller decides (see checkStatus).
 */
export function unwrapResponse(apdu: Uint8Array, opts: UnwrapResponseOptions = {}): ResponseFrame {
  const maxData = opts.maxData ?? 256;
  if (apdu.length < 2) throw new FrameError(`response APDU truncated (${apdu.length} bytes)`);
  const sw1 = apdu[apdu.length - 2]!;
  const status = apdu[apdu.length - 1]!;
  if (sw1 !== SW1_DESFIRE) {
    const sw = ((sw1 << 8) | status).toString(16).toUpperCase().padStart(4, '0');
    throw new FrameError(`response SW1 is not 0x91 (SW ${sw})`);
  }
  const dataLen = apdu.length - 2;
  if (dataLen > maxData) throw new FrameError(`response frame overlong (${dataLen} > ${maxData} data bytes)`);
  if (dataLen > 0 && status !== Status.OPERATION_OK && status !== Status.ADDITIONAL_FRAME) {
    throw new FrameError(`response carries ${dataLen} data bytes under error status`);
  }
  return { status, data: copyBytes(apdu, 0, dataLen) };
}

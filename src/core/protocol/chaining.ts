// Additional-frame (0xAF) chaining, both directions, both sides.
//
// Frame sizes (checked against public sources):
// - Host → card: Proxmark3 (client/src/mifare/desfirecore.h, DESFIRE_TX_FRAME_MAX_LEN = 54) sends at
//   most 54 bytes of data per ISO-wrapped frame; libfreefare keeps the wrapped command within
//   MAX_CAPDU_SIZE = 55. Our default is 54 data bytes per frame (APDU of 60 bytes), which fits a
//   reader/card FSD of 64 with the ISO 14443-4 prologue and CRC.
// - Card → host: a real card sends at most 59 data bytes per frame in ISO-wrapped native mode
//   (libfreefare's MAX_RAPDU_SIZE = 60 = 59 data + 1 status in native framing). The card helpers here
//   split long responses exactly like that.

import { FrameError } from '../errors.js';
import type { Transport } from '../transport.js';
import { unwrapCommand, unwrapResponse, wrapCommand, wrapResponse, type ResponseFrame } from './apdu.js';
import { Cmd } from './commands.js';
import { checkInt } from './errors.js';
import { Status } from './status.js';

/** Default host command frame: at most 54 data bytes after INS (Proxmark3's figure). */
export const DEFAULT_COMMAND_FRAME_DATA = 54;
/** A real card's response frame: at most 59 data bytes. */
export const CARD_RESPONSE_FRAME_DATA = 59;
/** Guard against a card that never stops chaining (64 KiB of response data). */
export const DEFAULT_MAX_RESPONSE = 65536;

/** Split the bytes after INS into native frames: the first carries INS, the others 0xAF. */
export function splitCommand(ins: number, payload: Uint8Array, maxFrameData = DEFAULT_COMMAND_FRAME_DATA): { ins: number; data: Uint8Array }[] {
  checkInt('maxFrameData', maxFrameData, 1, 255);
  const frames: { ins: number; data: Uint8Array }[] = [];
  let off = 0;
  do {
    const n = Math.min(maxFrameData, payload.length - off);
    frames.push({ ins: off === 0 ? ins : Cmd.ADDITIONAL_FRAME, data: payload.slice(off, off + n) });
    off += n;
  } while (off < payload.length);
  return frames;
}

/** Host: the wrapped APDUs of one command, split into frames. */
export function commandApdus(ins: number, payload: Uint8Array, maxFrameData = DEFAULT_COMMAND_FRAME_DATA): Uint8Array[] {
  return splitCommand(ins, payload, maxFrameData).map((f) => wrapCommand(f.ins, f.data));
}

export interface ExchangeOptions {
  /** Host command frame size (data bytes after INS per frame). Default 54. */
  readonly maxFrameData?: number;
  /** Largest response data accepted over all frames. Default 64 KiB. */
  readonly maxResponse?: number;
  /**
   * Stop at the first AF response once the command is sent, instead of fetching further frames
   * (authentication steps use this: their AF answer expects a new host message, not 90 AF 00 00 00).
   */
  readonly stopOnAdditionalFrame?: boolean;
}

/** A whole response: final status, joined data, and the data length of each frame. */
export interface ExchangeResponse extends ResponseFrame {
  readonly frameSizes: readonly number[];
}

/**
 * Host: send one command (splitting it into AF frames) and collect the whole response (joining AF
 * frames). Returns the final status and the joined data; the caller checks the status. A status
 * other than AF while command frames remain ends the exchange with that status (the card refused).
 */
export async function exchange(transport: Transport, ins: number, payload: Uint8Array, opts: ExchangeOptions = {}): Promise<ExchangeResponse> {
  const maxResponse = opts.maxResponse ?? DEFAULT_MAX_RESPONSE;
  const apdus = commandApdus(ins, payload, opts.maxFrameData ?? DEFAULT_COMMAND_FRAME_DATA);
  let resp: ResponseFrame | undefined;
  for (let i = 0; i < apdus.length; i++) {
    resp = unwrapResponse(await transport.transmit(apdus[i]!));
    if (i < apdus.length - 1) {
      if (resp.status !== Status.ADDITIONAL_FRAME) return { ...resp, frameSizes: [resp.data.length] };
      if (resp.data.length !== 0) throw new FrameError('card sent data while command frames remain');
    }
  }
  let r = resp!;
  if (opts.stopOnAdditionalFrame) return { ...r, frameSizes: [r.data.length] };
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    // An empty AF frame here would mean the card still waits for command data the host does not
    // have (or a card chaining forever without progress): a malformed exchange either way.
    if (r.status === Status.ADDITIONAL_FRAME && r.data.length === 0) throw new FrameError('card asks for more command data than was sent');
    total += r.data.length;
    if (total > maxResponse) throw new FrameError(`chained response exceeds ${maxResponse} bytes`);
    parts.push(r.data);
    if (r.status !== Status.ADDITIONAL_FRAME) break;
    r = unwrapResponse(await transport.transmit(wrapCommand(Cmd.ADDITIONAL_FRAME)));
  }
  const data = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.length;
  }
  return { status: r.status, data, frameSizes: parts.map((p) => p.length) };
}

/** Card: split a response into frames of at most 59 data bytes; all but the last carry status AF. */
export function splitResponse(status: number, data: Uint8Array, maxFrameData = CARD_RESPONSE_FRAME_DATA): ResponseFrame[] {
  checkInt('maxFrameData', maxFrameData, 1, 256);
  if (data.length > 0 && status !== Status.OPERATION_OK && status !== Status.ADDITIONAL_FRAME) {
    throw new FrameError('an error status carries no data');
  }
  const frames: ResponseFrame[] = [];
  let off = 0;
  do {
    const n = Math.min(maxFrameData, data.length - off);
    const last = off + n >= data.length;
    frames.push({ status: last ? status : Status.ADDITIONAL_FRAME, data: data.slice(off, off + n) });
    off += n;
  } while (off < data.length);
  return frames;
}

/** Card: the response APDUs (`data 91 SW2`) of a whole response, split as a real card does. */
export function responseApdus(status: number, data: Uint8Array, maxFrameData = CARD_RESPONSE_FRAME_DATA): Uint8Array[] {
  return splitResponse(status, data, maxFrameData).map((f) => wrapResponse(f.status, f.data));
}

/**
 * Card: holds the remaining frames of a chained response. `start()` returns the first frame's APDU;
 * each `90 AF 00 00 00` from the host gets the next one via `next()`. Any other command aborts the
 * pending chain (`pending` becomes false); the card then handles it normally (a real card answers
 * COMMAND_ABORTED only to an AF it does not expect, which `next()` does when nothing is pending).
 */
export class ResponseChain {
  private frames: Uint8Array[] = [];

  constructor(private readonly maxFrameData = CARD_RESPONSE_FRAME_DATA) {}

  get pending(): boolean {
    return this.frames.length > 0;
  }

  /** Begin a response; returns the first APDU to send. */
  start(status: number, data: Uint8Array): Uint8Array {
    const all = responseApdus(status, data, this.maxFrameData);
    this.frames = all.slice(1);
    return all[0]!;
  }

  /**
   * Answer a host continuation request. `apdu` must be `90 AF 00 00 00`; returns the next frame,
   * or a COMMAND_ABORTED response when nothing is pending or the request carries data.
   */
  next(apdu: Uint8Array): Uint8Array {
    const f = unwrapCommand(apdu);
    if (f.ins !== Cmd.ADDITIONAL_FRAME || f.data.length !== 0 || this.frames.length === 0) {
      this.frames = [];
      return wrapResponse(Status.COMMAND_ABORTED);
    }
    return this.frames.shift()!;
  }

  /** Drop any pending frames (any command other than AF does this on a real card). */
  reset(): void {
    this.frames = [];
  }
}

/**
 * Card: joins incoming command frames. The card decides from the command how many bytes it
 * expects (`expected`); while fewer have arrived it answers `91 AF` and feeds each `90 AF ...`
 * frame to `push`.
 */
export class CommandAssembler {
  private parts: Uint8Array[] = [];
  private total = 0;
  readonly ins: number;

  constructor(ins: number, first: Uint8Array, readonly expected: number) {
    checkInt('expected', expected, 0, 1 << 20);
    this.ins = ins;
    this.add(first);
  }

  private add(data: Uint8Array): void {
    if (this.total + data.length > this.expected) {
      throw new FrameError(`command frames exceed the expected ${this.expected} bytes`);
    }
    this.parts.push(data);
    this.total += data.length;
  }

  /** Add a continuation frame's data (the card has checked that INS is AF). */
  push(data: Uint8Array): void {
    this.add(data);
  }

  get complete(): boolean {
    return this.total === this.expected;
  }

  /** The joined command data (all frames). */
  data(): Uint8Array {
    const out = new Uint8Array(this.total);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

// The wire protocol between vsmartcard's vpcd (the pcscd driver, TCP server) and a virtual card
// (the TCP client): every message is a 2-byte big-endian length and that many bytes of payload.
// A 1-byte payload from vpcd is a control code; anything longer is a command APDU, answered with
// one response APDU. The card answers GET ATR with the ATR and nothing else with nothing.
import { TransportError } from './errors.js';

export const VPCD_DEFAULT_PORT = 35963;

export const VpcdControl = {
  POWER_OFF: 0x00,
  POWER_ON: 0x01,
  RESET: 0x02,
  GET_ATR: 0x04,
} as const;

export type VpcdMessage =
  | { kind: 'control'; code: number }
  | { kind: 'apdu'; apdu: Uint8Array };

/** Frame one payload (at most 65535 bytes). */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  if (payload.length > 0xffff) throw new TransportError('ERR_VPCD_FRAME', `vpcd payload of ${payload.length} bytes is too long`);
  const out = new Uint8Array(payload.length + 2);
  out[0] = payload.length >>> 8;
  out[1] = payload.length & 0xff;
  out.set(payload, 2);
  return out;
}

export function classify(payload: Uint8Array): VpcdMessage {
  if (payload.length === 0) throw new TransportError('ERR_VPCD_FRAME', 'zero-length vpcd message');
  if (payload.length === 1) return { kind: 'control', code: payload[0]! };
  return { kind: 'apdu', apdu: payload };
}

/**
 * Reassembles frames from a byte stream that arrives in arbitrary pieces (vpcd writes the length
 * and the payload separately; TCP may also merge or split them).
 */
export class FrameDecoder {
  private buf = new Uint8Array(0);

  /** Feed bytes; returns every payload completed by them, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    const out: Uint8Array[] = [];
    let off = 0;
    while (joined.length - off >= 2) {
      const len = (joined[off]! << 8) | joined[off + 1]!;
      if (joined.length - off - 2 < len) break;
      out.push(joined.slice(off + 2, off + 2 + len));
      off += 2 + len;
    }
    this.buf = joined.slice(off);
    return out;
  }

  /** Bytes received that do not yet form a whole frame. */
  get pending(): number {
    return this.buf.length;
  }
}

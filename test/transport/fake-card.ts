// A stand-in card for transport tests that must not depend on the virtual card's behaviour: it
// echoes the command with 91 00, counts resets, and throws on INS 0xEE (to test fault handling).
import type { CardPort } from '../../src/transport/card-port.js';

export class EchoCard implements CardPort {
  readonly uid = Uint8Array.of(0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66);
  resets = 0;
  seen: Uint8Array[] = [];
  process(apdu: Uint8Array): Uint8Array {
    this.seen.push(Uint8Array.from(apdu));
    if (apdu[1] === 0xee) throw new Error('card fault');
    const out = new Uint8Array(apdu.length + 2);
    out.set(apdu);
    out[apdu.length] = 0x91;
    out[apdu.length + 1] = 0x00;
    return out;
  }
  reset(): void {
    this.resets++;
  }
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();
export const bytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

// The part of a PC/SC contactless reader that sits in front of the card: the ATR it builds for an
// ISO 14443-4 card (PC/SC part 3, section 3.1.3.2.3) and the pseudo-APDUs of class FF it answers
// itself (PC/SC part 3, section 3.2.2.1.3, GET DATA). Used by both the in-process transport and
// the vpcd bridge, so a host sees the same thing whichever way it reaches the virtual card.
import type { CardPort } from './card-port.js';

/** The historical bytes of a DESFire EV1/EV2/EV3 ATS (ATS = 06 75 77 81 02 80). */
export const DESFIRE_HISTORICAL_BYTES = Uint8Array.of(0x80);

/**
 * The ATR a PC/SC reader presents for an ISO 14443-4 type A card: 3B 8n 80 01 ‖ historical bytes ‖
 * TCK, n = number of historical bytes (at most 15), TCK = XOR of every byte from T0 on. With the
 * DESFire historical byte this is 3B 81 80 01 80 80, as a real DESFire shows through an
 * ACR122U/Omnikey reader.
 */
export function contactlessAtr(historical: Uint8Array = DESFIRE_HISTORICAL_BYTES): Uint8Array {
  if (historical.length > 15) throw new RangeError('at most 15 historical bytes');
  const atr = new Uint8Array(4 + historical.length + 1);
  atr.set([0x3b, 0x80 | historical.length, 0x80, 0x01]);
  atr.set(historical, 4);
  let tck = 0;
  for (let i = 1; i < atr.length - 1; i++) tck ^= atr[i]!;
  atr[atr.length - 1] = tck;
  return atr;
}

const SW = {
  OK: [0x90, 0x00],
  END_OF_DATA: [0x62, 0x82],
  WRONG_LENGTH: [0x67, 0x00],
  WRONG_P1P2: [0x6b, 0x00],
  FUNC_NOT_SUPPORTED: [0x6a, 0x81],
  INS_NOT_SUPPORTED: [0x6d, 0x00],
  NO_PRECISE_DIAGNOSIS: [0x6f, 0x00],
} as const;

function withSw(data: Uint8Array, sw: readonly [number, number]): Uint8Array {
  const out = new Uint8Array(data.length + 2);
  out.set(data);
  out[data.length] = sw[0];
  out[data.length + 1] = sw[1];
  return out;
}

/**
 * Answer a class-FF pseudo-APDU the way a PC/SC part 3 reader does. Only GET DATA (INS CA) is
 * implemented: P1 = 00 the UID, P1 = 01 the historical bytes of the ATS. Le = 00 means "all";
 * a shorter Le gets 6C xx (the exact length), a longer one the data with 62 82.
 */
export function pseudoApdu(apdu: Uint8Array, uid: Uint8Array, historical: Uint8Array): Uint8Array {
  if (apdu.length < 4) return withSw(new Uint8Array(0), SW.WRONG_LENGTH);
  const ins = apdu[1]!;
  const p1 = apdu[2]!;
  const p2 = apdu[3]!;
  if (ins !== 0xca) return withSw(new Uint8Array(0), SW.INS_NOT_SUPPORTED);
  // Case 1 (no Le) or case 2 short (one Le byte); anything with a body is malformed.
  if (apdu.length > 5) return withSw(new Uint8Array(0), SW.WRONG_LENGTH);
  if (p2 !== 0x00) return withSw(new Uint8Array(0), SW.WRONG_P1P2);
  let data: Uint8Array;
  if (p1 === 0x00) data = uid;
  else if (p1 === 0x01) data = historical;
  else return withSw(new Uint8Array(0), SW.FUNC_NOT_SUPPORTED);
  const le = apdu.length === 5 ? apdu[4]! : 0;
  if (le === 0 || le === data.length) return withSw(data, SW.OK);
  if (le < data.length) return Uint8Array.of(0x6c, data.length);
  return withSw(data, SW.END_OF_DATA);
}

export interface FrontEndOptions {
  /** Historical bytes of the card's ATS (default: the card's own, else a DESFire's single 0x80). */
  historical?: Uint8Array;
}

/**
 * A virtual reader slot with a card in it: builds the ATR, answers the reader's own pseudo-APDUs
 * and hands every other APDU to the card. A card that throws is answered with 6F 00 (as a reader
 * reports a card that did not answer), never with an exception that would kill the bridge.
 */
export class PcscFrontEnd {
  readonly atr: Uint8Array;
  readonly historical: Uint8Array;
  constructor(
    readonly card: CardPort,
    opts: FrontEndOptions = {},
  ) {
    this.historical = Uint8Array.from(opts.historical ?? card.atrHistoricalBytes ?? DESFIRE_HISTORICAL_BYTES);
    this.atr = contactlessAtr(this.historical);
  }

  transmit(apdu: Uint8Array): Uint8Array {
    if (apdu.length >= 1 && apdu[0] === 0xff) return pseudoApdu(apdu, this.card.rfUid ?? this.card.uid, this.historical);
    try {
      return this.card.process(apdu);
    } catch {
      return Uint8Array.from(SW.NO_PRECISE_DIAGNOSIS);
    }
  }

  /** Power on, power off and warm reset all end up as a card reset for a contactless card. */
  reset(): void {
    this.card.reset();
  }
}

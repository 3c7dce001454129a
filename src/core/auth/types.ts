// Types shared by the host and card sides of authentication.
import type { KeyType } from '../crypto/cipher.js';
import type { CardSession, HostSession } from '../sm/types.js';

/** d40 = legacy native 0x0A, iso = 0x1A, aes = 0xAA, ev2first = 0x71, ev2nonfirst = 0x77. */
export type AuthMethod = 'd40' | 'iso' | 'aes' | 'ev2first' | 'ev2nonfirst';

export const AUTH_METHODS: readonly AuthMethod[] = ['d40', 'iso', 'aes', 'ev2first', 'ev2nonfirst'];

/** The native command byte of each method. */
export const AUTH_INS: Readonly<Record<AuthMethod, number>> = { d40: 0x0a, iso: 0x1a, aes: 0xaa, ev2first: 0x71, ev2nonfirst: 0x77 };

/** Key types each method accepts. */
export const AUTH_KEY_TYPES: Readonly<Record<AuthMethod, readonly KeyType[]>> = {
  d40: ['des', '2k3des'],
  iso: ['des', '2k3des', '3k3des'],
  aes: ['aes'],
  ev2first: ['aes'],
  ev2nonfirst: ['aes'],
};

/** Native status byte "additional frame". */
export const STATUS_AF = 0xaf;

export interface ExchangeResult {
  /** Native status byte (0x00 OK, 0xAF additional frame, else an error). */
  status: number;
  data: Uint8Array;
}

/** Sends one native frame (INS + data) and returns the card's native status and data. */
export type Exchange = (ins: number, data: Uint8Array) => Promise<ExchangeResult>;

/** Source of randomness (RndA, TI); tests inject fixed values. */
export type RandomSource = (n: number) => Uint8Array;

export interface HostAuthOptions {
  method: AuthMethod;
  /** Key number 0..13 (the PICC master key is 0). */
  keyNo: number;
  key: Uint8Array;
  keyType: KeyType;
  random: RandomSource;
  /** ev2nonfirst: the current EV2 session (its TI and CmdCtr carry over; it is destroyed on success). */
  previous?: HostSession;
  /** ev2first: PCDcap2 bytes to send (0..6 bytes; default none, LenCap = 0). */
  pcdCap2?: Uint8Array;
}

/** The card side after the first frame: call `finish` with the host's second frame. */
export interface CardAuthPending {
  readonly method: AuthMethod;
  readonly keyNo: number;
  /**
   * Check the host's answer (RndA || RndB'). Returns the card's final response and the session.
   * `random` supplies the TI for ev2first (4 bytes). Throws AuthenticationError when RndB' does
   * not match, FrameError when the frame has the wrong length.
   */
  finish(data: Uint8Array, random?: RandomSource): { response: Uint8Array; session: CardSession };
}

export interface CardAuthOptions {
  /** ev2nonfirst: the card's current EV2 session (TI and CmdCtr carry over). */
  previous?: CardSession;
  /** ev2first: PCDcap2 as received (echoed back, zero-padded to 6 bytes). */
  pcdCap2?: Uint8Array;
  /** ev2first: PDcap2 the card reports (6 bytes, default zero). */
  pdCap2?: Uint8Array;
}

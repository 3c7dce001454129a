// Secure messaging contracts shared by the host client (src/core/client) and the virtual card
// (src/card). One implementation per generation (D40 legacy, EV1, EV2) of each side lives in
// src/core/sm; the authentication code (src/core/auth) produces them.
//
// Conventions:
// - `ins` is the native command byte; `header` the command's header bytes that stay in plain
//   (e.g. file number, offset, length); `data` the command data that the comm mode protects.
// - Chaining (0xAF frames) is outside secure messaging: the host wraps the whole command and then
//   splits it into frames; the card joins frames before unwrapping; responses likewise.
// - Every MAC/CRC/padding failure throws IntegrityError (src/core/errors.ts) and returns nothing.

export type CommMode = 'plain' | 'mac' | 'full';

export type SessionKind = 'd40' | 'ev1' | 'ev2';

export interface SessionInfo {
  readonly kind: SessionKind;
  /** The key number the session was authenticated with. */
  readonly keyNo: number;
  /** EV2 only: transaction identifier and command counter. */
  readonly ti?: Uint8Array;
  readonly cmdCtr?: number;
}

/** The host's side of an authenticated session. */
export interface HostSession extends SessionInfo {
  /**
   * Protect a command. Returns the bytes to send after the INS byte (header, then data in plain,
   * MAC'd or enciphered form, then any MAC). Advances IV/counter state as the card will.
   */
  wrapCommand(ins: number, header: Uint8Array, data: Uint8Array, comm: CommMode): Uint8Array;
  /**
   * Check and strip a response. `status` is the native status byte (0x00 on success), `body` the
   * response data of all frames joined. Returns the plain data. Throws IntegrityError on any check
   * failure. `plainLength` lets full-mode responses whose padding is ambiguous (EV1 CRC-checked
   * responses) be cut at the right place.
   */
  unwrapResponse(ins: number, status: number, body: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array;
  /** Wipe session keys. */
  destroy(): void;
}

/** The card's side of an authenticated session (the mirror of HostSession). */
export interface CardSession extends SessionInfo {
  /** Check and strip a command's protection; returns the plain data (header is passed through). */
  unwrapCommand(ins: number, header: Uint8Array, payload: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array;
  /** Protect a response (status 0x00 or 0xAF at the end of a chain). Returns the response body. */
  wrapResponse(ins: number, status: number, data: Uint8Array, comm: CommMode): Uint8Array;
  destroy(): void;
}

// What a transport needs from a card: the virtual card of src/card satisfies it structurally, and
// tests can pass anything shaped like it. Kept tiny on purpose (the transport never looks inside).
export interface CardPort {
  /** The card's UID (7 bytes for a DESFire). */
  readonly uid: Uint8Array;
  /**
   * Optional: the UID the card shows in anti-collision, which is what a reader's GET DATA returns
   * (with random ID enabled, 08 xx xx xx). Falls back to `uid`.
   */
  readonly rfUid?: Uint8Array;
  /** Optional: the historical bytes of the card's ATS (for the ATR). Default: a DESFire's 0x80. */
  readonly atrHistoricalBytes?: Uint8Array;
  /** Optional: the card latency model's estimate for the last process() call, in ms. */
  readonly lastLatencyMs?: number;
  /** One command APDU in, one response APDU (data || SW1 SW2) out. */
  process(apdu: Uint8Array): Uint8Array;
  /** Power cycle / field reset: authentication and uncommitted transactions are lost. */
  reset(): void;
}

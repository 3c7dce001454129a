// What a transport needs from a card: the virtual card of src/card satisfies it structurally, and
// tests can pass anything shaped like it. Kept tiny on purpose (the transport never looks inside).
export interface CardPort {
  /** The card's UID (7 bytes for a DESFire, 4 when it uses a random ID). */
  readonly uid: Uint8Array;
  /** One command APDU in, one response APDU (data || SW1 SW2) out. */
  process(apdu: Uint8Array): Uint8Array;
  /** Power cycle / field reset: authentication and uncommitted transactions are lost. */
  reset(): void;
}

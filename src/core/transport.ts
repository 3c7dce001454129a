// The one abstract transport every client speaks through: bytes of a command APDU in, bytes of the
// response APDU (data || SW1 SW2) out. Implementations live in src/transport (in-process card,
// PC/SC, vpcd bridge, remote relay); the core only knows this interface.
export interface Transport {
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
  /** Optional: release the underlying reader/connection. */
  close?(): Promise<void>;
}

// Options and small types of the DesfireClient.

import type { KeyType } from '../crypto/cipher.js';
import type { RandomSource } from '../auth/index.js';
import type { CommMode } from '../sm/types.js';

export type { RandomSource };

export interface DesfireClientOptions {
  /** Source of RndA (tests fix it). Default: the OS CSPRNG through a pool (core/crypto/random.ts). */
  readonly random?: RandomSource;
  /** Data bytes per command frame after INS (default 54, Proxmark3's figure). */
  readonly maxFrameData?: number;
  /** Largest response accepted over all AF frames (default 64 KiB). */
  readonly maxResponse?: number;
  /**
   * Use the EV2 data command codes (ReadData AD, WriteData 8D, ReadRecords AB, WriteRecord 8B)
   * instead of the native ones (BD, 3D, BB, 3B). Default false. Can be overridden per call.
   */
  readonly ev2DataCommands?: boolean;
}

/** 'ev2' = AuthenticateEV2First (0x71) or NonFirst (0x77) with `nonFirst`; 'aes' 0xAA; 'iso' 0x1A; 'd40' 0x0A. */
export type AuthMethodName = 'ev2' | 'aes' | 'iso' | 'd40';

export interface AuthenticateOptions {
  readonly method: AuthMethodName;
  /** Key type; default aes for 'ev2'/'aes', 2k3des for 'iso', des for 'd40'. */
  readonly keyType?: KeyType;
  /** EV2 only: AuthenticateEV2NonFirst, keeping TI and CmdCtr of the current EV2 session. */
  readonly nonFirst?: boolean;
  /** EV2First only: PCDcap2 bytes (0..6). */
  readonly pcdCap2?: Uint8Array;
}

/**
 * How a file operation is protected: an explicit comm mode, or 'auto' (look the file up with
 * GetFileSettings once per selected application and apply the mode the card will use — plain when
 * the access right used is free). Default: 'plain' without a session, 'auto' with one.
 */
export type CommChoice = CommMode | 'auto';

export interface FileOpOptions {
  readonly comm?: CommChoice;
  /** Override the client's ev2DataCommands for this call. */
  readonly ev2Command?: boolean;
}

export interface ChangeKeyOptions {
  /** Type of the new key. */
  readonly keyType: KeyType;
  /** Key version (AES/EV2: version byte; DES family under D40/EV1: parity bits). */
  readonly keyVersion?: number;
  /** The key's current value: needed when changing a key other than the authenticated one. */
  readonly oldKey?: Uint8Array;
  readonly oldKeyType?: KeyType;
  /** Changing the PICC master key: the new key type goes in the key number flags. Default: true at the PICC level. */
  readonly picc?: boolean;
}

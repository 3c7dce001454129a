// The station job wire format as the CMS produces it. The station's copy of these types is
// src/reader/station/protocol.ts (the layer rules keep cms and reader apart); the e2e tests run
// one against the other.
import type { SealedKey } from '../../custody/sealed.js';
import type { KeyBinding } from '../../custody/types.js';

export interface JobKeyWire {
  keyNo: number;
  version: number;
  keyType: 'aes' | '3k3des';
  binding: KeyBinding;
  sealed: SealedKey;
}

interface Common {
  v: 1;
  jobId: string;
  jti: string;
  uid: string;
  expiresAt: number;
  /** The tenant authorisation (src/cms/consent) an install/delete runs under: the receipt must name it. */
  authorisation?: string;
}

/** One application to install: the seed's sequence (an install job's, or one step of a personalise job). */
export interface ApplicationWire {
  aid: string;
  createApplication: string;
  keyType: 'aes' | '3k3des';
  changeKey: 'amk' | 'self';
  keys: JobKeyWire[];
  files: { fileNo: number; command: number; data: string }[];
  /** personalise: the tenant authorisation this installation runs under (the receipt names the job's digest of them). */
  authorisation?: string;
}

export type StationJobWire =
  | (Common & { kind: 'issue'; factoryKey: { keyType: 'des'; hex: string }; cmk: JobKeyWire; piccKeySettings: number; randomUid: boolean })
  | (Common & { kind: 'install'; cmk: JobKeyWire; application: ApplicationWire })
  | (Common & { kind: 'delete'; cmk: JobKeyWire; aid: string })
  /**
   * The whole first personalisation of a blank card in one job: the issue (factory key -> CMK, PICC
   * key settings), then every application in order, then (randomUid) SetConfiguration LAST, so the
   * station knows the real UID for every step. One receipt names every step.
   */
  | (Common & { kind: 'personalise'; factoryKey: { keyType: 'des'; hex: string }; cmk: JobKeyWire; piccKeySettings: number; randomUid: boolean; applications: ApplicationWire[] });

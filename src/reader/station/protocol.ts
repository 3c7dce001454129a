// The station job wire format (CMS -> station) and the receipt (station -> CMS), version 1.
//
// The CMS (src/cms/jobs) and the station (this directory) share nothing but this JSON shape: the
// layer rules keep cms and reader apart, so each side has its own copy of the types and the CMS
// validates what it receives. Keys travel only as sealed deliveries (src/custody/sealed.ts) bound
// to (tenant, AID, UID, keyNo, version) and to the executing reader; everything else is plain
// DESFire parameters (hex command data, decoded on the station with src/core/protocol/codecs).
import type { KeyBinding } from '../../custody/types.js';
import type { SealedKey } from '../../custody/sealed.js';

export const JOB_FORMAT = 1;

/** One key for the station: its number, version, algorithm, and the sealed delivery. */
export interface JobKey {
  keyNo: number;
  version: number;
  keyType: 'aes' | '3k3des';
  binding: KeyBinding;
  sealed: SealedKey;
}

interface JobCommon {
  v: 1;
  jobId: string;
  /** jti of the operation token this job was claimed with: the receipt must name it. */
  jti: string;
  /** Card UID (upper-case hex): the card the keys are bound to. */
  uid: string;
  /** Unix seconds after which the station must not start the job. */
  expiresAt: number;
  /** The tenant authorisation the job runs under (install/delete with consent): signed back in the receipt. */
  authorisation?: string;
}

/** Factory card -> the card's AES CMK, PICC key settings, optional random UID. */
export interface IssueJob extends JobCommon {
  kind: 'issue';
  /** The factory PICC master key: DES, all zero (public knowledge; not sealed). */
  factoryKey: { keyType: 'des'; hex: string };
  cmk: JobKey;
  /** ChangeKeySettings byte at PICC level. */
  piccKeySettings: number;
  randomUid: boolean;
}

/** One application to install: the seed's sequence. */
export interface JobApplication {
  /** AID as written (6 hex digits, MSB first). */
  aid: string;
  /** CreateApplication command data (AID LSB first, key settings 1 and 2), hex. */
  createApplication: string;
  keyType: 'aes' | '3k3des';
  /** Who changes keys: 'amk' (key settings nibble 0) or 'self' (nibble E). */
  changeKey: 'amk' | 'self';
  /** Every key 0..n-1 (key 0 = AMK), sealed. */
  keys: JobKey[];
  /** Create*File commands: command byte and command data (hex). */
  files: { fileNo: number; command: number; data: string }[];
  /** personalise: the tenant authorisation of this installation (informative; the receipt names the job's `authorisation`). */
  authorisation?: string;
}

/** Install one application. */
export interface InstallJob extends JobCommon {
  kind: 'install';
  cmk: JobKey;
  application: JobApplication;
}

/**
 * A blank card's whole first personalisation in one card session: the issue (as IssueJob, but
 * SetConfiguration deferred), every application in order (as InstallJob), then SetConfiguration
 * (random UID) LAST. One receipt lists every step, each named with its AID.
 */
export interface PersonaliseJob extends JobCommon {
  kind: 'personalise';
  factoryKey: { keyType: 'des'; hex: string };
  cmk: JobKey;
  piccKeySettings: number;
  randomUid: boolean;
  applications: JobApplication[];
}

/** Delete one application (authenticated with the CMK). */
export interface DeleteJob extends JobCommon {
  kind: 'delete';
  cmk: JobKey;
  aid: string;
}

export type StationJob = IssueJob | InstallJob | DeleteJob | PersonaliseJob;

/** One step the station performed (or failed): the DESFire status byte (0x00 OK). */
export interface ReceiptStep {
  op: string;
  status: number;
  aid?: string;
  keyNo?: number;
  keyVersion?: number;
  fileNo?: number;
}

export interface StationReceipt {
  jobId: string;
  jti: string;
  uid: string;
  results: ReceiptStep[];
  at: number;
  /** The job's `authorisation`, when it has one. */
  authorisation?: string;
}

/** JWS `typ` of receipts (same as src/cms/pki/receipts.ts). */
export const RECEIPT_TYP = 'desfire-receipt+jws';

// Station jobs: the job types, the plans a job stores, and the checks of a job request (UID, AID,
// the PICC part, a personalise job's size), shared by the service (./service.ts), reconciliation
// (./reconcile.ts), key delivery and remote mode.
import { createHash } from 'node:crypto';
import { CARD_PROFILE_RE, type Application } from '../domain/index.js';
import { encodePiccKeySettings } from '../../core/protocol/codecs/index.js';
import type { KeySettingsFlags } from '../layout/index.js';
import { JobError } from './errors.js';
import { PICC_AID, type PlannedKey } from './keys.js';

export type JobKind = 'issue' | 'install' | 'delete' | 'personalise';
export type JobState = 'created' | 'claimed' | 'completed' | 'failed' | 'unknown' | 'reconciled';

export interface IssuePlan {
  cmkVersion: number;
  piccKeySettings: number;
  randomUid: boolean;
}
export interface InstallPlan {
  cmkVersion: number;
  keys: PlannedKey[];
  files: number[];
  /** The tenant authorisation it runs under (src/cms/consent). */
  authorisation?: string;
  /** The application's tenant when the job was created (its audit entries carry it; absent in jobs stored before). */
  tenant?: string;
}
export interface DeletePlan {
  cmkVersion: number;
  authorisation?: string;
  tenant?: string;
}
/** One installation of a personalise job (as an install job's plan, plus its AID). */
export interface PersonaliseInstall {
  aid: string;
  /** The application's tenant when the job was created (its audit entries carry it; absent in jobs stored before). */
  tenant?: string;
  keys: PlannedKey[];
  files: number[];
  authorisation?: string;
}
/**
 * The whole first personalisation of a blank card: the issue, then every installation in order
 * (random UID enabled last). `authorisation`: the digest of the installations' authorisations
 * (authorisationDigest) the station signs back in its ONE receipt.
 */
export interface PersonalisePlan extends IssuePlan {
  installs: PersonaliseInstall[];
  authorisation?: string;
}
export type JobPlan = IssuePlan | InstallPlan | DeletePlan | PersonalisePlan;

/** Which steps of a personalise job to record (reconciliation records the verified ones only). */
export interface PersonaliseSteps {
  issue: boolean;
  aids: string[];
}

/** Most applications a DESFire card holds (EV1..EV3: 28). */
export const MAX_PERSONALISE_AIDS = 28;

/**
 * The authorisation a personalise receipt must name: the installations' authorisations (in the
 * plan's order) bound into one value that fits the receipt's field. Undefined when none.
 */
export function authorisationDigest(installs: readonly { aid: string; authorisation?: string }[]): string | undefined {
  if (!installs.some((i) => i.authorisation !== undefined)) return undefined;
  const h = createHash('sha256').update(JSON.stringify(installs.map((i) => [i.aid, i.authorisation ?? null])));
  return `sha256:${h.digest('base64url')}`;
}

export interface Job {
  id: string;
  kind: JobKind;
  readerId: string;
  uid: string;
  aid: string;
  state: JobState;
  jti: string;
  plan: JobPlan;
  outcome: unknown;
  createdAt: number;
  expiresAt: number;
  updatedAt: number;
}

export type JobRequest =
  | { kind: 'issue'; uid: string; picc?: { keySettings?: Partial<KeySettingsFlags>; randomUid?: boolean }; /** The card's profile (standing-policy authorisations match it). */ profile?: string }
  | { kind: 'install'; uid: string; aid: string }
  | { kind: 'delete'; uid: string; aid: string }
  | { kind: 'personalise'; uid: string; aids: string[]; picc?: { keySettings?: Partial<KeySettingsFlags>; randomUid?: boolean }; profile?: string };

const UID_RE = /^([0-9A-F]{2}){4,10}$/;
const AID_RE = /^[0-9A-F]{6}$/;
const PICC_DEFAULTS: KeySettingsFlags = { masterKeyChangeable: true, freeDirectoryListing: false, freeCreateDelete: false, configurationChangeable: true };

/** The PICC part of an issue or personalise request: key settings byte (ISO007 enforced), random UID, profile. */
export function piccPlanOf(req: { picc?: { keySettings?: Partial<KeySettingsFlags>; randomUid?: boolean }; profile?: string }): { keySettings: number; randomUid: boolean } {
  const flags = { ...PICC_DEFAULTS, ...(req.picc?.keySettings ?? {}) };
  for (const [k, v] of Object.entries(flags)) if (typeof v !== 'boolean' || !(k in PICC_DEFAULTS)) throw new JobError('ERR_JOB_BAD_INPUT', `picc.keySettings.${k} must be a known boolean flag`);
  if (flags.freeCreateDelete) throw new JobError('ERR_JOB_BAD_INPUT', 'PICC key settings must forbid free create/delete (ISO007)');
  const randomUid = req.picc?.randomUid ?? false;
  if (typeof randomUid !== 'boolean') throw new JobError('ERR_JOB_BAD_INPUT', 'picc.randomUid must be a boolean');
  if (req.profile !== undefined && (typeof req.profile !== 'string' || !CARD_PROFILE_RE.test(req.profile))) throw new JobError('ERR_JOB_BAD_INPUT', 'profile: a card profile name (A-Z a-z 0-9 . _ -)');
  return {
    keySettings: encodePiccKeySettings({ masterKeyChangeable: flags.masterKeyChangeable, freeDirectoryList: flags.freeDirectoryListing, freeCreateDelete: false, configurationChangeable: flags.configurationChangeable }),
    randomUid,
  };
}

/** Most steps a receipt may list (src/cms/pki/receipts.ts): a personalise job with more is refused at create. */
export const MAX_RECEIPT_STEPS = 256;

/**
 * The card steps a personalise job's receipt lists when every step succeeds (the station's sequence,
 * src/reader/station/executor.ts): the issue (5), each installation (CMK authentication 2,
 * CreateApplication + select + default-key authentication + ChangeKey AMK + AMK authentication 5,
 * every other key 1 — 2 with changeKey self, then one more AMK authentication —, every file 1,
 * CommitTransaction 1), and with random UID the CMK authentication + SetConfiguration at the end (3).
 */
export function personaliseStepCount(apps: readonly Pick<Application, 'definition'>[], randomUid: boolean): number {
  let n = 5 + (randomUid ? 3 : 0);
  for (const a of apps) {
    const self = a.definition.keySettings.changeKey.kind === 'self';
    n += 7 + (a.definition.keys.length - 1) * (self ? 2 : 1) + (self ? 1 : 0) + a.definition.files.length + 1;
  }
  return n;
}

/** The steps of a personalise job as the audit entries name them. */
export function personaliseSteps(p: PersonalisePlan): string[] {
  return ['issue', ...p.installs.map((i) => `install:${i.aid}`)];
}

export function checkUidHex(uid: unknown): string {
  if (typeof uid !== 'string' || !UID_RE.test(uid.toUpperCase())) throw new JobError('ERR_JOB_BAD_INPUT', 'uid must be 4..10 bytes of hex');
  return uid.toUpperCase();
}

export function checkAidHex(aid: unknown): string {
  if (typeof aid !== 'string' || !AID_RE.test(aid.toUpperCase()) || aid === PICC_AID) throw new JobError('ERR_JOB_BAD_INPUT', 'aid must be 6 hex digits (not 000000)');
  return aid.toUpperCase();
}

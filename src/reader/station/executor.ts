// The station-side executor of CMS station jobs: drives one card through a job with the host
// library (src/core/client) over any Transport, unsealing each key only for the command that needs
// it and wiping it after, and returns a signed receipt of what the card answered.
//
//   issue    authenticate with the factory DES key (legacy 0x0A), ChangeKey(0) to the AES CMK,
//            authenticate with the CMK, ChangeKeySettings (PICC), SetConfiguration (random UID)
//   install  authenticate with the CMK, CreateApplication, select it, authenticate with the
//            default application key, ChangeKey(AMK), authenticate with the new AMK, ChangeKey for
//            every other key, create the files, CommitTransaction
//   delete   authenticate with the CMK, DeleteApplication
//   personalise  the issue (without SetConfiguration), then the install sequence for every
//            application in order, then — random UID — authenticate with the CMK and
//            SetConfiguration LAST (until then the card answers with its real UID)
//
// A card refusal stops the job: the receipt then ends with the failing step and its status, so
// the CMS records nothing and reconciles the card by probing it. Local errors (expired job,
// delivery that does not unseal, transport failure) throw StationError: the CMS then has no
// receipt and the job's outcome is unknown until reconciled.
import type { KeyObject } from 'node:crypto';
import { DesfireClient } from '../../core/client/index.js';
import { fromHex, wipe } from '../../core/crypto/bytes.js';
import type { KeyType } from '../../core/crypto/cipher.js';
import { type CreateFileParams, decodeCreateApplication, decodeCreateFile, decodeCreateTransactionMacHeader } from '../../core/protocol/codecs/index.js';
import { Cmd } from '../../core/protocol/commands.js';
import { deriveTmacKey } from '../../core/sm/tmac.js';
import { CardStatusError } from '../../core/protocol/status.js';
import type { Transport } from '../../core/transport.js';
import { ReaderUnsealer } from '../../custody/sealed.js';
import type { KeyBinding } from '../../custody/types.js';
import type { DeleteJob, InstallJob, IssueJob, JobApplication, JobKey, PersonaliseJob, ReceiptStep, StationJob, StationReceipt } from './protocol.js';
import { signStationReceipt } from './receipt.js';

export class StationError extends Error {
  readonly code: string;
  constructor(code: 'ERR_STATION_JOB_INVALID' | 'ERR_STATION_JOB_EXPIRED' | 'ERR_STATION_UNSEAL' | 'ERR_STATION_CARD', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'StationError';
  }
}

export interface StationOptions {
  /** The reader's id (the `kid` its deliveries are sealed to). */
  readerId: string;
  /** The reader's private key (the one its certificate certifies): unseals and signs receipts. */
  privateKey: KeyObject;
  /** Authentication method for AES keys: 'ev2' (default, EV2First) or 'aes' (EV1 0xAA). */
  aesAuth?: 'ev2' | 'aes';
  now?: () => number;
  /**
   * Test/demo hook: called with every unsealed key before it is used (and wiped). Production
   * stations leave it unset; the end-to-end tests use it to check that every key is distinct.
   */
  onKey?: (binding: KeyBinding, key: Uint8Array) => void;
}

export interface JobOutcome {
  receipt: StationReceipt;
  /** The compact JWS to post to the CMS. */
  jws: string;
  ok: boolean;
  /** Milliseconds spent talking to the card (transport + card + host crypto). */
  cardMs: number;
}

const ZERO = (t: 'aes' | '3k3des') => new Uint8Array(t === 'aes' ? 16 : 24);

export class StationExecutor {
  private readonly unsealer: ReaderUnsealer;
  private readonly now: () => number;

  constructor(private readonly opts: StationOptions) {
    this.now = opts.now ?? Date.now;
    this.unsealer = new ReaderUnsealer(opts.readerId, opts.privateKey, this.now);
  }

  private async unseal(k: JobKey): Promise<Uint8Array> {
    try {
      const key = await this.unsealer.unseal(k.sealed, k.binding);
      this.opts.onKey?.(k.binding, key);
      return key;
    } catch (e) {
      throw new StationError('ERR_STATION_UNSEAL', `key ${k.keyNo} of ${k.binding.aid} does not unseal: ${(e as { code?: string }).code ?? 'error'}`, { cause: e });
    }
  }

  private authOpts(t: 'aes' | '3k3des'): { method: 'ev2' | 'aes' | 'iso'; keyType: KeyType } {
    return t === 'aes' ? { method: this.opts.aesAuth ?? 'ev2', keyType: 'aes' } : { method: 'iso', keyType: '3k3des' };
  }

  /** Run `job` on the card behind `transport`; the receipt is signed whatever the card answered. */
  async run(job: StationJob, transport: Transport): Promise<JobOutcome> {
    if (!job || job.v !== 1 || typeof job.jobId !== 'string' || typeof job.jti !== 'string' || typeof job.uid !== 'string')
      throw new StationError('ERR_STATION_JOB_INVALID', 'not a version 1 station job');
    if (job.expiresAt * 1000 <= this.now()) throw new StationError('ERR_STATION_JOB_EXPIRED', `job ${job.jobId} has expired`);
    const client = new DesfireClient(transport);
    const results: ReceiptStep[] = [];
    const step = async (s: Omit<ReceiptStep, 'status'>, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
        results.push({ ...s, status: 0 });
      } catch (e) {
        if (e instanceof CardStatusError) {
          results.push({ ...s, status: e.status });
          throw new Stop();
        }
        // authentication that fails on the host side (the card's answer does not verify) is
        // reported as an authentication error, like the card's own 0xAE
        if ((e as { code?: string }).code === 'ERR_AUTHENTICATION') {
          results.push({ ...s, status: 0xae });
          throw new Stop();
        }
        throw new StationError('ERR_STATION_CARD', `${s.op} failed: ${(e as Error).message}`, { cause: e });
      }
    };
    const t0 = performance.now();
    try {
      switch (job.kind) {
        case 'issue':
          await this.issue(job, client, step);
          break;
        case 'install':
          await this.install(job, client, step);
          break;
        case 'delete':
          await this.delete(job, client, step);
          break;
        case 'personalise':
          await this.personalise(job, client, step);
          break;
        default:
          throw new StationError('ERR_STATION_JOB_INVALID', 'unknown job kind');
      }
    } catch (e) {
      if (!(e instanceof Stop)) throw e;
    } finally {
      client.dropSession();
    }
    const cardMs = performance.now() - t0;
    const receipt: StationReceipt = { jobId: job.jobId, jti: job.jti, uid: job.uid, results, at: Math.floor(this.now() / 1000), ...(typeof job.authorisation === 'string' ? { authorisation: job.authorisation } : {}) };
    const jws = await signStationReceipt(receipt, this.opts.privateKey);
    return { receipt, jws, ok: results.every((r) => r.status === 0), cardMs };
  }

  private async withKey<T>(k: JobKey, fn: (key: Uint8Array) => Promise<T>): Promise<T> {
    const key = await this.unseal(k);
    try {
      return await fn(key);
    } finally {
      wipe(key);
    }
  }

  private async personalise(job: PersonaliseJob, c: DesfireClient, step: Step): Promise<void> {
    if (!Array.isArray(job.applications)) throw new StationError('ERR_STATION_JOB_INVALID', 'personalise job without applications');
    // every key of an application bound to this card and that application (never another AID's)
    for (const a of job.applications)
      if (!a || !Array.isArray(a.keys) || a.keys.some((k) => k?.binding?.aid !== a.aid || k.binding.uid !== job.uid))
        throw new StationError('ERR_STATION_JOB_INVALID', `application ${String(a?.aid)}: a key is bound to another card or application`);
    if (job.cmk?.binding?.uid !== job.uid || job.cmk.binding.aid !== '000000') throw new StationError('ERR_STATION_JOB_INVALID', 'the CMK is bound to another card');
    await this.issue({ ...job, kind: 'issue', randomUid: false }, c, step);
    for (const a of job.applications) await this.installApplication(job.cmk, a, c, step);
    if (job.randomUid) {
      await this.authCmk(job.cmk, c, step);
      await step({ op: 'SetConfiguration', aid: '000000' }, () => c.setConfiguration({ option: 'picc', disableFormat: false, randomUid: true }));
    }
  }

  private async issue(job: IssueJob, c: DesfireClient, step: Step): Promise<void> {
    const factory = fromHex(job.factoryKey.hex);
    await step({ op: 'SelectApplication', aid: '000000' }, () => c.selectApplication(0));
    await step({ op: 'Authenticate', aid: '000000', keyNo: 0, keyVersion: 0 }, () => c.authenticate(0, factory, { method: 'd40', keyType: 'des' }));
    await this.withKey(job.cmk, async (cmk) => {
      await step({ op: 'ChangeKey', aid: '000000', keyNo: 0, keyVersion: job.cmk.version }, () =>
        c.changeKey(0, cmk, { keyType: 'aes', keyVersion: job.cmk.version, picc: true }),
      );
      await step({ op: 'Authenticate', aid: '000000', keyNo: 0, keyVersion: job.cmk.version }, () => c.authenticate(0, cmk, this.authOpts('aes')));
    });
    await step({ op: 'ChangeKeySettings', aid: '000000' }, () => c.changeKeySettings(job.piccKeySettings));
    if (job.randomUid) await step({ op: 'SetConfiguration' }, () => c.setConfiguration({ option: 'picc', disableFormat: false, randomUid: true }));
  }

  private install(job: InstallJob, c: DesfireClient, step: Step): Promise<void> {
    return this.installApplication(job.cmk, job.application, c, step);
  }

  private async installApplication(cmk: JobKey, a: JobApplication, c: DesfireClient, step: Step): Promise<void> {
    const params = decodeCreateApplication(fromHex(a.createApplication));
    const byNo = new Map(a.keys.map((k) => [k.keyNo, k]));
    const amk = byNo.get(0);
    if (!amk || a.keys.length !== params.keyCount) throw new StationError('ERR_STATION_JOB_INVALID', 'install job must carry every key 0..n-1');
    await this.authCmk(cmk, c, step);
    await step({ op: 'CreateApplication', aid: a.aid }, () => c.createApplication(params));
    await step({ op: 'SelectApplication', aid: a.aid }, () => c.selectApplication(params.aid));
    const dflt = ZERO(a.keyType);
    const auth = this.authOpts(a.keyType);
    await step({ op: 'Authenticate', aid: a.aid, keyNo: 0, keyVersion: 0 }, () => c.authenticate(0, dflt, auth));
    await this.withKey(amk, async (key) => {
      await step({ op: 'ChangeKey', aid: a.aid, keyNo: 0, keyVersion: amk.version }, () => c.changeKey(0, key, { keyType: auth.keyType, keyVersion: amk.version }));
      await step({ op: 'Authenticate', aid: a.aid, keyNo: 0, keyVersion: amk.version }, () => c.authenticate(0, key, auth));
      for (const k of a.keys) {
        if (k.keyNo === 0) continue;
        await this.withKey(k, async (nk) => {
          if (a.changeKey === 'self') {
            await step({ op: 'Authenticate', aid: a.aid, keyNo: k.keyNo, keyVersion: 0 }, () => c.authenticate(k.keyNo, dflt, auth));
            await step({ op: 'ChangeKey', aid: a.aid, keyNo: k.keyNo, keyVersion: k.version }, () => c.changeKey(k.keyNo, nk, { keyType: auth.keyType, keyVersion: k.version }));
          } else {
            await step({ op: 'ChangeKey', aid: a.aid, keyNo: k.keyNo, keyVersion: k.version }, () =>
              c.changeKey(k.keyNo, nk, { keyType: auth.keyType, keyVersion: k.version, oldKey: dflt, oldKeyType: auth.keyType }),
            );
          }
        });
      }
      if (a.changeKey === 'self') await step({ op: 'Authenticate', aid: a.aid, keyNo: 0, keyVersion: amk.version }, () => c.authenticate(0, key, auth));
      for (const f of a.files) {
        if (f.command === Cmd.CREATE_TRANSACTION_MAC_FILE) {
          await this.createTmacFile(c, step, a.aid, byNo, fromHex(f.data));
          continue;
        }
        const p = decodeCreateFile(f.command, fromHex(f.data));
        await step({ op: 'CreateFile', aid: a.aid, fileNo: p.fileNo }, () => createFile(c, p));
      }
      await step({ op: 'CommitTransaction', aid: a.aid }, () => c.commitTransaction());
    });
  }

  /** Transaction MAC file: plan data = CE header (5) || source key number; the key derived from that sealed key. */
  private async createTmacFile(c: DesfireClient, step: Step, aid: string, byNo: Map<number, JobKey>, data: Uint8Array): Promise<void> {
    let h: ReturnType<typeof decodeCreateTransactionMacHeader>;
    try {
      h = decodeCreateTransactionMacHeader(data.subarray(0, 5));
    } catch {
      throw new StationError('ERR_STATION_JOB_INVALID', 'bad Transaction MAC file plan');
    }
    const src = data.length === 6 ? byNo.get(data[5]!) : undefined;
    if (!src) throw new StationError('ERR_STATION_JOB_INVALID', 'the Transaction MAC file plan names no key of the job');
    await this.withKey(src, async (k) => {
      const tmk = deriveTmacKey(k);
      try {
        await step({ op: 'CreateFile', aid, fileNo: h.fileNo }, () => c.createTransactionMacFile({ ...h, key: tmk, keyVersion: src.version }));
      } finally {
        wipe(tmk);
      }
    });
  }

  private async authCmk(cmk: JobKey, c: DesfireClient, step: Step): Promise<void> {
    await step({ op: 'SelectApplication', aid: '000000' }, () => c.selectApplication(0));
    await this.withKey(cmk, (key) => step({ op: 'Authenticate', aid: '000000', keyNo: 0, keyVersion: cmk.version }, () => c.authenticate(0, key, this.authOpts('aes'))));
  }

  private async delete(job: DeleteJob, c: DesfireClient, step: Step): Promise<void> {
    await this.authCmk(job.cmk, c, step);
    await step({ op: 'DeleteApplication', aid: job.aid }, () => c.deleteApplication(parseInt(job.aid, 16)));
  }

  /** Forget every sealing session key (power cycle). */
  clear(): void {
    this.unsealer.clear();
  }
}

function createFile(c: DesfireClient, p: CreateFileParams): Promise<void> {
  switch (p.type) {
    case 'standard':
      return c.createStdDataFile(p);
    case 'backup':
      return c.createBackupDataFile(p);
    case 'value':
      return c.createValueFile(p);
    case 'linear-record':
      return c.createLinearRecordFile(p);
    case 'cyclic-record':
      return c.createCyclicRecordFile(p);
  }
}

type Step = (s: Omit<ReceiptStep, 'status'>, fn: () => Promise<unknown>) => Promise<void>;

class Stop extends Error {}

// DesfireClient: the host side of a DESFire card over one abstract Transport. It wraps commands in
// ISO 7816-4 APDUs, chains AF frames both ways, protects commands and checks responses through the
// HostSession of the last authentication, and keeps session state as a real card does:
// - the session ends on SelectApplication, on any error status, on a ChangeKey of the
//   authenticated key, when the selected application is deleted, and on any transport, frame or
//   integrity failure after a protected command was sent (its state is unknown from then on);
// - a caller's bad argument (ValueRangeError) is thrown before anything is sent and changes nothing.
// Card error statuses surface as CardStatusError; calls are serialised (one command at a time).

import { AUTH_KEY_TYPES, authenticateHost, changeKeyPayload, finishChangeKey, type AuthMethod, type ExchangeResult } from '../auth/index.js';
import { concat, wipe } from '../crypto/bytes.js';
import { randomBytesPooled } from '../crypto/random.js';
import { KEY_TYPES, keyLength, type KeyType } from '../crypto/cipher.js';
import { FrameError, SessionError } from '../errors.js';
import type { CommMode, HostSession } from '../sm/types.js';
import type { Transport } from '../transport.js';
import { Cmd } from '../protocol/commands.js';
import { exchange, type ExchangeOptions } from '../protocol/chaining.js';
import { COMMAND_PROTECTION, fileCommModes, protectionCommModes, type CommModes } from '../protocol/commModes.js';
import { CardStatusError, Status } from '../protocol/status.js';
import { checkInt, ValueRangeError } from '../protocol/errors.js';
import { ACCESS_FREE, type AccessRights } from '../protocol/codecs/access.js';
import {
  decodeApplicationIds, decodeDfNameEntry, encodeAid, encodeCreateApplication, type CreateApplicationParams, type DfNameEntry,
} from '../protocol/codecs/application.js';
import {
  CREATE_FILE_COMMANDS, decodeFileSettings, encodeChangeFileSettings, encodeCreateFile, MAX_FILE_NO,
  type ChangeFileSettingsParams, type CreateDataFileParams, type CreateRecordFileParams, type CreateValueFileParams, type FileSettings,
} from '../protocol/codecs/fileSettings.js';
import {
  decodeCardUid, decodeFileIds, decodeFreeMemory, decodeIsoFileIds, decodeKeyVersion, decodeSignature, decodeValue, encodeAmount,
  encodeConfiguration, encodeDataHeader, READ_SIG_ADDRESS, type Configuration,
} from '../protocol/codecs/misc.js';
import { decodeKeySettingsResponse, encodeAppKeySettings, type AppKeySettings, type KeySettingsInfo } from '../protocol/codecs/keySettings.js';
import { decodeVersion, type VersionInfo } from '../protocol/codecs/version.js';
import {
  COMMIT_RETURN_TMAC, decodeEncTmri, decodeTransactionMac, encodeCreateTransactionMacFile, TMAC_FILE_SIZE, TMRI_LENGTH,
  type CreateTransactionMacFileParams, type TransactionMacState,
} from '../protocol/codecs/tmac.js';
import type { AuthenticateOptions, ChangeKeyOptions, CommChoice, DesfireClientOptions, FileOpOptions, RandomSource } from './options.js';

const EMPTY = new Uint8Array(0);

/** A key of the right length for its type (ValueRangeError naming the argument, never the bytes). */
function checkKey(field: string, key: Uint8Array, type: KeyType): void {
  if (!KEY_TYPES.includes(type)) throw new ValueRangeError(`${field}Type`, 'must be des, 2k3des, 3k3des or aes');
  if (!(key instanceof Uint8Array) || key.length !== keyLength(type)) throw new ValueRangeError(field, `a ${type} key is ${keyLength(type)} bytes`);
}

const DEFAULT_KEY_TYPE: Record<AuthenticateOptions['method'], KeyType> = { ev2: 'aes', aes: 'aes', iso: '2k3des', d40: 'des' };

/** Arguments of one protected command. */
export interface CommandSpec {
  /** Header bytes that stay in plain (file number, offsets...). */
  readonly header?: Uint8Array;
  /** Command data protected by `modes.command`. */
  readonly data?: Uint8Array;
  /** Comm modes in a session (ignored without one: everything is plain then). */
  readonly modes?: CommModes;
  /** Expected plain response length, when known (helps EV1/D40 full-mode CRC search). */
  readonly plainLength?: number;
}

type FileOp = 'read' | 'write';

const COMM_CHOICES: readonly CommChoice[] = ['plain', 'mac', 'full', 'auto'];

export class DesfireClient {
  private readonly transport: Transport;
  private readonly random: RandomSource;
  private readonly xopts: ExchangeOptions;
  private readonly ev2Data: boolean;
  private current: HostSession | undefined;
  private aid = 0;
  private fileCache = new Map<number, FileSettings>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(transport: Transport, opts: DesfireClientOptions = {}) {
    this.transport = transport;
    this.random = opts.random ?? randomBytesPooled;
    this.xopts = {
      ...(opts.maxFrameData !== undefined ? { maxFrameData: checkInt('maxFrameData', opts.maxFrameData, 1, 255) } : {}),
      ...(opts.maxResponse !== undefined ? { maxResponse: opts.maxResponse } : {}),
    };
    this.ev2Data = opts.ev2DataCommands ?? false;
  }

  // ---------- state ----------

  /** The current authenticated session (undefined when not authenticated). */
  get session(): HostSession | undefined {
    return this.current;
  }

  /** The selected application (0 = PICC level) as far as this client knows. */
  get selectedAid(): number {
    return this.aid;
  }

  /**
   * Use a session established elsewhere (e.g. handed over by the CMS in remote mode, or built from
   * published session keys in tests). Any current session is destroyed.
   */
  adoptSession(session: HostSession): void {
    this.dropSession();
    this.current = session;
  }

  /** End the session on the host side (the card's ends on its own rules). */
  dropSession(): void {
    const s = this.current;
    this.current = undefined;
    s?.destroy();
  }

  /** Forget cached file settings (GetFileSettings is asked again for 'auto'). */
  forgetFileSettings(): void {
    this.fileCache.clear();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  // ---------- the command engine ----------

  /**
   * Send one command and return its plain response data. Protects it through the session (if
   * any), chains frames, checks the status (CardStatusError ends the session) and the response's
   * MAC/CRC (IntegrityError ends the session).
   */
  async command(ins: number, spec: CommandSpec = {}): Promise<Uint8Array> {
    return this.serial(() => this.run(ins, spec));
  }

  private async run(ins: number, spec: CommandSpec): Promise<Uint8Array> {
    return (await this.runFrames(ins, spec)).data;
  }

  /** run(), also returning the data length of each response frame (as received, before unwrapping). */
  private async runFrames(ins: number, spec: CommandSpec): Promise<{ data: Uint8Array; frameSizes: readonly number[] }> {
    const header = spec.header ?? EMPTY;
    const data = spec.data ?? EMPTY;
    const s = this.current;
    const modes = spec.modes ?? { command: 'plain', response: 'plain' };
    if (!s && modes.command !== 'plain') {
      throw new SessionError(`command ${ins.toString(16)} needs ${modes.command} protection but there is no session`);
    }
    try {
      const payload = s ? s.wrapCommand(ins, header, data, modes.command) : concat(header, data);
      const r = await exchange(this.transport, ins, payload, this.xopts);
      if (r.status !== Status.OPERATION_OK) throw new CardStatusError(r.status, ins);
      if (!s) return { data: r.data, frameSizes: r.frameSizes };
      return { data: s.unwrapResponse(ins, r.status, r.data, modes.response, spec.plainLength), frameSizes: r.frameSizes };
    } catch (e) {
      if (s) this.dropSession();
      throw e;
    }
  }

  /** Comm modes of a management command under the current session. */
  private mgmt(ins: number): CommModes | undefined {
    const s = this.current;
    const p = COMMAND_PROTECTION[ins];
    if (!s || p === undefined) return undefined;
    return protectionCommModes(s.kind, p);
  }

  private mgmtCommand(ins: number, header: Uint8Array = EMPTY, data: Uint8Array = EMPTY, plainLength?: number): Promise<Uint8Array> {
    return this.serial(() => {
      const modes = this.mgmt(ins);
      return this.run(ins, { header, data, ...(modes ? { modes } : {}), ...(plainLength !== undefined ? { plainLength } : {}) });
    });
  }

  // ---------- authentication ----------

  /**
   * Authenticate with key `keyNo` of the selected application (or the PICC). Any current session
   * ends first (EV2NonFirst carries its TI and counter over). Card refusals surface as
   * CardStatusError, a wrong key as AuthenticationError (from the RndA' check) or the card's AE.
   */
  async authenticate(keyNo: number, key: Uint8Array, opts: AuthenticateOptions): Promise<HostSession> {
    checkInt('keyNo', keyNo, 0, 13);
    let method: AuthMethod;
    switch (opts.method) {
      case 'ev2': method = opts.nonFirst ? 'ev2nonfirst' : 'ev2first'; break;
      case 'aes': method = 'aes'; break;
      case 'iso': method = 'iso'; break;
      case 'd40': method = 'd40'; break;
      default: throw new ValueRangeError('method', 'must be ev2, aes, iso or d40');
    }
    const keyType = opts.keyType ?? DEFAULT_KEY_TYPE[opts.method];
    if (!AUTH_KEY_TYPES[method].includes(keyType)) throw new ValueRangeError('keyType', `${opts.method} authentication does not take ${String(keyType)} keys`);
    checkKey('key', key, keyType);
    return this.serial(async () => {
      const previous = this.current;
      if (method === 'ev2nonfirst' && previous?.kind !== 'ev2') {
        throw new SessionError('AuthenticateEV2NonFirst needs a current EV2 session');
      }
      this.current = undefined;
      const xchg = async (ins: number, data: Uint8Array): Promise<ExchangeResult> => {
        const r = await exchange(this.transport, ins, data, { ...this.xopts, stopOnAdditionalFrame: true });
        if (r.status !== Status.OPERATION_OK && r.status !== Status.ADDITIONAL_FRAME) throw new CardStatusError(r.status, ins);
        return r;
      };
      try {
        const session = await authenticateHost(xchg, {
          method, keyNo, key, keyType, random: this.random,
          ...(method === 'ev2nonfirst' && previous ? { previous } : {}),
          ...(opts.pcdCap2 ? { pcdCap2: opts.pcdCap2 } : {}),
        });
        if (previous && previous !== session) previous.destroy();
        this.current = session;
        return session;
      } catch (e) {
        previous?.destroy();
        throw e;
      }
    });
  }

  // ---------- PICC and applications ----------

  async getVersion(): Promise<VersionInfo> {
    return decodeVersion(await this.mgmtCommand(Cmd.GET_VERSION));
  }

  /** Select an application (0 = PICC level). The session always ends (as on the card). */
  async selectApplication(aid: number): Promise<void> {
    const aidBytes = encodeAid(aid);
    return this.serial(async () => {
      this.dropSession();
      this.fileCache.clear();
      await this.run(Cmd.SELECT_APPLICATION, { data: aidBytes });
      this.aid = aid;
    });
  }

  async getApplicationIds(): Promise<number[]> {
    return decodeApplicationIds(await this.mgmtCommand(Cmd.GET_APPLICATION_IDS));
  }

  /**
   * GetDFNames: the applications with ISO identifiers. The card sends one application per frame,
   * so the entries are cut at the frame boundaries (the last frame also carried any MAC).
   */
  async getDfNames(): Promise<DfNameEntry[]> {
    const { data, frameSizes } = await this.serial(() => {
      const modes = this.mgmt(Cmd.GET_DF_NAMES);
      return this.runFrames(Cmd.GET_DF_NAMES, modes ? { modes } : {});
    });
    const out: DfNameEntry[] = [];
    let off = 0;
    for (const [i, n] of frameSizes.entries()) {
      const end = i === frameSizes.length - 1 ? data.length : Math.min(data.length, off + n);
      if (end > off) out.push(decodeDfNameEntry(data.subarray(off, end)));
      off = end;
    }
    return out;
  }

  async createApplication(p: CreateApplicationParams): Promise<void> {
    await this.mgmtCommand(Cmd.CREATE_APPLICATION, EMPTY, encodeCreateApplication(p));
  }

  /** Delete an application; deleting the selected one returns to the PICC level and ends the session. */
  async deleteApplication(aid: number): Promise<void> {
    const aidBytes = encodeAid(checkInt('aid', aid, 1, 0xffffff));
    return this.serial(async () => {
      const modes = this.mgmt(Cmd.DELETE_APPLICATION);
      await this.run(Cmd.DELETE_APPLICATION, { data: aidBytes, ...(modes ? { modes } : {}) });
      if (aid === this.aid) {
        this.aid = 0;
        this.fileCache.clear();
        this.dropSession();
      }
    });
  }

  async formatPicc(): Promise<void> {
    await this.mgmtCommand(Cmd.FORMAT_PICC);
    this.fileCache.clear();
  }

  async getFreeMemory(): Promise<number> {
    return decodeFreeMemory(await this.mgmtCommand(Cmd.FREE_MEMORY));
  }

  /** SetConfiguration: the option byte goes in plain, the data enciphered (needs a session). */
  async setConfiguration(c: Configuration): Promise<void> {
    const { option, data } = encodeConfiguration(c);
    if (!this.current) throw new SessionError('SetConfiguration needs an authenticated session');
    await this.mgmtCommand(Cmd.SET_CONFIGURATION, Uint8Array.of(option), data);
  }

  /** GetCardUID (EV1+): the real UID, answered enciphered (needs a session). */
  async getCardUid(): Promise<Uint8Array> {
    if (!this.current) throw new SessionError('GetCardUID needs an authenticated session');
    return decodeCardUid(await this.mgmtCommand(Cmd.GET_CARD_UID));
  }

  /** Read_Sig: the 56-byte originality signature (enciphered when a session is open). */
  async readSig(): Promise<Uint8Array> {
    return decodeSignature(await this.mgmtCommand(Cmd.READ_SIG, Uint8Array.of(READ_SIG_ADDRESS), EMPTY, 56));
  }

  // ---------- keys ----------

  async getKeySettings(): Promise<KeySettingsInfo> {
    return decodeKeySettingsResponse(await this.mgmtCommand(Cmd.GET_KEY_SETTINGS));
  }

  /** ChangeKeySettings (enciphered; needs a session with the master key). Takes the byte or the fields. */
  async changeKeySettings(settings: number | AppKeySettings): Promise<void> {
    const b = typeof settings === 'number' ? checkInt('settings', settings, 0, 0xff) : encodeAppKeySettings(settings);
    if (!this.current) throw new SessionError('ChangeKeySettings needs an authenticated session');
    await this.mgmtCommand(Cmd.CHANGE_KEY_SETTINGS, EMPTY, Uint8Array.of(b));
  }

  async getKeyVersion(keyNo: number): Promise<number> {
    checkInt('keyNo', keyNo, 0, 13);
    return decodeKeyVersion(await this.mgmtCommand(Cmd.GET_KEY_VERSION, Uint8Array.of(keyNo)));
  }

  /**
   * ChangeKey under the current session. Changing the authenticated key ends the session (the card
   * does the same); another key needs `oldKey`. At the PICC level the key type travels in the key
   * number flags.
   */
  async changeKey(keyNo: number, newKey: Uint8Array, opts: ChangeKeyOptions): Promise<void> {
    checkInt('keyNo', keyNo, 0, 13);
    checkKey('newKey', newKey, opts.keyType);
    if (opts.oldKey) checkKey('oldKey', opts.oldKey, opts.oldKeyType ?? opts.keyType);
    if (opts.keyVersion !== undefined) checkInt('keyVersion', opts.keyVersion, 0, 0xff);
    return this.serial(async () => {
      const s = this.current;
      if (!s) throw new SessionError('ChangeKey needs an authenticated session');
      const picc = opts.picc ?? this.aid === 0;
      const cmd = changeKeyPayload(s, {
        keyNo, newKey, newKeyType: opts.keyType, picc,
        ...(opts.keyVersion !== undefined ? { newKeyVersion: opts.keyVersion } : {}),
        ...(opts.oldKey ? { oldKey: opts.oldKey } : {}),
        ...(opts.oldKeyType ? { oldKeyType: opts.oldKeyType } : {}),
      });
      try {
        const r = await exchange(this.transport, Cmd.CHANGE_KEY, cmd.payload, this.xopts);
        wipe(cmd.payload);
        if (r.status !== Status.OPERATION_OK) throw new CardStatusError(r.status, Cmd.CHANGE_KEY);
        finishChangeKey(s, r.status, r.data, cmd.sameKey);
        if (cmd.sameKey) this.current = undefined;
      } catch (e) {
        this.dropSession();
        throw e;
      }
    });
  }

  // ---------- files ----------

  async getFileIds(): Promise<number[]> {
    return decodeFileIds(await this.mgmtCommand(Cmd.GET_FILE_IDS));
  }

  /** GetISOFileIDs: the ISO file identifiers of the selected application's files. */
  async getIsoFileIds(): Promise<number[]> {
    return decodeIsoFileIds(await this.mgmtCommand(Cmd.GET_ISO_FILE_IDS));
  }

  async getFileSettings(fileNo: number): Promise<FileSettings> {
    checkInt('fileNo', fileNo, 0, MAX_FILE_NO);
    const s = decodeFileSettings(await this.mgmtCommand(Cmd.GET_FILE_SETTINGS, Uint8Array.of(fileNo)));
    this.fileCache.set(fileNo, s);
    return s;
  }

  /**
   * ChangeFileSettings. The new settings go enciphered in a session unless `plain` is set (a card
   * takes them plain when the file's Change right is free).
   */
  async changeFileSettings(fileNo: number, p: ChangeFileSettingsParams, opts: { plain?: boolean } = {}): Promise<void> {
    checkInt('fileNo', fileNo, 0, MAX_FILE_NO);
    const data = encodeChangeFileSettings(p);
    return this.serial(async () => {
      this.fileCache.delete(fileNo);
      const s = this.current;
      const modes: CommModes | undefined = !s ? undefined
        : opts.plain ? { command: 'plain', response: protectionCommModes(s.kind, 'mac').response }
          : protectionCommModes(s.kind, 'full-command');
      await this.run(Cmd.CHANGE_FILE_SETTINGS, { header: Uint8Array.of(fileNo), data, ...(modes ? { modes } : {}) });
    });
  }

  private async createFile(p: CreateDataFileParams | CreateValueFileParams | CreateRecordFileParams): Promise<void> {
    const ins = CREATE_FILE_COMMANDS[p.type];
    const data = encodeCreateFile(p);
    this.fileCache.delete(p.fileNo);
    await this.mgmtCommand(ins, EMPTY, data);
  }

  createStdDataFile(p: Omit<CreateDataFileParams, 'type'>): Promise<void> {
    return this.createFile({ ...p, type: 'standard' });
  }

  createBackupDataFile(p: Omit<CreateDataFileParams, 'type'>): Promise<void> {
    return this.createFile({ ...p, type: 'backup' });
  }

  createValueFile(p: Omit<CreateValueFileParams, 'type'>): Promise<void> {
    return this.createFile({ ...p, type: 'value' });
  }

  createLinearRecordFile(p: Omit<CreateRecordFileParams, 'type'>): Promise<void> {
    return this.createFile({ ...p, type: 'linear-record' });
  }

  createCyclicRecordFile(p: Omit<CreateRecordFileParams, 'type'>): Promise<void> {
    return this.createFile({ ...p, type: 'cyclic-record' });
  }

  async deleteFile(fileNo: number): Promise<void> {
    checkInt('fileNo', fileNo, 0, MAX_FILE_NO);
    this.fileCache.delete(fileNo);
    await this.mgmtCommand(Cmd.DELETE_FILE, Uint8Array.of(fileNo));
  }

  // ---------- file data ----------

  /**
   * The comm mode a file operation uses: explicit, or from the file's settings ('auto'): the file's
   * mode when the session's key is one the operation's rights name; plain when one of those rights
   * is free (0xE) — or, for GetValue, when the file allows free GetValue; the file's mode otherwise
   * (the card will then refuse with 0xAE or 0x9D).
   */
  private async fileComm(fileNo: number, choice: CommChoice | undefined, rights: (a: AccessRights) => number[], op?: 'getValue'): Promise<CommMode> {
    const c = choice ?? (this.current ? 'auto' : 'plain');
    if (c !== 'auto') return c;
    const s = this.current;
    if (!s) return 'plain';
    let fs = this.fileCache.get(fileNo);
    if (!fs) {
      fs = decodeFileSettings(await this.run(Cmd.GET_FILE_SETTINGS, { header: Uint8Array.of(fileNo), modes: this.mgmt(Cmd.GET_FILE_SETTINGS)! }));
      this.fileCache.set(fileNo, fs);
    }
    const keys = rights(fs.access);
    if (keys.includes(s.keyNo)) return fs.comm;
    if (keys.includes(ACCESS_FREE)) return 'plain';
    if (op === 'getValue' && fs.type === 'value' && fs.freeGetValue) return 'plain';
    return fs.comm;
  }

  private modesFor(comm: CommMode, op: FileOp): CommModes | undefined {
    const s = this.current;
    if (!s) {
      if (comm !== 'plain') throw new SessionError(`${comm} file access needs an authenticated session`);
      return undefined;
    }
    return fileCommModes(s.kind, comm, op);
  }

  private fileOp(
    ins: number, fileNo: number, header: Uint8Array, data: Uint8Array, op: FileOp, opts: FileOpOptions,
    rights: (a: AccessRights) => number[], plainLength?: number, special?: 'getValue',
  ): Promise<Uint8Array> {
    if (opts.comm !== undefined && !COMM_CHOICES.includes(opts.comm)) return Promise.reject(new ValueRangeError('comm', 'must be plain, mac, full or auto'));
    return this.serial(async () => {
      const comm = await this.fileComm(fileNo, opts.comm, rights, special);
      const modes = this.modesFor(comm, op);
      return this.run(ins, { header, data, ...(modes ? { modes } : {}), ...(plainLength !== undefined ? { plainLength } : {}) });
    });
  }

  private dataIns(native: number, ev2: number, opts: FileOpOptions): number {
    return (opts.ev2Command ?? this.ev2Data) ? ev2 : native;
  }

  /** ReadData: `length` 0 reads to the end of the file. */
  async readData(fileNo: number, offset: number, length: number, opts: FileOpOptions = {}): Promise<Uint8Array> {
    const header = encodeDataHeader({ fileNo, offset, length });
    const ins = this.dataIns(Cmd.READ_DATA, Cmd.READ_DATA_EV2, opts);
    const out = await this.fileOp(ins, fileNo, header, EMPTY, 'read', opts, (a) => [a.read, a.readWrite], length > 0 ? length : undefined);
    if (length > 0 && out.length !== length) throw new FrameError(`card returned ${out.length} of ${length} bytes`);
    return out;
  }

  async writeData(fileNo: number, offset: number, data: Uint8Array, opts: FileOpOptions = {}): Promise<void> {
    if (data.length === 0) throw new ValueRangeError('data', 'must not be empty');
    const header = encodeDataHeader({ fileNo, offset, length: data.length });
    const ins = this.dataIns(Cmd.WRITE_DATA, Cmd.WRITE_DATA_EV2, opts);
    await this.fileOp(ins, fileNo, header, data, 'write', opts, (a) => [a.write, a.readWrite]);
  }

  async getValue(fileNo: number, opts: FileOpOptions = {}): Promise<number> {
    checkInt('fileNo', fileNo, 0, MAX_FILE_NO);
    return decodeValue(await this.fileOp(Cmd.GET_VALUE, fileNo, Uint8Array.of(fileNo), EMPTY, 'read', opts,
      (a) => [a.read, a.write, a.readWrite], 4, 'getValue'));
  }

  private valueOp(ins: number, fileNo: number, amount: number, opts: FileOpOptions, rights: (a: AccessRights) => number[]): Promise<Uint8Array> {
    checkInt('fileNo', fileNo, 0, MAX_FILE_NO);
    return this.fileOp(ins, fileNo, Uint8Array.of(fileNo), encodeAmount(amount), 'write', opts, rights);
  }

  async credit(fileNo: number, amount: number, opts: FileOpOptions = {}): Promise<void> {
    await this.valueOp(Cmd.CREDIT, fileNo, amount, opts, (a) => [a.readWrite]);
  }

  async debit(fileNo: number, amount: number, opts: FileOpOptions = {}): Promise<void> {
    await this.valueOp(Cmd.DEBIT, fileNo, amount, opts, (a) => [a.read, a.write, a.readWrite]);
  }

  async limitedCredit(fileNo: number, amount: number, opts: FileOpOptions = {}): Promise<void> {
    await this.valueOp(Cmd.LIMITED_CREDIT, fileNo, amount, opts, (a) => [a.write, a.readWrite]);
  }

  async writeRecord(fileNo: number, offset: number, data: Uint8Array, opts: FileOpOptions = {}): Promise<void> {
    if (data.length === 0) throw new ValueRangeError('data', 'must not be empty');
    const header = encodeDataHeader({ fileNo, offset, length: data.length });
    const ins = this.dataIns(Cmd.WRITE_RECORD, Cmd.WRITE_RECORD_EV2, opts);
    await this.fileOp(ins, fileNo, header, data, 'write', opts, (a) => [a.write, a.readWrite]);
  }

  /**
   * ReadRecords: `count` records starting `offset` records back from the newest (0 = all).
   * Returns the records' bytes joined, oldest first; split with `recordSize`.
   */
  async readRecords(fileNo: number, offset: number, count: number, opts: FileOpOptions & { recordSize?: number } = {}): Promise<Uint8Array> {
    const header = encodeDataHeader({ fileNo, offset, length: count });
    const ins = this.dataIns(Cmd.READ_RECORDS, Cmd.READ_RECORDS_EV2, opts);
    const plainLength = opts.recordSize !== undefined && count > 0 ? opts.recordSize * count : undefined;
    return this.fileOp(ins, fileNo, header, EMPTY, 'read', opts, (a) => [a.read, a.readWrite], plainLength);
  }

  async clearRecordFile(fileNo: number): Promise<void> {
    checkInt('fileNo', fileNo, 0, MAX_FILE_NO);
    await this.mgmtCommand(Cmd.CLEAR_RECORD_FILE, Uint8Array.of(fileNo));
  }

  // ---------- the command names as the DESFire datasheet spells them ----------

  /** Alias of getApplicationIds. */
  getApplicationIDs(): Promise<number[]> {
    return this.getApplicationIds();
  }

  /** Alias of getFileIds. */
  getFileIDs(): Promise<number[]> {
    return this.getFileIds();
  }

  /** Alias of getCardUid. */
  getCardUID(): Promise<Uint8Array> {
    return this.getCardUid();
  }

  /** Alias of formatPicc. */
  formatPICC(): Promise<void> {
    return this.formatPicc();
  }

  async commitTransaction(): Promise<void> {
    await this.mgmtCommand(Cmd.COMMIT_TRANSACTION);
  }

  // ---------- Transaction MAC (EV2+) ----------

  /**
   * CreateTransactionMACFile: one per application. The AES TMAC key and its version go enciphered
   * in a session (the application master key's, unless create/delete is free).
   */
  async createTransactionMacFile(p: CreateTransactionMacFileParams): Promise<void> {
    const { header, data } = encodeCreateTransactionMacFile(p);
    try {
      this.fileCache.delete(p.fileNo);
      await this.mgmtCommand(Cmd.CREATE_TRANSACTION_MAC_FILE, header, data);
    } finally {
      wipe(data);
    }
  }

  /**
   * CommitTransaction with option 01: commits and returns the TMC and TMV the card stored (the
   * card refuses the option, 9E, when the application has no Transaction MAC file).
   */
  async commitTransactionWithMac(): Promise<TransactionMacState> {
    return decodeTransactionMac(await this.mgmtCommand(Cmd.COMMIT_TRANSACTION, Uint8Array.of(COMMIT_RETURN_TMAC), EMPTY, TMAC_FILE_SIZE));
  }

  /**
   * CommitReaderID: binds a 16-byte reader ID into the ongoing transaction's TMAC. Returns EncTMRI
   * (the previous transaction's reader ID enciphered under SesTMENCKey) when authenticated,
   * undefined when not.
   */
  async commitReaderId(tmri: Uint8Array): Promise<Uint8Array | undefined> {
    if (!(tmri instanceof Uint8Array) || tmri.length !== TMRI_LENGTH) throw new ValueRangeError('tmri', 'a reader ID is 16 bytes');
    const out = await this.mgmtCommand(Cmd.COMMIT_READER_ID, EMPTY, tmri, TMRI_LENGTH);
    const enc = decodeEncTmri(out);
    if (this.current && !enc) throw new FrameError('CommitReaderID in a session must return EncTMRI');
    return enc;
  }

  /**
   * Read TMC || TMV from the Transaction MAC file (ReadData). Only its Read right applies: RW names
   * the CommitReaderID key on this file type.
   */
  async readTransactionMac(fileNo: number, opts: FileOpOptions = {}): Promise<TransactionMacState> {
    const header = encodeDataHeader({ fileNo, offset: 0, length: TMAC_FILE_SIZE });
    const ins = this.dataIns(Cmd.READ_DATA, Cmd.READ_DATA_EV2, opts);
    return decodeTransactionMac(await this.fileOp(ins, fileNo, header, EMPTY, 'read', opts, (a) => [a.read], TMAC_FILE_SIZE));
  }

  async abortTransaction(): Promise<void> {
    await this.mgmtCommand(Cmd.ABORT_TRANSACTION);
  }
}

/** Split joined records into `recordSize` pieces (FrameError-free: a ragged tail is a ValueRangeError). */
export function splitRecords(data: Uint8Array, recordSize: number): Uint8Array[] {
  checkInt('recordSize', recordSize, 1, 0xffffff);
  if (data.length % recordSize !== 0) throw new ValueRangeError('recordSize', 'does not divide the data');
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += recordSize) out.push(data.slice(i, i + recordSize));
  return out;
}


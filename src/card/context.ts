// The card's volatile state during a power cycle: selected application, authentication session,
// the uncommitted transaction; plus the helpers every command handler shares (access checks,
// secure-messaging unwrap). Nothing here survives reset() or tear().
import { TransactionMacInput } from '../core/sm/tmac.js';
import type { CardSession, CommMode } from '../core/sm/types.js';
import { type AccessRights, type AppState, type CardState, FREE, type FileState, NEVER, tmacFileOf } from './model.js';
import { CardFault, ST, fault } from './status.js';

export interface Req {
  ins: number;
  /** The command data of all frames, joined (everything after INS). */
  body: Uint8Array;
  /** Set once the secure-messaging layer has seen the command. */
  opened?: boolean;
}

export interface Reply {
  /** Plain response data (before secure messaging). */
  data?: Uint8Array;
  /** 0x00 (default) or 0xAF with `next` (a handler-driven exchange such as authentication). */
  status?: number;
  /** Comm mode of the response under a session; 'none' = never wrapped (authentication frames). */
  comm?: CommMode | 'none';
  /** Split the response into these frame sizes (GetVersion); the last frame takes any remainder. */
  frameSizes?: number[];
  /** End the session once the response is protected (the session's key or level is gone). */
  dropSession?: boolean;
  /** The handler for the next 0xAF frame of a multi-step exchange. */
  next?: (req: Req) => Reply;
}

/** Per-transaction working copies. Applied by CommitTransaction, dropped by everything else. */
export interface PendingValue {
  value: number;
  debited: number;
  credited: boolean;
}

export interface PendingRecord {
  cleared: boolean;
  newRecord?: Uint8Array;
}

export class Transaction {
  readonly backup = new Map<number, Uint8Array>();
  readonly values = new Map<number, PendingValue>();
  readonly records = new Map<number, PendingRecord>();
  /** Transaction MAC Input collected so far (only in an application with a TMAC file). */
  readonly tmi = new TransactionMacInput();
  /** Reader ID committed in this transaction by CommitReaderID (TMRICur). */
  tmriCur: Uint8Array | undefined;

  /** No pending file change (the TMI may still hold reads). */
  get empty(): boolean {
    return this.backup.size === 0 && this.values.size === 0 && this.records.size === 0;
  }

  clear(): void {
    this.backup.clear();
    this.values.clear();
    this.records.clear();
    this.tmi.clear();
    this.tmriCur = undefined;
  }
}

export type Right = keyof AccessRights;

export class CardContext {
  readonly state: CardState;
  readonly random: (n: number) => Uint8Array;
  selected: AppState | undefined;
  session: CardSession | undefined;
  readonly tx = new Transaction();
  /** Set by handlers that changed persistent state (the card then calls onChange). */
  dirty = false;

  constructor(state: CardState, random: (n: number) => Uint8Array) {
    this.state = state;
    this.random = random;
  }

  dropSession(): void {
    this.session?.destroy();
    this.session = undefined;
  }

  /** Reset / tear / select: authentication and the uncommitted transaction are lost. */
  resetVolatile(): void {
    this.dropSession();
    this.tx.clear();
    this.selected = undefined;
  }

  /**
   * Append a data command to the Transaction MAC Input when the selected application has a
   * Transaction MAC file (called by the handlers after every check passed, with the plain data).
   */
  tmacInput(cmd: number, params: Uint8Array, data?: Uint8Array): void {
    if (this.selected && tmacFileOf(this.selected)) this.tx.tmi.add(cmd, params, data);
  }

  get kind(): CardSession['kind'] | undefined {
    return this.session?.kind;
  }

  /**
   * The comm mode of commands that are not about a file (GetVersion, CreateApplication, ...):
   * EV2 sends them MAC'd both ways; EV1 sends the command in plain (the CMAC only advances the IV)
   * and MACs the response, which is EV1's 'plain' mode in src/core/sm; D40 plain.
   */
  get macComm(): CommMode {
    return this.session?.kind === 'ev2' ? 'mac' : 'plain';
  }

  /**
   * Pass the command through secure messaging: `headerLen` bytes of the body stay in plain, the
   * rest is checked (MAC) or deciphered (full). Throws IntegrityError on a bad MAC/CRC/padding.
   */
  open(req: Req, headerLen: number, comm: CommMode, plainLength?: number): { header: Uint8Array; data: Uint8Array } {
    if (req.body.length < headerLen) throw fault(ST.LENGTH_ERROR, 'command too short');
    const header = req.body.subarray(0, headerLen);
    const payload = req.body.subarray(headerLen);
    req.opened = true;
    if (!this.session) {
      if (comm !== 'plain') throw fault(ST.AUTHENTICATION_ERROR, 'secure messaging needs authentication');
      return { header, data: payload };
    }
    const data = this.session.unwrapCommand(req.ins, header, payload, comm, plainLength);
    return { header, data };
  }

  /** Length of a command's parameters once secure messaging's MAC (EV2 MAC mode) is set aside. */
  paramLength(req: Req): number {
    return req.body.length - (this.macComm === 'mac' ? 8 : 0);
  }

  /** A plain command with exactly `len` bytes (header only), through secure messaging. */
  fixed(req: Req, len: number, comm: CommMode = this.macComm): Uint8Array {
    const { header, data } = this.open(req, len, comm);
    if (data.length !== 0) throw fault(ST.LENGTH_ERROR, 'unexpected command data');
    return header;
  }

  // ---- selection and authentication checks ------------------------------------------------------

  app(): AppState {
    if (!this.selected) throw fault(ST.PERMISSION_DENIED, 'no application selected');
    return this.selected;
  }

  atPicc(): boolean {
    return this.selected === undefined;
  }

  /** Authenticated with key `keyNo` of the current level. */
  authedWith(keyNo: number): boolean {
    return this.session !== undefined && this.session.keyNo === keyNo;
  }

  /** Require authentication with the current level's master key (key 0). */
  requireMaster(): void {
    if (!this.authedWith(0)) throw fault(ST.AUTHENTICATION_ERROR, 'needs the master key');
  }

  file(fileNo: number): FileState {
    const f = this.app().files.get(fileNo);
    if (!f) throw fault(ST.FILE_NOT_FOUND, 'no such file');
    return f;
  }

  /**
   * File access check. Returns the comm mode the command runs in: the file's when authenticated
   * with a key the rights name; plain when a right is free (0xE) and the session's key is not
   * one of them. Not authenticated and no free right: 0xAE; authenticated with another key, or
   * every right 0xF: 0x9D.
   */
  access(file: FileState, rights: Right[]): CommMode {
    const keys = rights.map((r) => file.access[r]);
    if (this.session && keys.includes(this.session.keyNo)) return file.comm;
    if (keys.includes(FREE)) return 'plain';
    if (keys.every((k) => k === NEVER)) throw fault(ST.PERMISSION_DENIED, 'access never granted');
    if (!this.session) throw fault(ST.AUTHENTICATION_ERROR, 'file access needs authentication');
    throw fault(ST.PERMISSION_DENIED, 'authenticated key has no access');
  }
}

export { CardFault };

// EV2 secure messaging (AuthenticateEV2First / NonFirst sessions), both sides.
//
// MAC = CMAC(SesAuthMACKey, Ins || CmdCtr(LE16) || TI || Header || Data*) truncated to the
// odd-indexed bytes (1, 3, .., 15); responses: RC || CmdCtr+1 || TI || Data*.
// Full mode: Data* = E(SesAuthENCKey, IV, pad(Data)), IV_cmd = E(SesAuthENCKey, A5 5A || TI ||
// CmdCtr || 0*8), IV_resp = E(.., 5A A5 || TI || CmdCtr+1 || 0*8); padding always adds. Empty data
// is not enciphered (only the MAC is sent). CmdCtr advances once per command/response pair, in
// every comm mode: the host advances it in wrapCommand, the card in unwrapCommand.
import { concat, equalCT, wipe } from '../crypto/bytes.js';
import { BlockCipher } from '../crypto/cipher.js';
import { Cmac } from '../crypto/cmac.js';
import { FrameError, IntegrityError, SessionError } from '../errors.js';
import { unpadM2 } from './padding.js';
import type { CardSession, CommMode, HostSession } from './types.js';

export interface Ev2State {
  keyNo: number;
  ti: Uint8Array;
  cmdCtr: number;
  /** SesAuthENCKey and SesAuthMACKey (copied; the session wipes its copies on destroy). */
  encKey: Uint8Array;
  macKey: Uint8Array;
}

/** Read-only zero IV. */
const ZERO_IV = new Uint8Array(16);

/** Truncate a 16-byte CMAC to its odd-indexed bytes (EV2 MACt). */
export function truncateOdd(mac: Uint8Array): Uint8Array {
  const out = new Uint8Array(8);
  for (let i = 0; i < 8; i++) out[i] = mac[2 * i + 1]!;
  return out;
}

/** The shared EV2 engine: keys, TI, counter, and the computations both sides make. */
export class Ev2Engine {
  readonly keyNo: number;
  readonly ti: Uint8Array;
  cmdCtr: number;
  readonly enc: BlockCipher;
  readonly cmac: Cmac;
  private alive = true;

  constructor(s: Ev2State) {
    if (s.ti.length !== 4) throw new FrameError('TI must be 4 bytes');
    this.keyNo = s.keyNo;
    this.ti = Uint8Array.from(s.ti);
    this.cmdCtr = s.cmdCtr;
    this.enc = new BlockCipher('aes', s.encKey);
    this.cmac = new Cmac('aes', s.macKey);
  }

  check(): void {
    if (!this.alive) throw new SessionError('session destroyed');
  }

  iv(prefix: 0xa55a | 0x5aa5, ctr: number): Uint8Array {
    return this.enc.ecbEncrypt(this.ivInput(prefix, ctr));
  }

  /** The block whose encryption is the IV: prefix || TI || CmdCtr (LE16) || 0*8. */
  ivInput(prefix: 0xa55a | 0x5aa5, ctr: number): Uint8Array {
    const b = new Uint8Array(16);
    b[0] = prefix >>> 8;
    b[1] = prefix & 0xff;
    b.set(this.ti, 2);
    b[6] = ctr & 0xff;
    b[7] = (ctr >>> 8) & 0xff;
    return b;
  }

  macT(first: number, ctr: number, ...parts: Uint8Array[]): Uint8Array {
    return truncateOdd(this.cmac.macParts([Uint8Array.of(first, ctr & 0xff, (ctr >>> 8) & 0xff), this.ti, ...parts]));
  }

  /**
   * E(IV, pad(data)) with IV = E(ivInput): one buffer ivInput || data || 80 00.. enciphered in CBC
   * in one call (the first output block is the IV itself; see BlockCipher.cbcEncryptWithEncipheredIv).
   */
  encipher(prefix: 0xa55a | 0x5aa5, ctr: number, data: Uint8Array): Uint8Array {
    if (data.length === 0) return new Uint8Array(0);
    const n = (Math.floor(data.length / 16) + 1) * 16;
    const m = new Uint8Array(16 + n);
    m[0] = prefix >>> 8;
    m[1] = prefix & 0xff;
    m.set(this.ti, 2);
    m[6] = ctr & 0xff;
    m[7] = (ctr >>> 8) & 0xff;
    m.set(data, 16);
    m[16 + data.length] = 0x80;
    const out = this.enc.cbcChained(ZERO_IV, m, true);
    wipe(m, out.subarray(0, 16));
    return out.subarray(16);
  }

  decipher(prefix: 0xa55a | 0x5aa5, ctr: number, enc: Uint8Array): Uint8Array {
    if (enc.length === 0) return new Uint8Array(0);
    if (enc.length % 16 !== 0) throw new FrameError('enciphered data is not a whole number of blocks');
    const d = this.enc.cbcDecrypt(this.iv(prefix, ctr), enc);
    try {
      return unpadM2(d, 16);
    } finally {
      wipe(d);
    }
  }

  /** Protect a command at counter `ctr`. */
  protectCommand(ins: number, ctr: number, header: Uint8Array, data: Uint8Array, comm: CommMode): Uint8Array {
    if (comm === 'plain') return concat(header, data);
    const body = comm === 'full' ? this.encipher(0xa55a, ctr, data) : data;
    return concat(header, body, this.macT(ins, ctr, header, body));
  }

  /** Check a command at counter `ctr`; returns plain data. */
  openCommand(ins: number, ctr: number, header: Uint8Array, payload: Uint8Array, comm: CommMode): Uint8Array {
    if (comm === 'plain') return payload.slice();
    if (payload.length < 8) throw new FrameError('protected command shorter than its MAC');
    const body = payload.subarray(0, payload.length - 8);
    const mac = payload.subarray(payload.length - 8);
    if (!equalCT(mac, this.macT(ins, ctr, header, body))) throw new IntegrityError('command MAC mismatch');
    return comm === 'full' ? this.decipher(0xa55a, ctr, body) : body.slice();
  }

  /** Protect a response; `ctr` is the counter after the command (CmdCtr+1). */
  protectResponse(status: number, ctr: number, data: Uint8Array, comm: CommMode): Uint8Array {
    if (comm === 'plain') return data.slice();
    const body = comm === 'full' ? this.encipher(0x5aa5, ctr, data) : data;
    return concat(body, this.macT(status, ctr, body));
  }

  openResponse(status: number, ctr: number, body: Uint8Array, comm: CommMode): Uint8Array {
    if (comm === 'plain') return body.slice();
    if (body.length < 8) throw new FrameError('protected response shorter than its MAC');
    const data = body.subarray(0, body.length - 8);
    const mac = body.subarray(body.length - 8);
    if (!equalCT(mac, this.macT(status, ctr, data))) throw new IntegrityError('response MAC mismatch');
    return comm === 'full' ? this.decipher(0x5aa5, ctr, data) : data.slice();
  }

  nextCtr(): number {
    if (this.cmdCtr >= 0xffff) throw new SessionError('EV2 command counter exhausted: authenticate again');
    return this.cmdCtr + 1;
  }

  destroy(): void {
    this.alive = false;
    this.enc.destroy();
    this.cmac.destroy();
  }
}

function checkStatus(status: number, body: Uint8Array): boolean {
  if (status === 0x00 || status === 0xaf) return true;
  if (body.length !== 0) throw new FrameError(`error status 0x${status.toString(16)} with a response body`);
  return false;
}

/** The host's EV2 session. */
export class Ev2HostSession implements HostSession {
  readonly kind = 'ev2' as const;
  /** @internal */
  readonly engine: Ev2Engine;

  constructor(s: Ev2State) {
    this.engine = new Ev2Engine(s);
  }

  get keyNo(): number {
    return this.engine.keyNo;
  }
  get ti(): Uint8Array {
    return this.engine.ti.slice();
  }
  get cmdCtr(): number {
    return this.engine.cmdCtr;
  }

  wrapCommand(ins: number, header: Uint8Array, data: Uint8Array, comm: CommMode): Uint8Array {
    const e = this.engine;
    e.check();
    const next = e.nextCtr();
    const out = e.protectCommand(ins, e.cmdCtr, header, data, comm);
    e.cmdCtr = next;
    return out;
  }

  unwrapResponse(_ins: number, status: number, body: Uint8Array, comm: CommMode, _plainLength?: number): Uint8Array {
    const e = this.engine;
    e.check();
    if (!checkStatus(status, body)) return new Uint8Array(0);
    return e.openResponse(status, e.cmdCtr, body, comm);
  }

  destroy(): void {
    this.engine.destroy();
  }
}

/** The card's EV2 session. */
export class Ev2CardSession implements CardSession {
  readonly kind = 'ev2' as const;
  /** @internal */
  readonly engine: Ev2Engine;

  constructor(s: Ev2State) {
    this.engine = new Ev2Engine(s);
  }

  get keyNo(): number {
    return this.engine.keyNo;
  }
  get ti(): Uint8Array {
    return this.engine.ti.slice();
  }
  get cmdCtr(): number {
    return this.engine.cmdCtr;
  }

  unwrapCommand(ins: number, header: Uint8Array, payload: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array {
    const e = this.engine;
    e.check();
    const next = e.nextCtr();
    const data = e.openCommand(ins, e.cmdCtr, header, payload, comm);
    if (plainLength !== undefined && data.length !== plainLength) {
      wipe(data);
      throw new FrameError(`command data is ${data.length} bytes, expected ${plainLength}`);
    }
    e.cmdCtr = next;
    return data;
  }

  wrapResponse(_ins: number, status: number, data: Uint8Array, comm: CommMode): Uint8Array {
    const e = this.engine;
    e.check();
    return e.protectResponse(status, e.cmdCtr, data, comm);
  }

  destroy(): void {
    this.engine.destroy();
  }
}

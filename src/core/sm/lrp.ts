// LRP secure messaging (sessions from AuthenticateLRPFirst: 0x71 with PCDcap2[0] = 0x02), both
// sides. Same framing and CmdCtr/TI rules as EV2 (so `kind` is 'ev2' and `channel` 'lrp'), with
// AES-CMAC replaced by CMAC-LRP under updated key 0 of SesAuthMaster and AES-CBC replaced by LRICB
// under updated key 1 with a 4-byte EncCtr that starts at 0 (PICCData in the authentication) and
// runs on across commands and responses, one step per block. Padding always adds (80 00..).
import { concat, equalCT, wipe } from '../crypto/bytes.js';
import { CryptoInputError } from '../crypto/cipher.js';
import { Lrp, LrpCmac, lricbDecrypt, lricbEncrypt } from '../crypto/lrp.js';
import { FrameError, IntegrityError, SessionError } from '../errors.js';
import { truncateOdd } from './ev2.js';
import type { CardSession, CommMode, HostSession } from './types.js';

export interface LrpState {
  keyNo: number;
  ti: Uint8Array;
  cmdCtr: number;
  /** EncCtr (4 bytes, big-endian); 1 right after AuthenticateLRPFirst. */
  encCtr: Uint8Array;
  /** SesAuthMaster (copied; wiped on destroy). */
  master: Uint8Array;
}

export class LrpEngine {
  readonly keyNo: number;
  readonly ti: Uint8Array;
  cmdCtr: number;
  readonly encCtr: Uint8Array;
  readonly lrp: Lrp;
  readonly cmac: LrpCmac;
  private alive = true;

  constructor(s: LrpState) {
    if (s.ti.length !== 4) throw new FrameError('TI must be 4 bytes');
    if (s.encCtr.length !== 4) throw new FrameError('EncCtr must be 4 bytes');
    this.keyNo = s.keyNo;
    this.ti = Uint8Array.from(s.ti);
    this.cmdCtr = s.cmdCtr;
    this.encCtr = Uint8Array.from(s.encCtr);
    this.lrp = new Lrp(s.master);
    this.cmac = new LrpCmac(this.lrp, 0);
  }

  check(): void {
    if (!this.alive) throw new SessionError('session destroyed');
  }

  macT(first: number, ctr: number, ...parts: Uint8Array[]): Uint8Array {
    return truncateOdd(this.cmac.mac(concat(Uint8Array.of(first, ctr & 0xff, (ctr >>> 8) & 0xff), this.ti, ...parts)));
  }

  encipher(data: Uint8Array): Uint8Array {
    if (data.length === 0) return new Uint8Array(0);
    return lricbEncrypt(this.lrp, 1, this.encCtr, data, true);
  }

  /** Decipher; EncCtr advances only on success. */
  decipher(enc: Uint8Array): Uint8Array {
    if (enc.length === 0) return new Uint8Array(0);
    if (enc.length % 16 !== 0) throw new FrameError('enciphered data is not a whole number of blocks');
    const ctr = this.encCtr.slice();
    try {
      const out = lricbDecrypt(this.lrp, 1, ctr, enc, true);
      this.encCtr.set(ctr);
      return out;
    } catch (e) {
      if (e instanceof CryptoInputError) throw new IntegrityError('bad padding in enciphered data');
      throw e;
    }
  }

  protectCommand(ins: number, ctr: number, header: Uint8Array, data: Uint8Array, comm: CommMode): Uint8Array {
    if (comm === 'plain') return concat(header, data);
    const body = comm === 'full' ? this.encipher(data) : data;
    return concat(header, body, this.macT(ins, ctr, header, body));
  }

  openCommand(ins: number, ctr: number, header: Uint8Array, payload: Uint8Array, comm: CommMode): Uint8Array {
    if (comm === 'plain') return payload.slice();
    if (payload.length < 8) throw new FrameError('protected command shorter than its MAC');
    const body = payload.subarray(0, payload.length - 8);
    if (!equalCT(payload.subarray(payload.length - 8), this.macT(ins, ctr, header, body))) throw new IntegrityError('command MAC mismatch');
    return comm === 'full' ? this.decipher(body) : body.slice();
  }

  protectResponse(status: number, ctr: number, data: Uint8Array, comm: CommMode): Uint8Array {
    if (comm === 'plain') return data.slice();
    const body = comm === 'full' ? this.encipher(data) : data;
    return concat(body, this.macT(status, ctr, body));
  }

  openResponse(status: number, ctr: number, body: Uint8Array, comm: CommMode): Uint8Array {
    if (comm === 'plain') return body.slice();
    if (body.length < 8) throw new FrameError('protected response shorter than its MAC');
    const data = body.subarray(0, body.length - 8);
    if (!equalCT(body.subarray(body.length - 8), this.macT(status, ctr, data))) throw new IntegrityError('response MAC mismatch');
    return comm === 'full' ? this.decipher(data) : data.slice();
  }

  nextCtr(): number {
    if (this.cmdCtr >= 0xffff) throw new SessionError('command counter exhausted: authenticate again');
    return this.cmdCtr + 1;
  }

  destroy(): void {
    this.alive = false;
    this.cmac.destroy();
    this.lrp.destroy();
    wipe(this.encCtr);
  }
}

function successStatus(status: number, body: Uint8Array): boolean {
  if (status === 0x00 || status === 0xaf) return true;
  if (body.length !== 0) throw new FrameError(`error status 0x${status.toString(16)} with a response body`);
  return false;
}

export class LrpHostSession implements HostSession {
  readonly kind = 'ev2' as const;
  readonly channel = 'lrp' as const;
  /** @internal */
  readonly engine: LrpEngine;
  constructor(s: LrpState) {
    this.engine = new LrpEngine(s);
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
    this.engine.check();
    if (!successStatus(status, body)) return new Uint8Array(0);
    return this.engine.openResponse(status, this.engine.cmdCtr, body, comm);
  }
  destroy(): void {
    this.engine.destroy();
  }
}

export class LrpCardSession implements CardSession {
  readonly kind = 'ev2' as const;
  readonly channel = 'lrp' as const;
  /** @internal */
  readonly engine: LrpEngine;
  constructor(s: LrpState) {
    this.engine = new LrpEngine(s);
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
    this.engine.check();
    return this.engine.protectResponse(status, this.engine.cmdCtr, data, comm);
  }
  destroy(): void {
    this.engine.destroy();
  }
}

// D40 (legacy native, after Authenticate 0x0A) secure messaging, both sides. No chaining state:
// every operation starts with a zero IV.
// - MAC mode: Data || MAC, MAC = first 4 bytes of the last block of E_CBC(SesKey, 0, Data || 00..)
//   (covers the data only, not INS/header/status). No data: nothing is added.
// - Full mode: Data || CRC16(Data) || 00.. (CRC16 = ISO 14443-3 CRC_A over the data only).
//   Host -> card: "send mode" (the host DEciphers the chained blocks, the card enciphers);
//   card -> host: ordinary CBC encryption, the host deciphers. No data: nothing is sent.
import { concat, equalCT, wipe } from '../crypto/bytes.js';
import { BlockCipher, type KeyType } from '../crypto/cipher.js';
import { crc16A } from '../crypto/crc.js';
import { FrameError, IntegrityError, SessionError } from '../errors.js';
import { findCrcEnd, padZero } from './padding.js';
import type { CardSession, CommMode, HostSession } from './types.js';

export interface D40State {
  keyNo: number;
  keyType: KeyType;
  sessionKey: Uint8Array;
}

export class D40Engine {
  readonly keyNo: number;
  readonly keyType: KeyType;
  readonly cipher: BlockCipher;
  readonly bs: number;
  private alive = true;

  constructor(s: D40State) {
    if (s.keyType !== 'des' && s.keyType !== '2k3des') throw new FrameError('D40 sessions use DES or 2K3DES keys');
    this.keyNo = s.keyNo;
    this.keyType = s.keyType;
    this.cipher = new BlockCipher(s.keyType, s.sessionKey);
    this.bs = this.cipher.blockSize;
  }

  check(): void {
    if (!this.alive) throw new SessionError('session destroyed');
  }

  mac(data: Uint8Array): Uint8Array {
    const p = padZero(data, this.bs);
    const c = this.cipher.cbcEncrypt(new Uint8Array(this.bs), p);
    const m = c.slice(c.length - this.bs, c.length - this.bs + 4);
    wipe(p, c);
    return m;
  }

  private protect(data: Uint8Array, comm: CommMode, send: boolean): Uint8Array {
    if (comm === 'plain' || data.length === 0) return data.slice();
    if (comm === 'mac') return concat(data, this.mac(data));
    const p = padZero(concat(data, crc16A(data)), this.bs);
    const out = send ? this.cipher.legacySendDecrypt(p) : this.cipher.cbcEncrypt(new Uint8Array(this.bs), p);
    wipe(p);
    return out;
  }

  private open(body: Uint8Array, comm: CommMode, send: boolean, plainLength?: number): Uint8Array {
    if (comm === 'plain' || body.length === 0) {
      if (plainLength !== undefined && body.length !== plainLength) throw new FrameError(`data is ${body.length} bytes, expected ${plainLength}`);
      return body.slice();
    }
    if (comm === 'mac') {
      if (body.length < 5) throw new FrameError('MAC-protected data shorter than its MAC');
      const data = body.subarray(0, body.length - 4);
      if (plainLength !== undefined && data.length !== plainLength) throw new FrameError(`data is ${data.length} bytes, expected ${plainLength}`);
      if (!equalCT(this.mac(data), body.subarray(body.length - 4))) throw new IntegrityError('MAC mismatch');
      return data.slice();
    }
    if (body.length % this.bs !== 0) throw new FrameError('enciphered data is not a whole number of blocks');
    const dec = send ? this.cipher.legacySendEncryptInverse(body) : this.cipher.cbcDecrypt(new Uint8Array(this.bs), body);
    try {
      const len = findCrcEnd(dec, 2, this.bs, (l) => equalCT(crc16A(dec.subarray(0, l)), dec.subarray(l, l + 2)), plainLength);
      return dec.slice(0, len);
    } finally {
      wipe(dec);
    }
  }

  protectCommand(header: Uint8Array, data: Uint8Array, comm: CommMode): Uint8Array {
    return concat(header, this.protect(data, comm, true));
  }
  openCommand(payload: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array {
    return this.open(payload, comm, true, plainLength);
  }
  protectResponse(data: Uint8Array, comm: CommMode): Uint8Array {
    return this.protect(data, comm, false);
  }
  openResponse(body: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array {
    return this.open(body, comm, false, plainLength);
  }

  destroy(): void {
    this.alive = false;
    this.cipher.destroy();
  }
}

export class D40HostSession implements HostSession {
  readonly kind = 'd40' as const;
  /** @internal */
  readonly engine: D40Engine;
  constructor(s: D40State) {
    this.engine = new D40Engine(s);
  }
  get keyNo(): number {
    return this.engine.keyNo;
  }
  wrapCommand(_ins: number, header: Uint8Array, data: Uint8Array, comm: CommMode): Uint8Array {
    this.engine.check();
    return this.engine.protectCommand(header, data, comm);
  }
  unwrapResponse(_ins: number, status: number, body: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array {
    this.engine.check();
    if (status !== 0x00 && status !== 0xaf) {
      if (body.length !== 0) throw new FrameError(`error status 0x${status.toString(16)} with a response body`);
      return new Uint8Array(0);
    }
    return this.engine.openResponse(body, comm, plainLength);
  }
  destroy(): void {
    this.engine.destroy();
  }
}

export class D40CardSession implements CardSession {
  readonly kind = 'd40' as const;
  /** @internal */
  readonly engine: D40Engine;
  constructor(s: D40State) {
    this.engine = new D40Engine(s);
  }
  get keyNo(): number {
    return this.engine.keyNo;
  }
  unwrapCommand(_ins: number, _header: Uint8Array, payload: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array {
    this.engine.check();
    return this.engine.openCommand(payload, comm, plainLength);
  }
  wrapResponse(_ins: number, _status: number, data: Uint8Array, comm: CommMode): Uint8Array {
    this.engine.check();
    return this.engine.protectResponse(data, comm);
  }
  destroy(): void {
    this.engine.destroy();
  }
}

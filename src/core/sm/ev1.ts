// EV1 secure messaging (sessions from ISO 0x1A or AES 0xAA authentication), both sides.
//
// One running IV (cipher block size, zero after authentication) chains everything:
// - command, plain/MAC: CMAC(SesKey, IV, Ins || Header || Data) becomes the IV; in MAC mode the
//   first 8 bytes are appended (only when there is data; a command without data is sent plain).
// - command, full (with data): Header || E(SesKey, IV, Data || CRC32(Ins || Header || Data) || 00..);
//   the IV becomes the last ciphertext block. Without data: as plain.
// - response, plain/MAC: Data || CMAC(SesKey, IV, Data || Status)[0..8]; the IV becomes the full CMAC.
// - response, full: E(SesKey, IV, Data || CRC32(Data || Status) || 00..), IV = last block. A full
//   response without data (e.g. WriteData) is sent like a MAC response, as real cards do.
// EV1 "changing another key: response CMAC IV = last ciphertext block" falls out of this chaining.
import { concat, equalCT, wipe } from '../crypto/bytes.js';
import { BlockCipher, type KeyType } from '../crypto/cipher.js';
import { Cmac } from '../crypto/cmac.js';
import { crc32Desfire } from '../crypto/crc.js';
import { FrameError, IntegrityError, SessionError } from '../errors.js';
import { findCrcEnd, padZero } from './padding.js';
import type { CardSession, CommMode, HostSession } from './types.js';

export interface Ev1State {
  keyNo: number;
  keyType: KeyType;
  sessionKey: Uint8Array;
  /** The running IV; zero right after authentication (default). */
  iv?: Uint8Array;
}

function lastBlock(b: Uint8Array, bs: number): Uint8Array {
  return b.slice(b.length - bs);
}

export class Ev1Engine {
  readonly keyNo: number;
  readonly keyType: KeyType;
  readonly cipher: BlockCipher;
  readonly cmac: Cmac;
  readonly bs: number;
  iv: Uint8Array;
  private alive = true;

  constructor(s: Ev1State) {
    this.keyNo = s.keyNo;
    this.keyType = s.keyType;
    this.cipher = new BlockCipher(s.keyType, s.sessionKey);
    this.cmac = new Cmac(this.cipher);
    this.bs = this.cipher.blockSize;
    this.iv = s.iv ? Uint8Array.from(s.iv) : new Uint8Array(this.bs);
  }

  check(): void {
    if (!this.alive) throw new SessionError('session destroyed');
  }

  /** Encipher `plain` (already padded) with the running IV; advances the IV. */
  encipherChained(plain: Uint8Array): Uint8Array {
    const enc = this.cipher.cbcEncrypt(this.iv, plain);
    this.iv = lastBlock(enc, this.bs);
    return enc;
  }

  protectCommand(ins: number, header: Uint8Array, data: Uint8Array, comm: CommMode): Uint8Array {
    if (comm === 'full' && data.length > 0) {
      const crc = crc32Desfire(concat(Uint8Array.of(ins), header, data));
      const p = padZero(concat(data, crc), this.bs);
      const enc = this.encipherChained(p);
      wipe(p);
      return concat(header, enc);
    }
    const m = this.cmac.mac(concat(Uint8Array.of(ins), header, data), this.iv);
    this.iv = m;
    if (comm === 'mac' && data.length > 0) return concat(header, data, m.subarray(0, 8));
    return concat(header, data);
  }

  /** Check a command; the IV advances only on success. */
  openCommand(ins: number, header: Uint8Array, payload: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array {
    const insb = Uint8Array.of(ins);
    if (comm === 'full' && payload.length > 0) {
      if (payload.length % this.bs !== 0) throw new FrameError('enciphered data is not a whole number of blocks');
      const dec = this.cipher.cbcDecrypt(this.iv, payload);
      try {
        const len = findCrcEnd(dec, 4, this.bs, (l) => equalCT(crc32Desfire(concat(insb, header, dec.subarray(0, l))), dec.subarray(l, l + 4)), plainLength);
        this.iv = lastBlock(payload, this.bs);
        return dec.slice(0, len);
      } finally {
        wipe(dec);
      }
    }
    if (comm === 'mac' && payload.length > 0) {
      if (payload.length < 8) throw new FrameError('MAC-protected command shorter than its MAC');
      const data = payload.subarray(0, payload.length - 8);
      if (plainLength !== undefined && data.length !== plainLength) throw new FrameError(`command data is ${data.length} bytes, expected ${plainLength}`);
      const m = this.cmac.mac(concat(insb, header, data), this.iv);
      if (!equalCT(m.subarray(0, 8), payload.subarray(payload.length - 8))) throw new IntegrityError('command CMAC mismatch');
      this.iv = m;
      return data.slice();
    }
    if (plainLength !== undefined && payload.length !== plainLength) throw new FrameError(`command data is ${payload.length} bytes, expected ${plainLength}`);
    this.iv = this.cmac.mac(concat(insb, header, payload), this.iv);
    return payload.slice();
  }

  protectResponse(status: number, data: Uint8Array, comm: CommMode): Uint8Array {
    if (comm === 'full' && data.length > 0) {
      const p = padZero(concat(data, crc32Desfire(concat(data, Uint8Array.of(status)))), this.bs);
      const enc = this.encipherChained(p);
      wipe(p);
      return enc;
    }
    const m = this.cmac.mac(concat(data, Uint8Array.of(status)), this.iv);
    this.iv = m;
    return concat(data, m.subarray(0, 8));
  }

  private openMacResponse(status: number, body: Uint8Array): Uint8Array | undefined {
    if (body.length < 8) return undefined;
    const data = body.subarray(0, body.length - 8);
    const m = this.cmac.mac(concat(data, Uint8Array.of(status)), this.iv);
    if (!equalCT(m.subarray(0, 8), body.subarray(body.length - 8))) return undefined;
    this.iv = m;
    return data.slice();
  }

  openResponse(status: number, body: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array {
    if (comm === 'full' && plainLength !== 0) {
      // A full response without data carries a CMAC only: try that when the body is one MAC long.
      if (body.length === 8 && plainLength === undefined) {
        const r = this.openMacResponse(status, body);
        if (r) return r;
        if (this.bs === 16) throw new IntegrityError('response CMAC mismatch');
      }
      if (body.length === 0 || body.length % this.bs !== 0) throw new FrameError('enciphered response is not a whole number of blocks');
      const dec = this.cipher.cbcDecrypt(this.iv, body);
      const st = Uint8Array.of(status);
      try {
        const len = findCrcEnd(dec, 4, this.bs, (l) => equalCT(crc32Desfire(concat(dec.subarray(0, l), st)), dec.subarray(l, l + 4)), plainLength);
        this.iv = lastBlock(body, this.bs);
        return dec.slice(0, len);
      } finally {
        wipe(dec);
      }
    }
    if (body.length < 8) throw new FrameError('response shorter than its CMAC');
    const r = this.openMacResponse(status, body);
    if (!r) throw new IntegrityError('response CMAC mismatch');
    return r;
  }

  destroy(): void {
    this.alive = false;
    this.cmac.destroy();
    this.cipher.destroy();
    wipe(this.iv);
  }
}

function successStatus(status: number, body: Uint8Array): boolean {
  if (status === 0x00 || status === 0xaf) return true;
  if (body.length !== 0) throw new FrameError(`error status 0x${status.toString(16)} with a response body`);
  return false;
}

export class Ev1HostSession implements HostSession {
  readonly kind = 'ev1' as const;
  /** @internal */
  readonly engine: Ev1Engine;
  constructor(s: Ev1State) {
    this.engine = new Ev1Engine(s);
  }
  get keyNo(): number {
    return this.engine.keyNo;
  }
  wrapCommand(ins: number, header: Uint8Array, data: Uint8Array, comm: CommMode): Uint8Array {
    this.engine.check();
    return this.engine.protectCommand(ins, header, data, comm);
  }
  unwrapResponse(_ins: number, status: number, body: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array {
    this.engine.check();
    if (!successStatus(status, body)) return new Uint8Array(0);
    return this.engine.openResponse(status, body, comm, plainLength);
  }
  destroy(): void {
    this.engine.destroy();
  }
}

export class Ev1CardSession implements CardSession {
  readonly kind = 'ev1' as const;
  /** @internal */
  readonly engine: Ev1Engine;
  constructor(s: Ev1State) {
    this.engine = new Ev1Engine(s);
  }
  get keyNo(): number {
    return this.engine.keyNo;
  }
  unwrapCommand(ins: number, header: Uint8Array, payload: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array {
    this.engine.check();
    return this.engine.openCommand(ins, header, payload, comm, plainLength);
  }
  wrapResponse(_ins: number, status: number, data: Uint8Array, comm: CommMode): Uint8Array {
    this.engine.check();
    return this.engine.protectResponse(status, data, comm);
  }
  destroy(): void {
    this.engine.destroy();
  }
}

// ChangeKey (0xC4) cryptograms for D40, EV1 and EV2 sessions, both sides.
//
// Key data on the wire: DES keys travel as 16 bytes (K || K), 2K3DES 16, 3K3DES 24, AES 16 followed
// by a key version byte. EV2 appends the version byte for every key type; D40/EV1 DES-family keys
// carry their version in the parity bits (see crypto/keyversion.ts for the policy).
// Changing another key than the authenticated one: key data = NewKey XOR OldKey (version byte not
// XORed), and a second CRC over the new key (bytes only) follows the first.
// - D40: KeyData || CRC16(KeyData) [|| CRC16(NewKey)] || 00.., sent "send mode" (host deciphers).
// - EV1: KeyData || CRC32(C4 || KeyNo || KeyData) [|| CRC32(NewKey)] || 00.., CBC with the running IV.
// - EV2: CommMode.Full of KeyData [|| CRC32(NewKey)] (padding 80 00.., MAC over the ciphertext).
// The PICC master key's new type goes in the key number: | 0x40 3K3DES, | 0x80 AES.
// After a same-key change the card ends the session and answers without a MAC; after another
// key's change the answer is MAC'd as usual (EV1: the CMAC IV is the last ciphertext block).
import { concat, equalCT, wipe, xor } from '../crypto/bytes.js';
import type { KeyType } from '../crypto/cipher.js';
import { crc16A, crc32Desfire } from '../crypto/crc.js';
import { desKeysEquivalent, getDesKeyVersion, setDesKeyVersion } from '../crypto/keyversion.js';
import { FrameError, IntegrityError, SessionError } from '../errors.js';
import { D40CardSession, D40HostSession } from './d40.js';
import { Ev1CardSession, Ev1HostSession } from './ev1.js';
import { Ev2CardSession, Ev2HostSession } from './ev2.js';
import { LrpCardSession, LrpHostSession } from './lrp.js';
import { padZero } from './padding.js';
import type { CardSession, HostSession, SessionKind } from './types.js';

export const INS_CHANGE_KEY = 0xc4;

/** Key number flag for the PICC master key's new type. */
export function piccKeyTypeFlag(type: KeyType): number {
  return type === 'aes' ? 0x80 : type === '3k3des' ? 0x40 : 0x00;
}

/** Key bytes as ChangeKey carries them (DES doubled to 16 bytes). */
export function wireKeyBytes(type: KeyType, key: Uint8Array): Uint8Array {
  const want = type === 'des' ? 8 : type === '3k3des' ? 24 : 16;
  if (key.length !== want) throw new FrameError(`${type} key must be ${want} bytes`);
  return type === 'des' ? concat(key, key) : Uint8Array.from(key);
}

function wireLength(type: KeyType): number {
  return type === '3k3des' ? 24 : 16;
}

function hasVersionByte(kind: SessionKind, type: KeyType): boolean {
  return type === 'aes' || kind === 'ev2';
}

export interface ChangeKeyRequest {
  /** Key number 0..13 (without type flags). */
  keyNo: number;
  newKey: Uint8Array;
  newKeyType: KeyType;
  /** Key version (0..255). AES/EV2: the version byte; D40/EV1 DES family: written into the parity bits. Default 0 (AES) / as in the key's parity bits (DES family). */
  newKeyVersion?: number;
  /** The current value of the key being changed: required when it is not the authenticated key. */
  oldKey?: Uint8Array;
  oldKeyType?: KeyType;
  /** Changing the PICC master key: the key number carries the new key type flags. */
  picc?: boolean;
}

export interface ChangeKeyCommand {
  /** Bytes after INS 0xC4: KeyNo byte and the cryptogram (EV2: and the MAC). */
  payload: Uint8Array;
  /** True when the authenticated key itself is changed: the card ends the session. */
  sameKey: boolean;
}

function keyData(kind: SessionKind, o: ChangeKeyRequest, sameKey: boolean): { data: Uint8Array; newWire: Uint8Array } {
  let nk = o.newKey;
  if (o.newKeyType !== 'aes' && o.newKeyVersion !== undefined && kind !== 'ev2') nk = setDesKeyVersion(nk, o.newKeyVersion);
  const newWire = wireKeyBytes(o.newKeyType, nk);
  if (nk !== o.newKey) wipe(nk);
  let kd: Uint8Array = newWire.slice();
  if (!sameKey) {
    if (!o.oldKey) throw new FrameError('changing another key needs the old key');
    const oldWire = wireKeyBytes(o.oldKeyType ?? o.newKeyType, o.oldKey);
    if (oldWire.length !== kd.length) throw new FrameError('old and new key have different lengths');
    const x = xor(kd, oldWire);
    wipe(kd, oldWire);
    kd = x;
  }
  if (hasVersionByte(kind, o.newKeyType)) {
    const v = o.newKeyVersion ?? 0;
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new FrameError('key version must be 0..255');
    const withV = concat(kd, Uint8Array.of(v));
    wipe(kd);
    kd = withV;
  }
  return { data: kd, newWire };
}

/** Host: build the ChangeKey command payload under the current session (advances its state). */
export function changeKeyPayload(session: HostSession, o: ChangeKeyRequest): ChangeKeyCommand {
  if (!Number.isInteger(o.keyNo) || o.keyNo < 0 || o.keyNo > 0x0d) throw new FrameError('key number must be 0..13');
  const keyNoByte = o.keyNo | (o.picc ? piccKeyTypeFlag(o.newKeyType) : 0);
  const sameKey = o.keyNo === session.keyNo;
  const { data, newWire } = keyData(session.kind, o, sameKey);
  const kn = Uint8Array.of(keyNoByte);
  try {
    if (session instanceof Ev2HostSession || session instanceof LrpHostSession) {
      const body = sameKey ? data : concat(data, crc32Desfire(newWire));
      const payload = session.wrapCommand(INS_CHANGE_KEY, kn, body, 'full');
      wipe(body);
      return { payload, sameKey };
    }
    if (session instanceof Ev1HostSession) {
      const e = session.engine;
      e.check();
      const plain = padZero(concat(data, crc32Desfire(concat(Uint8Array.of(INS_CHANGE_KEY), kn, data)), sameKey ? new Uint8Array(0) : crc32Desfire(newWire)), e.bs);
      const enc = e.encipherChained(plain);
      wipe(plain);
      return { payload: concat(kn, enc), sameKey };
    }
    if (session instanceof D40HostSession) {
      const e = session.engine;
      e.check();
      const plain = padZero(concat(data, crc16A(data), sameKey ? new Uint8Array(0) : crc16A(newWire)), e.bs);
      const enc = e.cipher.legacySendDecrypt(plain);
      wipe(plain);
      return { payload: concat(kn, enc), sameKey };
    }
    throw new SessionError('ChangeKey needs a D40, EV1 or EV2 session from this library');
  } finally {
    wipe(data, newWire);
  }
}

/**
 * Host: check the card's answer to ChangeKey. Same key: the body must be empty and the session is
 * destroyed (the card ended it). Another key: the MAC is checked and the session continues.
 */
export function finishChangeKey(session: HostSession, status: number, body: Uint8Array, sameKey: boolean): void {
  if (sameKey) {
    session.destroy();
    if (body.length !== 0) throw new FrameError('unexpected data after a same-key ChangeKey');
    return;
  }
  session.unwrapResponse(INS_CHANGE_KEY, status, body, 'mac', 0);
}

export interface OpenChangeKeyOptions {
  /** The type of the key being changed (for application keys: the application's key type). Ignored with `picc` (the flags decide). */
  newKeyType?: KeyType;
  /** Current value of the key being changed (needed when it is not the authenticated key). */
  oldKey?: Uint8Array;
  oldKeyType?: KeyType;
  /** The PICC master key is being changed: the key number byte's flags give the new type. */
  picc?: boolean;
}

export interface OpenedChangeKey {
  keyNo: number;
  /** The new key, in its effective type: a DES-family key whose halves are equal is 'des' (8 bytes). */
  newKey: Uint8Array;
  newKeyType: KeyType;
  version: number;
  /** The authenticated key was changed: the card must end the session after answering. */
  sameKey: boolean;
}

/** Card: check and decrypt a ChangeKey payload (bytes after INS). Throws IntegrityError / FrameError. */
export function openChangeKeyPayload(session: CardSession, payload: Uint8Array, o: OpenChangeKeyOptions = {}): OpenedChangeKey {
  if (payload.length < 1) throw new FrameError('ChangeKey without a key number');
  const keyNoByte = payload[0]!;
  let keyNo: number;
  let type: KeyType;
  if (o.picc) {
    keyNo = keyNoByte & 0x3f;
    const f = keyNoByte & 0xc0;
    if (f === 0xc0) throw new FrameError('bad key type flags');
    type = f === 0x80 ? 'aes' : f === 0x40 ? '3k3des' : '2k3des';
  } else {
    keyNo = keyNoByte;
    if (!o.newKeyType) throw new FrameError('the new key type is needed for an application key');
    type = o.newKeyType === 'des' ? '2k3des' : o.newKeyType;
  }
  if (keyNo > 0x0d) throw new FrameError('key number must be 0..13');
  const sameKey = keyNo === session.keyNo;
  const kind = session.kind;
  const wl = wireLength(type);
  const kdLen = wl + (hasVersionByte(kind, type) ? 1 : 0);
  const body = payload.subarray(1);
  const kn = payload.subarray(0, 1);
  // Everything about the request is checked before any session state moves.
  let oldWire: Uint8Array | undefined;
  if (!sameKey) {
    if (!o.oldKey) throw new FrameError('changing another key needs the old key');
    oldWire = wireKeyBytes(o.oldKeyType ?? o.newKeyType ?? type, o.oldKey);
    if (oldWire.length !== wl) {
      wipe(oldWire);
      throw new FrameError('old and new key have different lengths');
    }
  }
  let dec: Uint8Array;
  try {
    if (session instanceof Ev2CardSession || session instanceof LrpCardSession) {
      dec = session.unwrapCommand(INS_CHANGE_KEY, kn, body, 'full', kdLen + (sameKey ? 0 : 4));
    } else if (session instanceof Ev1CardSession || session instanceof D40CardSession) {
      const e = session.engine;
      e.check();
      const crcLen = session instanceof Ev1CardSession ? 4 : 2;
      const plainLen = kdLen + crcLen + (sameKey ? 0 : crcLen);
      const padded = Math.ceil(plainLen / e.bs) * e.bs;
      if (body.length !== padded) throw new FrameError(`ChangeKey cryptogram must be ${padded} bytes, got ${body.length}`);
      dec = session instanceof Ev1CardSession ? session.engine.cipher.cbcDecrypt(session.engine.iv, body) : session.engine.cipher.legacySendEncryptInverse(body);
      const kd = dec.subarray(0, kdLen);
      const crc1 = crcLen === 4 ? crc32Desfire(concat(Uint8Array.of(INS_CHANGE_KEY), kn, kd)) : crc16A(kd);
      let ok = equalCT(crc1, dec.subarray(kdLen, kdLen + crcLen));
      for (let i = plainLen; i < dec.length; i++) if (dec[i] !== 0) ok = false;
      // The second CRC (over the new key) is checked below, once the key is recovered.
      if (!ok) {
        wipe(dec);
        throw new IntegrityError('ChangeKey CRC mismatch');
      }
    } else {
      throw new SessionError('ChangeKey needs a D40, EV1 or EV2 session from this library');
    }
  } catch (e) {
    wipe(oldWire);
    throw e;
  }
  const kd = dec.subarray(0, wl);
  let newWire: Uint8Array;
  if (sameKey) newWire = kd.slice();
  else {
    newWire = xor(kd, oldWire!);
    wipe(oldWire);
    const crcLen = session instanceof D40CardSession ? 2 : 4;
    const crc2 = crcLen === 4 ? crc32Desfire(newWire) : crc16A(newWire);
    const at = session.kind === 'ev2' ? kdLen : kdLen + crcLen;
    if (!equalCT(crc2, dec.subarray(at, at + crcLen))) {
      wipe(dec, newWire);
      throw new IntegrityError('ChangeKey CRC of the new key mismatch');
    }
  }
  const versionByte = hasVersionByte(kind, type) ? dec[wl]! : undefined;
  wipe(dec);
  if (session instanceof Ev1CardSession) session.engine.iv = body.slice(body.length - session.engine.bs);
  let newKey = newWire;
  let newKeyType: KeyType = type;
  if (type === '2k3des' && desKeysEquivalent(newWire.subarray(0, 8), newWire.subarray(8, 16))) {
    newKey = newWire.slice(0, 8);
    newKeyType = 'des';
    wipe(newWire);
  }
  const version = versionByte ?? getDesKeyVersion(newKey);
  return { keyNo, newKey, newKeyType, version, sameKey };
}

/** Card: the response body to a successful ChangeKey (empty after a same-key change). */
export function changeKeyResponse(session: CardSession, sameKey: boolean): Uint8Array {
  if (sameKey) return new Uint8Array(0);
  return session.wrapResponse(INS_CHANGE_KEY, 0x00, new Uint8Array(0), 'mac');
}

// Card side of authentication: a two-step state machine (beginCardAuth -> pending.finish).
import { concat, equalCT, rotl, wipe } from '../crypto/bytes.js';
import { BlockCipher, type KeyType } from '../crypto/cipher.js';
import { AuthenticationError, FrameError, SessionError } from '../errors.js';
import { D40CardSession } from '../sm/d40.js';
import { Ev1CardSession } from '../sm/ev1.js';
import { Ev2CardSession } from '../sm/ev2.js';
import { LrpCardSession } from '../sm/lrp.js';
import { beginCardLrpAuth, wantsLrp } from './lrp.js';
import type { CardSession } from '../sm/types.js';
import { checkAuthParams } from './host.js';
import { ev1SessionKey, ev2SessionKeys, nonceLength } from './sessionkeys.js';
import { AUTH_INS, type AuthMethod, type CardAuthOptions, type CardAuthPending, type RandomSource } from './types.js';

/** What the card reads from the first authentication frame. */
export interface AuthRequest {
  method: AuthMethod;
  keyNo: number;
  /** ev2first: PCDcap2 (LenCap bytes). */
  pcdCap2?: Uint8Array;
}

/**
 * Parse the first frame of an authentication command (INS and its data). Throws FrameError on a
 * bad length. The key number is returned as sent (the card checks it exists).
 */
export function parseAuthRequest(ins: number, data: Uint8Array): AuthRequest {
  const method = (Object.keys(AUTH_INS) as AuthMethod[]).find((m) => AUTH_INS[m] === ins);
  if (!method) throw new FrameError(`0x${ins.toString(16)} is not an authentication command`);
  if (method === 'ev2first') {
    if (data.length < 2) throw new FrameError('AuthenticateEV2First needs KeyNo and LenCap');
    const len = data[1]!;
    if (len > 6 || data.length !== 2 + len) throw new FrameError('AuthenticateEV2First: bad LenCap');
    return { method, keyNo: data[0]!, pcdCap2: data.slice(2) };
  }
  if (data.length !== 1) throw new FrameError('authentication command takes exactly one byte (KeyNo)');
  return { method, keyNo: data[0]! };
}

function caps6(c: Uint8Array | undefined, what: string): Uint8Array {
  const out = new Uint8Array(6);
  if (c) {
    if (c.length > 6) throw new FrameError(`${what} is at most 6 bytes`);
    out.set(c);
  }
  return out;
}

/**
 * Start an authentication on the card: `rndB` is the card's nonce (8 bytes for DES/2K3DES, 16
 * otherwise). Returns the card's first answer (sent with status 0xAF) and the pending state.
 */
export function beginCardAuth(
  method: AuthMethod,
  keyNo: number,
  key: Uint8Array,
  keyType: KeyType,
  rndB: Uint8Array,
  opts: CardAuthOptions = {},
): { response: Uint8Array; pending: CardAuthPending } {
  checkAuthParams(method, keyNo, keyType);
  const n = nonceLength(keyType);
  if (rndB.length !== n) throw new FrameError(`RndB must be ${n} bytes`);
  let prev: Ev2CardSession | undefined;
  if (method === 'ev2nonfirst' && opts.previous instanceof LrpCardSession) throw new SessionError('AuthenticateLRPNonFirst is not implemented');
  if (method === 'ev2first' && wantsLrp(opts.pcdCap2)) return beginLrp(keyNo, key, rndB, opts);
  if (method === 'ev2nonfirst') {
    if (!(opts.previous instanceof Ev2CardSession)) throw new SessionError('AuthenticateEV2NonFirst needs a current EV2 session');
    prev = opts.previous;
  }
  const pcdCap2 = caps6(opts.pcdCap2, 'PCDcap2');
  const pdCap2 = caps6(opts.pdCap2, 'PDcap2');
  const c = new BlockCipher(keyType, key);
  const bs = c.blockSize;
  const zero = new Uint8Array(bs);
  const b = Uint8Array.from(rndB);
  const response = c.cbcEncrypt(zero, b);
  // copied now: the caller may wipe or reuse the response buffer once it is sent
  const ekLast = response.slice(response.length - bs);
  let done = false;
  const pending: CardAuthPending = {
    method,
    keyNo,
    finish(data: Uint8Array, random?: RandomSource): { response: Uint8Array; session: CardSession } {
      if (done) throw new SessionError('authentication already finished');
      done = true;
      try {
        if (data.length !== 2 * n) throw new FrameError(`authentication frame must be ${2 * n} bytes, got ${data.length}`);
        const plain =
          method === 'd40'
            ? c.legacySendEncryptInverse(data)
            : c.cbcDecrypt(method === 'iso' || method === 'aes' ? ekLast : zero, data);
        const a = plain.slice(0, n);
        const rotB = rotl(b);
        const ok = equalCT(plain.subarray(n), rotB);
        wipe(plain, rotB);
        if (!ok) {
          wipe(a);
          throw new AuthenticationError("host's RndB' does not match");
        }
        const rotA = rotl(a);
        try {
          switch (method) {
            case 'd40': {
              const sk = ev1SessionKey(keyType, a, b);
              const session = new D40CardSession({ keyNo, keyType, sessionKey: sk });
              wipe(sk);
              return { response: c.cbcEncrypt(zero, rotA), session };
            }
            case 'iso':
            case 'aes': {
              const sk = ev1SessionKey(keyType, a, b);
              const session = new Ev1CardSession({ keyNo, keyType, sessionKey: sk });
              wipe(sk);
              return { response: c.cbcEncrypt(data.slice(data.length - bs), rotA), session };
            }
            case 'ev2first': {
              if (!random) throw new SessionError('AuthenticateEV2First needs a random source for the TI');
              const ti = random(4);
              if (ti.length !== 4) throw new FrameError('TI must be 4 bytes');
              const ks = ev2SessionKeys(c, a, b);
              const session = new Ev2CardSession({ keyNo, ti, cmdCtr: 0, encKey: ks.enc, macKey: ks.mac });
              wipe(ks.enc, ks.mac);
              return { response: c.cbcEncrypt(zero, concat(ti, rotA, pdCap2, pcdCap2)), session };
            }
            case 'ev2nonfirst': {
              const ks = ev2SessionKeys(c, a, b);
              const session = new Ev2CardSession({ keyNo, ti: prev!.engine.ti, cmdCtr: prev!.engine.cmdCtr, encKey: ks.enc, macKey: ks.mac });
              wipe(ks.enc, ks.mac);
              prev!.destroy();
              return { response: c.cbcEncrypt(zero, rotA), session };
            }
          }
        } finally {
          wipe(a, rotA);
        }
      } finally {
        wipe(b);
        c.destroy();
      }
    },
  };
  return { response, pending };
}

/** AuthenticateLRPFirst on the card (0x71 with PCDcap2[0] = 0x02). */
function beginLrp(keyNo: number, key: Uint8Array, rndB: Uint8Array, opts: CardAuthOptions): { response: Uint8Array; pending: CardAuthPending } {
  const l = beginCardLrpAuth(keyNo, key, rndB, caps6(opts.pdCap2, 'PDcap2'), caps6(opts.pcdCap2, 'PCDcap2'));
  let done = false;
  return {
    response: l.response,
    pending: {
      method: 'ev2first',
      keyNo,
      finish(data: Uint8Array, random?: RandomSource) {
        if (done) throw new SessionError('authentication already finished');
        done = true;
        if (!random) throw new SessionError('AuthenticateLRPFirst needs a random source for the TI');
        return l.finish(data, random);
      },
    },
  };
}

// Host side of authentication: the math (hostAuthStep, pure and synchronous) and the exchange
// driver (authenticateHost).
import { concat, equalCT, rotl, toHex, wipe } from '../crypto/bytes.js';
import { BlockCipher, type KeyType } from '../crypto/cipher.js';
import { AuthenticationError, FrameError, SessionError } from '../errors.js';
import { D40HostSession } from '../sm/d40.js';
import { Ev1HostSession } from '../sm/ev1.js';
import { Ev2HostSession } from '../sm/ev2.js';
import { LrpHostSession } from '../sm/lrp.js';
import { hostLrpStep, wantsLrp } from './lrp.js';
import type { HostSession } from '../sm/types.js';
import { ev1SessionKey, ev2SessionKeys, nonceLength } from './sessionkeys.js';
import { AUTH_INS, AUTH_KEY_TYPES, type AuthMethod, type Exchange, type HostAuthOptions, STATUS_AF } from './types.js';

export function checkAuthParams(method: AuthMethod, keyNo: number, keyType: KeyType): void {
  if (!(method in AUTH_INS)) throw new FrameError(`unknown authentication method ${String(method)}`);
  if (!Number.isInteger(keyNo) || keyNo < 0 || keyNo > 0x0d) throw new FrameError('key number must be 0..13');
  if (!AUTH_KEY_TYPES[method].includes(keyType)) throw new FrameError(`${method} authentication does not take ${keyType} keys`);
}

/** The host's state between its second frame and the card's final answer. */
export interface HostAuthStep {
  /** The host's second frame (sent with INS 0xAF). */
  readonly frame: Uint8Array;
  /** Check the card's final answer and build the session. Throws AuthenticationError / FrameError. */
  finish(cardData: Uint8Array): HostSession;
  /** Wipe the nonces (when the exchange fails before finish). */
  abort(): void;
}

/** The first frame's data: KeyNo, and for ev2first LenCap || PCDcap2. */
export function hostFirstFrame(method: AuthMethod, keyNo: number, pcdCap2?: Uint8Array): Uint8Array {
  if (method !== 'ev2first') return Uint8Array.of(keyNo);
  const cap = pcdCap2 ?? new Uint8Array(0);
  if (cap.length > 6) throw new FrameError('PCDcap2 is at most 6 bytes');
  return concat(Uint8Array.of(keyNo, cap.length), cap);
}

/**
 * Pure host math after the card's first answer `ekRndB`. `rndA` is the host nonce (8 bytes for
 * DES/2K3DES, 16 otherwise). `previous` is required for ev2nonfirst.
 */
export function hostAuthStep(
  method: AuthMethod,
  keyNo: number,
  key: Uint8Array,
  keyType: KeyType,
  ekRndB: Uint8Array,
  rndA: Uint8Array,
  previous?: HostSession,
): HostAuthStep {
  checkAuthParams(method, keyNo, keyType);
  const n = nonceLength(keyType);
  if (ekRndB.length !== n) throw new FrameError(`card's first authentication answer must be ${n} bytes, got ${ekRndB.length}`);
  if (rndA.length !== n) throw new FrameError(`RndA must be ${n} bytes`);
  let prev: Ev2HostSession | undefined;
  if (method === 'ev2nonfirst') {
    if (!(previous instanceof Ev2HostSession)) throw new SessionError('AuthenticateEV2NonFirst needs a current EV2 session');
    prev = previous;
  }
  const c = new BlockCipher(keyType, key);
  const bs = c.blockSize;
  const zero = new Uint8Array(bs);
  const rndB = c.cbcDecrypt(zero, ekRndB);
  const a = Uint8Array.from(rndA);
  const token = concat(a, rotl(rndB));
  let frame: Uint8Array;
  let replyIv: Uint8Array;
  switch (method) {
    case 'd40':
      frame = c.legacySendDecrypt(token);
      replyIv = zero;
      break;
    case 'iso':
    case 'aes':
      frame = c.cbcEncrypt(ekRndB.slice(ekRndB.length - bs), token);
      replyIv = frame.slice(frame.length - bs);
      break;
    default:
      frame = c.cbcEncrypt(zero, token);
      replyIv = zero;
  }
  wipe(token);
  const cleanup = () => {
    wipe(a, rndB);
    c.destroy();
  };
  return {
    frame,
    abort: cleanup,
    finish(cardData: Uint8Array): HostSession {
      try {
        const want = method === 'ev2first' ? 32 : n;
        if (cardData.length !== want) throw new FrameError(`card's final authentication answer must be ${want} bytes, got ${cardData.length}`);
        const d = c.cbcDecrypt(replyIv, cardData);
        const rotA = rotl(a);
        const got = method === 'ev2first' ? d.subarray(4, 20) : d;
        const ok = equalCT(got, rotA);
        const ti = d.slice(0, 4);
        wipe(d, rotA);
        if (!ok) throw new AuthenticationError("card's RndA' does not match: wrong key or not a genuine card");
        switch (method) {
          case 'd40': {
            const sk = ev1SessionKey(keyType, a, rndB);
            const s = new D40HostSession({ keyNo, keyType, sessionKey: sk });
            wipe(sk);
            return s;
          }
          case 'iso':
          case 'aes': {
            const sk = ev1SessionKey(keyType, a, rndB);
            const s = new Ev1HostSession({ keyNo, keyType, sessionKey: sk });
            wipe(sk);
            return s;
          }
          default: {
            const ks = ev2SessionKeys(c, a, rndB); // K's cipher, still live (destroyed by cleanup)
            const s = new Ev2HostSession({
              keyNo,
              ti: method === 'ev2first' ? ti : prev!.engine.ti,
              cmdCtr: method === 'ev2first' ? 0 : prev!.engine.cmdCtr,
              encKey: ks.enc,
              macKey: ks.mac,
            });
            wipe(ks.enc, ks.mac);
            if (prev) prev.destroy();
            return s;
          }
        }
      } finally {
        cleanup();
      }
    },
  };
}

/**
 * Authenticate with the card over `exchange` (one native frame per call; 0xAF continues).
 * Resolves to the session; rejects with AuthenticationError (card refused or RndA' mismatch),
 * FrameError (malformed answer) or SessionError (ev2nonfirst without an EV2 session).
 */
export async function authenticateHost(exchange: Exchange, o: HostAuthOptions): Promise<HostSession> {
  checkAuthParams(o.method, o.keyNo, o.keyType);
  if (o.method === 'ev2nonfirst' && o.previous instanceof LrpHostSession)
    throw new SessionError('AuthenticateLRPNonFirst is not implemented: authenticate with LRPFirst (ev2first, PCDcap2 02..) again');
  if (o.method === 'ev2nonfirst' && !(o.previous instanceof Ev2HostSession)) throw new SessionError('AuthenticateEV2NonFirst needs a current EV2 session');
  if (o.method === 'ev2first' && wantsLrp(o.pcdCap2)) return authenticateLrp(exchange, o);
  const ins = AUTH_INS[o.method];
  const r1 = await exchange(ins, hostFirstFrame(o.method, o.keyNo, o.pcdCap2));
  if (r1.status !== STATUS_AF) throw new AuthenticationError(`card refused authentication (status ${toHex(Uint8Array.of(r1.status & 0xff))})`);
  const rndA = o.random(nonceLength(o.keyType));
  const step = hostAuthStep(o.method, o.keyNo, o.key, o.keyType, r1.data, rndA, o.previous);
  wipe(rndA);
  let r2;
  try {
    r2 = await exchange(STATUS_AF, step.frame);
  } catch (e) {
    step.abort();
    throw e;
  }
  if (r2.status !== 0x00) {
    step.abort();
    throw new AuthenticationError(`card rejected the authentication (status ${toHex(Uint8Array.of(r2.status & 0xff))})`);
  }
  return step.finish(r2.data);
}

/** AuthenticateLRPFirst: 0x71 with PCDcap2[0] = 0x02. */
async function authenticateLrp(exchange: Exchange, o: HostAuthOptions): Promise<HostSession> {
  const r1 = await exchange(AUTH_INS.ev2first, hostFirstFrame('ev2first', o.keyNo, o.pcdCap2));
  if (r1.status !== STATUS_AF) throw new AuthenticationError(`card refused LRP authentication (status ${toHex(Uint8Array.of(r1.status & 0xff))})`);
  const rndA = o.random(16);
  const step = hostLrpStep(o.keyNo, o.key, r1.data, rndA);
  wipe(rndA);
  const r2 = await exchange(STATUS_AF, step.frame);
  if (r2.status !== 0x00) throw new AuthenticationError(`card rejected the LRP authentication (status ${toHex(Uint8Array.of(r2.status & 0xff))})`);
  return step.finish(r2.data);
}

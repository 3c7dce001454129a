// AuthenticateLRPFirst (0x71 with PCDcap2[0] = 0x02; AN12343 T19/T20), host and card math.
// Card's first answer: AuthMode (01) || RndB in plain. Host: RndA || PCDResponse, PCDResponse =
// CMAC-LRP(SesAuthMaster, RndA || RndB). Card: PICCData = LRICB(UK1, EncCtr 0, TI || PDcap2 ||
// PCDcap2) || PICCResponse = CMAC-LRP(SesAuthMaster, RndB || RndA || PICCData). EncCtr is then 1.
import { concat, equalCT, wipe } from '../crypto/bytes.js';
import { Lrp, LrpCmac, lricbDecrypt, lricbEncrypt } from '../crypto/lrp.js';
import { AuthenticationError, FrameError } from '../errors.js';
import { LrpCardSession, LrpHostSession } from '../sm/lrp.js';
import { lrpSesAuthMaster } from './sessionkeys.js';

export const LRP_AUTH_MODE = 0x01;

/** PCDcap2 asks for LRP when its first byte is 0x02. */
export function wantsLrp(pcdCap2: Uint8Array | undefined): boolean {
  return pcdCap2 !== undefined && pcdCap2.length > 0 && pcdCap2[0] === 0x02;
}

function withMaster<T>(key: Uint8Array, rndA: Uint8Array, rndB: Uint8Array, f: (master: Uint8Array, mac: LrpCmac, lrp: Lrp) => T): T {
  const master = lrpSesAuthMaster(key, rndA, rndB);
  const lrp = new Lrp(master);
  const mac = new LrpCmac(lrp, 0);
  try {
    return f(master, mac, lrp);
  } finally {
    mac.destroy();
    lrp.destroy();
    wipe(master);
  }
}

/** Host: after the card's AuthMode || RndB. */
export function hostLrpStep(keyNo: number, key: Uint8Array, cardFirst: Uint8Array, rndA: Uint8Array): { frame: Uint8Array; finish(cardData: Uint8Array): LrpHostSession } {
  if (cardFirst.length !== 17 || cardFirst[0] !== LRP_AUTH_MODE) throw new FrameError("card's LRP answer must be AuthMode 01 and a 16-byte RndB");
  if (rndA.length !== 16) throw new FrameError('RndA must be 16 bytes');
  const a = Uint8Array.from(rndA);
  const b = cardFirst.slice(1);
  const k = Uint8Array.from(key);
  const frame = withMaster(k, a, b, (_m, mac) => concat(a, mac.mac(concat(a, b))));
  return {
    frame,
    finish(cardData: Uint8Array): LrpHostSession {
      try {
        if (cardData.length !== 32) throw new FrameError(`card's final LRP answer must be 32 bytes, got ${cardData.length}`);
        return withMaster(k, a, b, (master, mac, lrp) => {
          const enc = cardData.subarray(0, 16);
          if (!equalCT(mac.mac(concat(b, a, enc)), cardData.subarray(16))) throw new AuthenticationError("card's PICCResponse does not match: wrong key or not a genuine card");
          const picc = lricbDecrypt(lrp, 1, new Uint8Array(4), enc, false);
          const s = new LrpHostSession({ keyNo, ti: picc.subarray(0, 4), cmdCtr: 0, encCtr: Uint8Array.of(0, 0, 0, 1), master });
          wipe(picc);
          return s;
        });
      } finally {
        wipe(a, b, k);
      }
    },
  };
}

/** Card: first answer (AuthMode || RndB) and the pending step. */
export function beginCardLrpAuth(
  keyNo: number,
  key: Uint8Array,
  rndB: Uint8Array,
  pdCap2: Uint8Array,
  pcdCap2: Uint8Array,
): { response: Uint8Array; finish(data: Uint8Array, random: (n: number) => Uint8Array): { response: Uint8Array; session: LrpCardSession } } {
  if (rndB.length !== 16) throw new FrameError('RndB must be 16 bytes');
  const b = Uint8Array.from(rndB);
  const k = Uint8Array.from(key);
  return {
    response: concat(Uint8Array.of(LRP_AUTH_MODE), b),
    finish(data, random) {
      try {
        if (data.length !== 32) throw new FrameError(`authentication frame must be 32 bytes, got ${data.length}`);
        const a = data.slice(0, 16);
        return withMaster(k, a, b, (master, mac, lrp) => {
          if (!equalCT(mac.mac(concat(a, b)), data.subarray(16))) throw new AuthenticationError("host's PCDResponse does not match");
          const ti = random(4);
          if (ti.length !== 4) throw new FrameError('TI must be 4 bytes');
          const enc = lricbEncrypt(lrp, 1, new Uint8Array(4), concat(ti, pdCap2, pcdCap2), false);
          const response = concat(enc, mac.mac(concat(b, a, enc)));
          const session = new LrpCardSession({ keyNo, ti, cmdCtr: 0, encCtr: Uint8Array.of(0, 0, 0, 1), master });
          wipe(a);
          return { response, session };
        });
      } finally {
        wipe(b, k);
      }
    },
  };
}

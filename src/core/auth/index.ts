// Authentication (host and card side) and everything a session needs. Pure: bytes in, bytes out;
// randomness is injected so vectors can fix RndA/RndB/TI.
//
// HOST (used by the client in src/core/client):
//   authenticateHost(exchange: Exchange, o: HostAuthOptions): Promise<HostSession>
//     Exchange = (ins: number, data: Uint8Array) => Promise<{ status: number; data: Uint8Array }>
//       one native frame; status 0xAF = additional frame (authenticateHost continues with ins 0xAF).
//     HostAuthOptions = { method: 'd40'|'iso'|'aes'|'ev2first'|'ev2nonfirst', keyNo: 0..13,
//       key: Uint8Array, keyType: 'des'|'2k3des'|'3k3des'|'aes', random: (n) => Uint8Array,
//       previous?: HostSession (ev2nonfirst: TI and CmdCtr carry over), pcdCap2?: Uint8Array }
//     method/keyType: d40 des|2k3des; iso des|2k3des|3k3des; aes, ev2first, ev2nonfirst: aes.
//     Errors: AuthenticationError (status != AF/00 or RndA' mismatch), FrameError, SessionError.
//   hostAuthStep(method, keyNo, key, keyType, ekRndB, rndA, previous?) => { frame, finish(cardData) => HostSession, abort() }
//     the same math, synchronous (for vectors and for callers that drive frames themselves).
//
// CARD (used by the virtual card in src/card):
//   parseAuthRequest(ins, data) => { method, keyNo, pcdCap2? }               (FrameError on bad length)
//   beginCardAuth(method, keyNo, key, keyType, rndB, opts?: { previous?: CardSession, pcdCap2?, pdCap2? })
//     => { response: Uint8Array /* send with status 0xAF */, pending }
//   pending.finish(data: Uint8Array, random?: (n) => Uint8Array /* TI for ev2first */)
//     => { response: Uint8Array /* send with status 0x00 */, session: CardSession }
//     throws AuthenticationError (RndB' mismatch -> status 0xAE), FrameError (wrong length -> 0x7E).
//
// LRP (EV3, AN12304): method 'ev2first' with pcdCap2 starting 0x02 (e.g. 02 00 00 00 00 00) runs
//   AuthenticateLRPFirst on both sides; the session has kind 'ev2' (same framing, TI, CmdCtr) and
//   channel 'lrp' (CMAC-LRP, LRICB with EncCtr). AuthenticateLRPNonFirst is not implemented
//   (SessionError before anything is sent).
//
// SESSIONS (src/core/sm/types.ts): HostSession.wrapCommand / unwrapResponse and
// CardSession.unwrapCommand / wrapResponse, kinds 'd40' | 'ev1' | 'ev2'. EV2: the card must call
// unwrapCommand for EVERY command after authentication (plain ones too): it advances CmdCtr.
// Sessions answer only successful statuses (00/AF); after an error status the card ends the session.
//
// CHANGEKEY (src/core/sm/changekey.ts):
//   host: changeKeyPayload(session, { keyNo, newKey, newKeyType, newKeyVersion?, oldKey?, oldKeyType?, picc? })
//           => { payload /* bytes after INS 0xC4 */, sameKey }
//         finishChangeKey(session, status, body, sameKey)   (same key: destroys the session)
//   card: openChangeKeyPayload(session, payload, { newKeyType?, oldKey?, oldKeyType?, picc? })
//           => { keyNo, newKey, newKeyType, version, sameKey }
//         changeKeyResponse(session, sameKey) => body      (same key: empty; then end the session)
//
// SESSION KEYS: ev1SessionKey(type, rndA, rndB), ev2SessionKeys(key, rndA, rndB) => { enc, mac },
// ev2SessionVector, tmacSessionKeys(tmKey, uid7, tmc) => { mac, enc }.
export * from './types.js';
export * from './sessionkeys.js';
export { authenticateHost, hostAuthStep, hostFirstFrame, checkAuthParams, type HostAuthStep } from './host.js';
export { beginCardAuth, parseAuthRequest, type AuthRequest } from './card.js';
export { hostLrpStep, beginCardLrpAuth, wantsLrp, LRP_AUTH_MODE } from './lrp.js';
export {
  changeKeyPayload,
  finishChangeKey,
  openChangeKeyPayload,
  changeKeyResponse,
  piccKeyTypeFlag,
  wireKeyBytes,
  INS_CHANGE_KEY,
  type ChangeKeyRequest,
  type ChangeKeyCommand,
  type OpenChangeKeyOptions,
  type OpenedChangeKey,
} from '../sm/changekey.js';
export type { HostSession, CardSession, CommMode, SessionKind, SessionInfo } from '../sm/types.js';

// Authentication: legacy 0x0A, ISO 0x1A, AES 0xAA, EV2First 0x71, EV2NonFirst 0x77. The math is
// src/core/auth's card side; here: which key, which method for which key type, and the state.
import { AUTH_KEY_TYPES, beginCardAuth, nonceLength, parseAuthRequest } from '../../core/auth/index.js';
import type { AuthRequest } from '../../core/auth/index.js';
import { Ev2CardSession } from '../../core/sm/ev2.js';
import type { CardContext, Reply, Req } from '../context.js';
import { effectiveKey } from '../model.js';
import { ST, fault } from '../status.js';

export function authenticate(ctx: CardContext, req: Req): Reply {
  let ar: AuthRequest;
  try {
    ar = parseAuthRequest(req.ins, req.body);
  } catch {
    throw fault(ST.LENGTH_ERROR, 'bad authentication request');
  }
  const ev2 = ar.method === 'ev2first' || ar.method === 'ev2nonfirst';
  if (ev2 && ctx.state.profile === 'ev1') throw fault(ST.ILLEGAL_COMMAND, 'EV2 authentication on an EV1 card');
  // PCDcap2[0] = 02 asks for LRP (AuthenticateLRPFirst), an EV3 feature: the simulator offers it on
  // the ev3 profile (without the one-way switch a real EV3 needs) and refuses it before EV3.
  if (ar.method === 'ev2first' && ar.pcdCap2?.[0] === 0x02 && ctx.state.profile !== 'ev3') throw fault(ST.PARAMETER_ERROR, 'LRP needs an EV3 card');
  const previous = ctx.session;
  if (ar.method === 'ev2nonfirst') {
    if (!(previous instanceof Ev2CardSession)) throw fault(ST.AUTHENTICATION_ERROR, 'NonFirst needs an EV2 session');
  } else {
    ctx.dropSession();
  }
  const app = ctx.selected;
  const slot = app ? app.keys[ar.keyNo] : ar.keyNo === 0 ? ctx.state.picc.key : undefined;
  if (!slot) throw fault(ST.NO_SUCH_KEY, 'no such key');
  const k = effectiveKey(app ? app.keyType : ctx.state.picc.keyType, slot.key);
  if (!AUTH_KEY_TYPES[ar.method].includes(k.type)) throw fault(ST.AUTHENTICATION_ERROR, 'method does not fit the key type');
  const rndB = ctx.random(nonceLength(k.type));
  const { response, pending } = beginCardAuth(ar.method, ar.keyNo, k.key, k.type, rndB, {
    ...(previous && ar.method === 'ev2nonfirst' ? { previous } : {}),
    ...(ar.pcdCap2 ? { pcdCap2: ar.pcdCap2 } : {}),
  });
  return {
    status: ST.ADDITIONAL_FRAME,
    data: response,
    comm: 'none',
    next: (r2: Req): Reply => {
      // The previous EV2 session ends with this step whatever happens (NonFirst replaces it).
      const fin = pending.finish(r2.body, ctx.random);
      if (ctx.session && ctx.session !== fin.session) ctx.session.destroy();
      ctx.session = fin.session;
      return { data: fin.response, comm: 'none' };
    },
  };
}

// Host and card sides of every authentication method against each other, through the
// Exchange interface the client uses.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  authenticateHost,
  beginCardAuth,
  hostAuthStep,
  parseAuthRequest,
  type AuthMethod,
  type CardAuthPending,
  type CardSession,
  type Exchange,
  type HostSession,
} from '../../src/core/auth/index.js';
import { AuthenticationError, DesfireError } from '../../src/core/errors.js';
import { cbcEncrypt, concat, ecbDecrypt, ecbEncrypt, fromHex, keyLength, rotl, toHex, type KeyType, xor } from '../../src/core/crypto/index.js';

const rnd = (n: number) => new Uint8Array(randomBytes(n));

/** A minimal card that only knows authentication: one key per key number. */
function fakeCard(keys: Map<number, { key: Uint8Array; type: KeyType }>) {
  let pending: CardAuthPending | undefined;
  const state: { session?: CardSession; frames: { ins: number; data: Uint8Array }[] } = { frames: [] };
  const exchange: Exchange = async (ins, data) => {
    state.frames.push({ ins, data });
    try {
      if (ins === 0xaf) {
        const p = pending;
        pending = undefined;
        if (!p) return { status: 0x1c, data: new Uint8Array(0) };
        const fin = p.finish(data, rnd);
        state.session = fin.session;
        return { status: 0x00, data: fin.response };
      }
      const req = parseAuthRequest(ins, data);
      const k = keys.get(req.keyNo);
      if (!k) return { status: 0x40, data: new Uint8Array(0) };
      const n = k.type === 'des' || k.type === '2k3des' ? 8 : 16;
      const prev = state.session;
      if (req.method !== 'ev2nonfirst') state.session = undefined;
      const b = beginCardAuth(req.method, req.keyNo, k.key, k.type, rnd(n), { previous: prev, pcdCap2: req.pcdCap2 });
      pending = b.pending;
      return { status: 0xaf, data: b.response };
    } catch (e) {
      state.session = undefined;
      if (e instanceof AuthenticationError) return { status: 0xae, data: new Uint8Array(0) };
      if (e instanceof DesfireError && e.code === 'ERR_FRAME') return { status: 0x7e, data: new Uint8Array(0) };
      throw e;
    }
  };
  return { exchange, state };
}

const COMBOS: [AuthMethod, KeyType][] = [
  ['d40', 'des'],
  ['d40', '2k3des'],
  ['iso', 'des'],
  ['iso', '2k3des'],
  ['iso', '3k3des'],
  ['aes', 'aes'],
  ['ev2first', 'aes'],
];

function roundTrip(host: HostSession, card: CardSession) {
  for (const comm of ['plain', 'mac', 'full'] as const) {
    const data = rnd(21);
    const header = Uint8Array.of(0x01, 0, 0, 0, 21, 0, 0);
    const wire = host.wrapCommand(0x3d, header, data, comm);
    expect(Buffer.from(card.unwrapCommand(0x3d, header, wire.subarray(header.length), comm, data.length))).toEqual(Buffer.from(data));
    const resp = rnd(13);
    const body = card.wrapResponse(0x3d, 0x00, resp, comm);
    expect(Buffer.from(host.unwrapResponse(0x3d, 0x00, body, comm, resp.length))).toEqual(Buffer.from(resp));
  }
}

describe('authentication host <-> card', () => {
  for (const [method, type] of COMBOS) {
    it(`${method} with ${type}: sessions agree in every comm mode`, async () => {
      const key = rnd(keyLength(type));
      const card = fakeCard(new Map([[3, { key, type }]]));
      const host = await authenticateHost(card.exchange, { method, keyNo: 3, key, keyType: type, random: rnd });
      expect(host.kind).toBe(method === 'd40' ? 'd40' : method === 'ev2first' ? 'ev2' : 'ev1');
      expect(host.keyNo).toBe(3);
      expect(card.state.session!.kind).toBe(host.kind);
      expect(card.state.frames[0]!.ins).toBe({ d40: 0x0a, iso: 0x1a, aes: 0xaa, ev2first: 0x71, ev2nonfirst: 0x77 }[method]);
      roundTrip(host, card.state.session!);
    });

    it(`${method} with ${type}: a wrong key is refused on both sides`, async () => {
      const key = rnd(keyLength(type));
      const wrong = Uint8Array.from(key);
      wrong[0]! ^= 0x02; // not a parity bit
      const card = fakeCard(new Map([[0, { key, type }]]));
      await expect(authenticateHost(card.exchange, { method, keyNo: 0, key: wrong, keyType: type, random: rnd })).rejects.toMatchObject({
        code: 'ERR_AUTHENTICATION',
      });
      expect(card.state.session).toBeUndefined();
    });
  }

  it('LRP: ev2first with PCDcap2 02.. runs AuthenticateLRPFirst on both sides; sessions agree; a wrong key is refused', async () => {
    const key = rnd(16);
    const card = fakeCard(new Map([[2, { key, type: 'aes' as KeyType }]]));
    const cap = Uint8Array.of(0x02, 0, 0, 0, 0, 0);
    const host = await authenticateHost(card.exchange, { method: 'ev2first', keyNo: 2, key, keyType: 'aes', random: rnd, pcdCap2: cap });
    expect(host.kind).toBe('ev2');
    expect((host as unknown as { channel: string }).channel).toBe('lrp');
    expect((card.state.session as unknown as { channel: string }).channel).toBe('lrp');
    expect(Buffer.from(host.ti!)).toEqual(Buffer.from(card.state.session!.ti!));
    roundTrip(host, card.state.session!);
    await expect(authenticateHost(card.exchange, { method: 'ev2nonfirst', keyNo: 2, key, keyType: 'aes', random: rnd, previous: host })).rejects.toMatchObject({ code: 'ERR_SESSION' });
    const wrong = Uint8Array.from(key);
    wrong[5]! ^= 0x40;
    await expect(authenticateHost(card.exchange, { method: 'ev2first', keyNo: 2, key: wrong, keyType: 'aes', random: rnd, pcdCap2: cap })).rejects.toMatchObject({ code: 'ERR_AUTHENTICATION' });
  });

  it('ev2first sends KeyNo || LenCap || PCDcap2 and the card echoes PCDcap2', async () => {
    const key = rnd(16);
    const card = fakeCard(new Map([[0, { key, type: 'aes' as KeyType }]]));
    const cap = Uint8Array.of(0x00, 0x01, 0x02);
    const host = await authenticateHost(card.exchange, { method: 'ev2first', keyNo: 0, key, keyType: 'aes', random: rnd, pcdCap2: cap });
    expect(Buffer.from(card.state.frames[0]!.data)).toEqual(Buffer.from([0x00, 0x03, 0x00, 0x01, 0x02]));
    expect(host.ti!.length).toBe(4);
  });

  it('ev2nonfirst keeps TI and CmdCtr, derives new session keys, and the old session dies', async () => {
    const k0 = rnd(16);
    const k1 = rnd(16);
    const card = fakeCard(
      new Map([
        [0, { key: k0, type: 'aes' as KeyType }],
        [1, { key: k1, type: 'aes' as KeyType }],
      ]),
    );
    const first = await authenticateHost(card.exchange, { method: 'ev2first', keyNo: 0, key: k0, keyType: 'aes', random: rnd });
    roundTrip(first, card.state.session!);
    expect(first.cmdCtr).toBe(3);
    const ti = first.ti!;
    const second = await authenticateHost(card.exchange, { method: 'ev2nonfirst', keyNo: 1, key: k1, keyType: 'aes', random: rnd, previous: first });
    expect(Buffer.from(card.state.frames.at(-2)!.data)).toEqual(Buffer.from([0x01]));
    expect(second.keyNo).toBe(1);
    expect(Buffer.from(second.ti!)).toEqual(Buffer.from(ti));
    expect(second.cmdCtr).toBe(3);
    expect(card.state.session!.cmdCtr).toBe(3);
    expect(() => first.wrapCommand(0x6c, Uint8Array.of(1), new Uint8Array(0), 'mac')).toThrow(expect.objectContaining({ code: 'ERR_SESSION' }));
    roundTrip(second, card.state.session!);
  });

  it('ev2nonfirst without an EV2 session is a SessionError, before anything is sent', async () => {
    const card = fakeCard(new Map());
    await expect(authenticateHost(card.exchange, { method: 'ev2nonfirst', keyNo: 0, key: rnd(16), keyType: 'aes', random: rnd })).rejects.toMatchObject({
      code: 'ERR_SESSION',
    });
    expect(() => beginCardAuth('ev2nonfirst', 0, rnd(16), 'aes', rnd(16))).toThrow(expect.objectContaining({ code: 'ERR_SESSION' }));
  });

  it('rejects key types a method does not take, and bad key numbers', async () => {
    const card = fakeCard(new Map());
    await expect(authenticateHost(card.exchange, { method: 'aes', keyNo: 0, key: rnd(16), keyType: '2k3des', random: rnd })).rejects.toMatchObject({ code: 'ERR_FRAME' });
    await expect(authenticateHost(card.exchange, { method: 'd40', keyNo: 0, key: rnd(24), keyType: '3k3des', random: rnd })).rejects.toMatchObject({ code: 'ERR_FRAME' });
    await expect(authenticateHost(card.exchange, { method: 'aes', keyNo: 14, key: rnd(16), keyType: 'aes', random: rnd })).rejects.toMatchObject({ code: 'ERR_FRAME' });
    expect(card.state.frames.length).toBe(0);
  });

  it('a card status other than AF / 00 is an AuthenticationError', async () => {
    const card = fakeCard(new Map());
    await expect(authenticateHost(card.exchange, { method: 'aes', keyNo: 5, key: rnd(16), keyType: 'aes', random: rnd })).rejects.toMatchObject({
      code: 'ERR_AUTHENTICATION',
    });
  });

  it('malformed card answers are FrameErrors (truncated, overlong)', async () => {
    for (const delta of [-1, 1]) {
      const key = rnd(16);
      const card = fakeCard(new Map([[0, { key, type: 'aes' as KeyType }]]));
      const cut: Exchange = async (ins, data) => {
        const r = await card.exchange(ins, data);
        const d = delta < 0 ? r.data.subarray(0, r.data.length - 1) : Uint8Array.of(...r.data, 0);
        return { status: r.status, data: ins === 0xaf ? d : r.data };
      };
      await expect(authenticateHost(cut, { method: 'aes', keyNo: 0, key, keyType: 'aes', random: rnd })).rejects.toMatchObject({ code: 'ERR_FRAME' });
    }
  });

  it('d40 frames follow the legacy definition (card enciphers; host deciphers in send mode, chained)', () => {
    const key = fromHex('0123456789ABCDEF FEDCBA9876543210');
    const rndA = fromHex('1122334455667788');
    const rndB = fromHex('A1B2C3D4E5F60718');
    const ekB = ecbEncrypt('2k3des', key, rndB);
    const { response, pending } = beginCardAuth('d40', 0, key, '2k3des', rndB);
    expect(toHex(response)).toBe(toHex(ekB));
    const step = hostAuthStep('d40', 0, key, '2k3des', response, rndA);
    const d1 = ecbDecrypt('2k3des', key, rndA);
    const d2 = ecbDecrypt('2k3des', key, xor(rotl(rndB), d1));
    expect(toHex(step.frame)).toBe(toHex(concat(d1, d2)));
    const fin = pending.finish(step.frame);
    expect(toHex(fin.response)).toBe(toHex(ecbEncrypt('2k3des', key, rotl(rndA))));
    const host = step.finish(fin.response);
    expect(host.kind).toBe('d40');
    // session key A0..3 B0..3 A4..7 B4..7: a D40 MAC under it is what the card checks
    const sk = fromHex('11223344A1B2C3D455667788E5F60718');
    const w = host.wrapCommand(0x3d, Uint8Array.of(1), Uint8Array.of(1, 2, 3), 'mac');
    const mac = cbcEncrypt('2k3des', sk, new Uint8Array(8), fromHex('0102030000000000')).subarray(0, 4);
    expect(toHex(w.subarray(4))).toBe(toHex(mac));
  });

  it('callers may wipe every buffer they were given or gave (no aliasing into the state)', () => {
    for (const [method, type] of COMBOS) {
      const key = rnd(keyLength(type));
      const n = type === 'des' || type === '2k3des' ? 8 : 16;
      const rndB = rnd(n);
      const b = beginCardAuth(method, 0, key, type, rndB);
      const ek = b.response.slice();
      b.response.fill(0);
      rndB.fill(0);
      const step = hostAuthStep(method, 0, key, type, ek, rnd(n));
      const frame = step.frame.slice();
      step.frame.fill(0);
      const fin = b.pending.finish(frame, rnd);
      frame.fill(0);
      const last = fin.response.slice();
      fin.response.fill(0);
      key.fill(0);
      const host = step.finish(last);
      roundTrip(host, fin.session);
    }
  });

  it('card: parseAuthRequest checks lengths; finish checks the frame length and runs once', () => {
    expect(parseAuthRequest(0x71, Uint8Array.of(2, 0))).toMatchObject({ method: 'ev2first', keyNo: 2 });
    expect(() => parseAuthRequest(0x71, Uint8Array.of(2, 3, 0))).toThrow(expect.objectContaining({ code: 'ERR_FRAME' }));
    expect(() => parseAuthRequest(0x0a, Uint8Array.of(0, 0))).toThrow(expect.objectContaining({ code: 'ERR_FRAME' }));
    expect(() => parseAuthRequest(0x3d, Uint8Array.of(0))).toThrow(expect.objectContaining({ code: 'ERR_FRAME' }));
    const { pending } = beginCardAuth('aes', 0, rnd(16), 'aes', rnd(16));
    expect(() => pending.finish(rnd(31))).toThrow(expect.objectContaining({ code: 'ERR_FRAME' }));
    expect(() => pending.finish(rnd(32))).toThrow(expect.objectContaining({ code: 'ERR_SESSION' }));
  });
});

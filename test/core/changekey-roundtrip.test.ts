// ChangeKey host <-> card for every generation: same key, other key (XOR + CRC of the new key),
// PICC key type change via key number flags, key versions, session handling afterwards.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { changeKeyPayload, changeKeyResponse, finishChangeKey, openChangeKeyPayload } from '../../src/core/auth/index.js';
import { cmac, getDesKeyVersion, type KeyType, keyLength, setDesKeyVersion } from '../../src/core/crypto/index.js';
import { D40CardSession, D40HostSession } from '../../src/core/sm/d40.js';
import { Ev1CardSession, Ev1HostSession } from '../../src/core/sm/ev1.js';
import { Ev2CardSession, Ev2HostSession } from '../../src/core/sm/ev2.js';
import { LrpCardSession, LrpHostSession } from '../../src/core/sm/lrp.js';
import type { CardSession, HostSession } from '../../src/core/sm/types.js';

const rnd = (n: number) => new Uint8Array(randomBytes(n));
type Gen = 'd40' | 'ev1' | 'ev2' | 'lrp';

function pair(gen: Gen, sessionType: KeyType, keyNo: number): { host: HostSession; card: CardSession } {
  const sk = rnd(keyLength(sessionType));
  if (gen === 'd40') return { host: new D40HostSession({ keyNo, keyType: sessionType, sessionKey: sk }), card: new D40CardSession({ keyNo, keyType: sessionType, sessionKey: sk }) };
  if (gen === 'ev1') return { host: new Ev1HostSession({ keyNo, keyType: sessionType, sessionKey: sk }), card: new Ev1CardSession({ keyNo, keyType: sessionType, sessionKey: sk }) };
  if (gen === 'lrp') {
    const ls = { keyNo, ti: rnd(4), cmdCtr: 7, encCtr: Uint8Array.of(0, 0, 0, 1), master: sk };
    return { host: new LrpHostSession(ls), card: new LrpCardSession(ls) };
  }
  const st = { keyNo, ti: rnd(4), cmdCtr: 7, encKey: sk, macKey: rnd(16) };
  return { host: new Ev2HostSession(st), card: new Ev2CardSession(st) };
}

const GENS: [Gen, KeyType][] = [
  ['d40', 'des'],
  ['d40', '2k3des'],
  ['ev1', 'des'],
  ['ev1', '3k3des'],
  ['ev1', 'aes'],
  ['ev2', 'aes'],
  ['lrp', 'aes'],
];
const NEW_TYPES: KeyType[] = ['2k3des', '3k3des', 'aes'];
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** A DES-family key whose halves differ (so it stays 2K3DES) with a version in its parity bits. */
function newKey(type: KeyType, version: number): Uint8Array {
  const k = rnd(keyLength(type));
  if (type === 'aes') return k;
  return setDesKeyVersion(k, version);
}

describe('ChangeKey host <-> card', () => {
  for (const [gen, st] of GENS) {
    for (const nt of NEW_TYPES) {
      it(`${gen} (${st} session): same key -> ${nt}; the session ends`, () => {
        const { host, card } = pair(gen, st, 0);
        const nk = newKey(nt, 0x42);
        const cmd = changeKeyPayload(host, { keyNo: 0, newKey: nk, newKeyType: nt, newKeyVersion: 0x42, picc: true });
        expect(cmd.sameKey).toBe(true);
        expect(cmd.payload[0]).toBe({ '2k3des': 0x00, '3k3des': 0x40, aes: 0x80, des: 0 }[nt]);
        const got = openChangeKeyPayload(card, cmd.payload, { picc: true });
        expect(got).toMatchObject({ keyNo: 0, newKeyType: nt, version: 0x42, sameKey: true });
        expect(hex(got.newKey)).toBe(hex(nk));
        const body = changeKeyResponse(card, true);
        expect(body.length).toBe(0);
        finishChangeKey(host, 0x00, body, true);
        expect(() => host.wrapCommand(0x6c, Uint8Array.of(1), new Uint8Array(0), 'plain')).toThrow(expect.objectContaining({ code: 'ERR_SESSION' }));
      });

      it(`${gen} (${st} session): other key (${nt}): XOR with the old key, CRC of the new key; the session continues`, () => {
        const { host, card } = pair(gen, st, 0);
        const old = newKey(nt, 1);
        const nk = newKey(nt, 2);
        const cmd = changeKeyPayload(host, { keyNo: 5, newKey: nk, newKeyType: nt, newKeyVersion: 2, oldKey: old });
        expect(cmd.sameKey).toBe(false);
        expect(cmd.payload[0]).toBe(5);
        const got = openChangeKeyPayload(card, cmd.payload, { newKeyType: nt, oldKey: old });
        expect(got).toMatchObject({ keyNo: 5, newKeyType: nt, version: 2, sameKey: false });
        expect(hex(got.newKey)).toBe(hex(nk));
        const body = changeKeyResponse(card, false);
        finishChangeKey(host, 0x00, body, false);
        // still in step afterwards
        const w = host.wrapCommand(0x3d, Uint8Array.of(1), Uint8Array.of(1, 2, 3), 'full');
        expect(hex(card.unwrapCommand(0x3d, Uint8Array.of(1), w.subarray(1), 'full', 3))).toBe('010203');
      });

      it(`${gen} (${st} session): other key (${nt}): a wrong old key on the card is an IntegrityError`, () => {
        const { host, card } = pair(gen, st, 0);
        const old = newKey(nt, 1);
        const cmd = changeKeyPayload(host, { keyNo: 5, newKey: newKey(nt, 2), newKeyType: nt, newKeyVersion: 2, oldKey: old });
        const wrongOld = Uint8Array.from(old);
        wrongOld[3]! ^= 0x10;
        expect(() => openChangeKeyPayload(card, cmd.payload, { newKeyType: nt, oldKey: wrongOld })).toThrow(expect.objectContaining({ code: 'ERR_INTEGRITY' }));
      });
    }

    it(`${gen} (${st} session): any flipped bit in the cryptogram is an IntegrityError; bad lengths are FrameErrors`, () => {
      for (let bit = 8; bit < 8 * 25; bit += 7) {
        const { host, card } = pair(gen, st, 0);
        const cmd = changeKeyPayload(host, { keyNo: 0, newKey: newKey('aes', 0), newKeyType: 'aes', newKeyVersion: 3, picc: true });
        const bad = cmd.payload.slice();
        bad[bit >> 3]! ^= 1 << (bit & 7);
        expect(() => openChangeKeyPayload(card, bad, { picc: true })).toThrow(expect.objectContaining({ code: 'ERR_INTEGRITY' }));
      }
      const { host, card } = pair(gen, st, 0);
      const cmd = changeKeyPayload(host, { keyNo: 0, newKey: newKey('aes', 0), newKeyType: 'aes', picc: true });
      expect(() => openChangeKeyPayload(card, cmd.payload.subarray(0, cmd.payload.length - 1), { picc: true })).toThrow(
        expect.objectContaining({ code: expect.stringMatching(/ERR_FRAME|ERR_INTEGRITY/) }),
      );
      expect(() => openChangeKeyPayload(card, Uint8Array.of(...cmd.payload, 0), { picc: true })).toThrow(
        expect.objectContaining({ code: expect.stringMatching(/ERR_FRAME|ERR_INTEGRITY/) }),
      );
    });
  }

  it('EV1: the answer to changing another key is a CMAC with IV = last ciphertext block', () => {
    const sk = rnd(16);
    const host = new Ev1HostSession({ keyNo: 0, keyType: 'aes', sessionKey: sk });
    const card = new Ev1CardSession({ keyNo: 0, keyType: 'aes', sessionKey: sk });
    const old = rnd(16);
    const cmd = changeKeyPayload(host, { keyNo: 1, newKey: rnd(16), newKeyType: 'aes', oldKey: old });
    openChangeKeyPayload(card, cmd.payload, { newKeyType: 'aes', oldKey: old });
    const body = card.wrapResponse(0xc4, 0x00, new Uint8Array(0), 'mac');
    const iv = cmd.payload.subarray(cmd.payload.length - 16);
    expect(hex(body)).toBe(hex(cmac('aes', sk, Uint8Array.of(0x00), iv).subarray(0, 8)));
    finishChangeKey(host, 0x00, body, false);
    expect(() => finishChangeKey(host, 0x00, body, false)).toThrow(expect.objectContaining({ code: 'ERR_INTEGRITY' }));
  });

  it('DES-family versions travel in parity bits (D40/EV1) and as a byte (EV2); AES versions as a byte', () => {
    const k = rnd(16);
    for (const gen of ['d40', 'ev1'] as Gen[]) {
      const { host, card } = pair(gen, gen === 'd40' ? '2k3des' : 'aes', 0);
      const cmd = changeKeyPayload(host, { keyNo: 0, newKey: k, newKeyType: '2k3des', newKeyVersion: 0xa5 });
      const got = openChangeKeyPayload(card, cmd.payload, { newKeyType: '2k3des' });
      expect(got.version).toBe(0xa5);
      expect(getDesKeyVersion(got.newKey)).toBe(0xa5);
      expect(hex(got.newKey)).toBe(hex(setDesKeyVersion(k, 0xa5)));
    }
    const { host, card } = pair('ev2', 'aes', 0);
    const cmd = changeKeyPayload(host, { keyNo: 0, newKey: k, newKeyType: '2k3des', newKeyVersion: 0xa5 });
    expect(openChangeKeyPayload(card, cmd.payload, { newKeyType: '2k3des' }).version).toBe(0xa5);
  });

  it('a DES key (K || K on the wire) comes back as an 8-byte DES key', () => {
    const { host, card } = pair('ev1', 'aes', 0);
    const des = setDesKeyVersion(rnd(8), 7);
    const cmd = changeKeyPayload(host, { keyNo: 0, newKey: des, newKeyType: 'des' });
    const got = openChangeKeyPayload(card, cmd.payload, { newKeyType: 'des' });
    expect(got).toMatchObject({ newKeyType: 'des', version: 7 });
    expect(hex(got.newKey)).toBe(hex(des));
  });

  it('bad requests are FrameErrors and leave the session untouched', () => {
    const { host, card } = pair('ev2', 'aes', 0);
    expect(() => changeKeyPayload(host, { keyNo: 14, newKey: rnd(16), newKeyType: 'aes' })).toThrow(expect.objectContaining({ code: 'ERR_FRAME' }));
    expect(() => changeKeyPayload(host, { keyNo: 2, newKey: rnd(16), newKeyType: 'aes' })).toThrow(/old key/);
    expect(() => changeKeyPayload(host, { keyNo: 0, newKey: rnd(15), newKeyType: 'aes' })).toThrow(expect.objectContaining({ code: 'ERR_FRAME' }));
    expect(host.cmdCtr).toBe(7);
    expect(() => openChangeKeyPayload(card, Uint8Array.of(0xc0, ...rnd(40)), { picc: true })).toThrow(expect.objectContaining({ code: 'ERR_FRAME' }));
    expect(() => openChangeKeyPayload(card, new Uint8Array(0))).toThrow(expect.objectContaining({ code: 'ERR_FRAME' }));
    const other = changeKeyPayload(host, { keyNo: 3, newKey: rnd(16), newKeyType: 'aes', oldKey: rnd(16) });
    expect(() => openChangeKeyPayload(card, other.payload, { newKeyType: 'aes' })).toThrow(/old key/);
    expect(() => openChangeKeyPayload(card, other.payload, { newKeyType: 'aes', oldKey: rnd(8) })).toThrow(expect.objectContaining({ code: 'ERR_FRAME' }));
    expect(card.cmdCtr).toBe(7);
  });
});

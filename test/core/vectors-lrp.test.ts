// LRP (AN12304) known answers: primitives and the AuthenticateLRPFirst trace of AN12343 T19/T20.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { beginCardAuth, hostFirstFrame } from '../../src/core/auth/index.js';
import { hostLrpStep } from '../../src/core/auth/lrp.js';
import { Lrp, LrpCmac, cmacLrp, concat, fromHex, lricbDecrypt, lricbEncrypt, toHex } from '../../src/core/crypto/index.js';

type Case = Record<string, string | number | boolean> & { name: string };
const file = JSON.parse(readFileSync(new URL('../vectors/lrp.json', import.meta.url), 'utf8')) as { source: string; cases: Case[] };
const h = (c: Case, k: string) => fromHex(c[k] as string);

describe('lrp primitives', () => {
  it('has its source', () => expect(file.source).toMatch(/AN12304/));
  for (const c of file.cases.filter((c) => !c.rndA)) {
    it(c.name, () => {
      const l = new Lrp(h(c, 'key'));
      if (c.p0) {
        expect(toHex(l.plaintexts[0]!)).toBe(c.p0);
        expect(toHex(l.plaintexts[1]!)).toBe(c.p1);
        expect(toHex(l.plaintexts[14]!)).toBe(c.p14);
        expect(toHex(l.plaintexts[15]!)).toBe(c.p15);
      }
      if (c.uk0) {
        expect(toHex(l.updatedKey(0))).toBe(c.uk0);
        expect(toHex(l.updatedKey(1))).toBe(c.uk1);
        expect(toHex(l.updatedKey(2))).toBe(c.uk2);
      }
      if (c.output) expect(toHex(l.eval(c.updated_key_index as number, h(c, 'input'), c.input_nibbles as number, c.final as boolean))).toBe(c.output);
      if (c.ciphertext) {
        expect(toHex(lricbEncrypt(l, 0, h(c, 'counter'), h(c, 'plaintext'), c.padding as boolean))).toBe(c.ciphertext);
        expect(toHex(lricbDecrypt(l, 0, h(c, 'counter'), h(c, 'ciphertext'), c.padding as boolean))).toBe(c.plaintext);
      }
      if (c.k1) {
        const m = new LrpCmac(l, 0);
        expect(toHex(m.k1)).toBe(c.k1);
        expect(toHex(m.k2)).toBe(c.k2);
      }
      if (c.cmac) expect(toHex(cmacLrp(h(c, 'key'), h(c, 'message')))).toBe(c.cmac);
    });
  }
});

describe('lrp AuthenticateLRPFirst math (AN12343 T19/T20)', () => {
  const c = file.cases.find((c) => c.rndA)!;
  it(c.name, () => {
    const A = h(c, 'rndA');
    const B = h(c, 'rndB');
    const sv = new Uint8Array(32);
    sv.set([0x00, 0x01, 0x00, 0x80, A[0]!, A[1]!]);
    for (let i = 0; i < 6; i++) sv[6 + i] = A[2 + i]! ^ B[i]!;
    sv.set(B.subarray(6, 16), 12);
    sv.set(A.subarray(8, 16), 22);
    sv.set([0x96, 0x69], 30);
    expect(toHex(sv)).toBe(c.session_vector);
    expect(toHex(new Lrp(h(c, 'key')).updatedKey(0))).toBe(c.auth_update_key);
    const master = cmacLrp(h(c, 'key'), sv);
    expect(toHex(master)).toBe(c.ses_auth_master);
    const ml = new Lrp(master);
    expect(toHex(ml.updatedKey(0))).toBe(c.ses_mac_update_key);
    expect(toHex(ml.updatedKey(1))).toBe(c.ses_enc_update_key);
    const mac = new LrpCmac(ml, 0);
    expect(toHex(mac.mac(concat(A, B)))).toBe(c.pcd_response);
    const enc = lricbEncrypt(ml, 1, h(c, 'enc_counter'), h(c, 'picc_data_plain'), false);
    expect(toHex(enc)).toBe(c.picc_data_enc);
    expect(toHex(mac.mac(concat(B, A, enc)))).toBe(c.picc_response);
  });
});

describe('lrp AuthenticateLRPFirst, host and card sides (AN12343 T19/T20)', () => {
  const c = file.cases.find((c) => c.rndA)!;
  const apduData = (a: Uint8Array) => a.subarray(5, a.length - 1);
  const pcdCap2 = apduData(h(c, 'c_apdu_part1')).subarray(2);
  const r1 = h(c, 'r_apdu_part1').subarray(0, 17);
  const cardFinal = concat(h(c, 'picc_data_enc'), h(c, 'picc_response'));

  it('host side', () => {
    expect(toHex(hostFirstFrame('ev2first', 0, pcdCap2))).toBe(toHex(apduData(h(c, 'c_apdu_part1'))));
    expect(toHex(pcdCap2)).toBe('020000000000');
    const step = hostLrpStep(0, h(c, 'key'), r1, h(c, 'rndA'));
    expect(toHex(step.frame)).toBe(toHex(apduData(h(c, 'c_apdu_part2'))));
    const s = step.finish(cardFinal);
    expect(s.kind).toBe('ev2');
    expect(s.channel).toBe('lrp');
    expect(toHex(s.ti)).toBe(c.ti);
    expect(s.cmdCtr).toBe(0);
  });

  it('host side rejects a wrong PICCResponse', () => {
    const bad = cardFinal.slice();
    bad[31]! ^= 1;
    expect(() => hostLrpStep(0, h(c, 'key'), r1, h(c, 'rndA')).finish(bad)).toThrow(expect.objectContaining({ code: 'ERR_AUTHENTICATION' }));
  });

  it('card side', () => {
    const plain = h(c, 'picc_data_plain');
    const { response, pending } = beginCardAuth('ev2first', 0, h(c, 'key'), 'aes', h(c, 'rndB'), { pcdCap2, pdCap2: plain.subarray(4, 10) });
    expect(toHex(response)).toBe(toHex(r1));
    const fin = pending.finish(apduData(h(c, 'c_apdu_part2')), () => h(c, 'ti'));
    expect(toHex(fin.response)).toBe(toHex(cardFinal));
    expect(toHex(fin.session.ti!)).toBe(c.ti);
  });
});

// Known-answer tests: every vector family in test/vectors that the core implements.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  beginCardAuth,
  changeKeyPayload,
  ev1SessionKey,
  ev2SessionKeys,
  ev2SessionVector,
  hostAuthStep,
  hostFirstFrame,
  openChangeKeyPayload,
  tmacSessionKeys,
  type AuthMethod,
} from '../../src/core/auth/index.js';
import { BlockCipher, diversifyAes192, an10922Cmac, cmac, cmacSubkeys, Cmac, clearParity, crc16A, crc32Desfire, diversify, fromHex, getDesKeyVersion, toHex, type KeyType, type DiversifyAlg } from '../../src/core/crypto/index.js';
import { Ev1CardSession, Ev1HostSession } from '../../src/core/sm/ev1.js';
import { Ev2CardSession, Ev2HostSession } from '../../src/core/sm/ev2.js';

type Case = Record<string, string | number | boolean | string[] | undefined> & { name: string };
interface VectorFile {
  source: string;
  cases: Case[];
}

function load(name: string): VectorFile {
  const v = JSON.parse(readFileSync(new URL(`../vectors/${name}.json`, import.meta.url), 'utf8')) as VectorFile;
  expect(v.source.length).toBeGreaterThan(0);
  return v;
}
const h = (c: Case, k: string): Uint8Array => {
  const v = c[k];
  if (typeof v !== 'string') throw new Error(`vector ${c.name} lacks ${k}`);
  return fromHex(v);
};
const hex = (b: Uint8Array) => toHex(b);
/** Strip ISO wrapping 90 INS 00 00 Lc <data> 00 -> data. */
const apduData = (apdu: Uint8Array) => apdu.subarray(5, apdu.length - 1);
const fixed = (b: Uint8Array) => () => Uint8Array.from(b);

describe('cmac_aes (RFC 4493)', () => {
  for (const c of load('cmac_aes').cases) {
    it(c.name, () => {
      if (c.k1) {
        const s = cmacSubkeys('aes', h(c, 'key'));
        expect(hex(s.k1)).toBe(c.k1);
        expect(hex(s.k2)).toBe(c.k2);
      }
      if (c.cmac) expect(hex(cmac('aes', h(c, 'key'), h(c, 'message')))).toBe(c.cmac);
    });
  }
});

describe('cmac_tdes (SP 800-38B)', () => {
  for (const c of load('cmac_tdes').cases) {
    it(c.name, () => {
      const key = h(c, 'key');
      const type: KeyType = key.length === 8 ? 'des' : key.length === 16 ? '2k3des' : '3k3des';
      if (c.k1) {
        const s = cmacSubkeys(type, key);
        expect(hex(s.k1)).toBe(c.k1);
        expect(hex(s.k2)).toBe(c.k2);
      }
      if (c.cmac) expect(hex(cmac(type, key, h(c, 'message')))).toBe(c.cmac);
    });
  }
});

describe('an10922_diversification', () => {
  for (const c of load('an10922_diversification').cases) {
    const alg = c.algorithm as string;
    it(c.name, () => {
      if (alg === 'aes192') {
        expect(hex(diversifyAes192(h(c, 'master_key'), h(c, 'div_input')))).toBe(c.diversified_key);
        return;
      }
      const out = diversify(alg as DiversifyAlg, h(c, 'master_key'), h(c, 'div_input'));
      expect(hex(out)).toBe((c.diversified_key ?? c.diversified_key_raw) as string);
    });
  }
  it('AES-128 message is 01 || input and the AN10922 CMAC of it is the key', () => {
    const c = load('an10922_diversification').cases[0]!;
    const m = new Cmac('aes', h(c, 'master_key'));
    expect(hex(an10922Cmac(m, 0x01, h(c, 'div_input')))).toBe(c.diversified_key);
    expect(hex(h(c, 'cmac_message'))).toBe('01' + (c.div_input as string));
  });
});

describe('AN10922 versus RFC 4493 CMAC', () => {
  const master = fromHex('00112233445566778899AABBCCDDEEFF');
  it('differs for inputs of 0..15 bytes and equals for 16..31 bytes (AES)', () => {
    for (let n = 0; n <= 31; n++) {
      const input = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
      const an = diversify('aes128', master, input);
      const rfc = cmac('aes', master, Uint8Array.of(0x01, ...input));
      if (n < 16) expect(hex(an), `n=${n}`).not.toBe(hex(rfc));
      else expect(hex(an), `n=${n}`).toBe(hex(rfc));
    }
  });
  it('rejects inputs longer than 31 bytes (AES) / 15 bytes (DES family)', () => {
    expect(() => diversify('aes128', master, new Uint8Array(32))).toThrow(/at most 31/);
    expect(() => diversify('2k3des', master, new Uint8Array(16))).toThrow(/at most 15/);
  });
});

describe('crc', () => {
  for (const c of load('crc').cases) {
    it(c.name, () => {
      const f = c.algorithm === 'crc32-desfire' ? crc32Desfire : crc16A;
      expect(hex(f(h(c, 'data')))).toBe(c.crc_le_bytes);
    });
  }
});

describe('ev1_authentication', () => {
  for (const c of load('ev1_authentication').cases) {
    const method: AuthMethod = c.cmd === 'AA' ? 'aes' : 'iso';
    const keyType = c.session_key_type as KeyType;
    it(`${c.name}: host side`, () => {
      const step = hostAuthStep(method, 0, h(c, 'key'), keyType, h(c, 'ek_rndB'), h(c, 'rndA'));
      expect(hex(step.frame)).toBe(c.pcd_part2);
      const s = step.finish(h(c, 'ek_rndA_rot'));
      expect(s.kind).toBe('ev1');
      let sk = ev1SessionKey(keyType, h(c, 'rndA'), h(c, 'rndB'));
      if (c.parity_cleared) sk = clearParity(sk);
      expect(hex(sk)).toBe(c.session_key);
    });
    it(`${c.name}: card side`, () => {
      const { response, pending } = beginCardAuth(method, 0, h(c, 'key'), keyType, h(c, 'rndB'));
      expect(hex(response)).toBe(c.ek_rndB);
      const fin = pending.finish(h(c, 'pcd_part2'));
      expect(hex(fin.response)).toBe(c.ek_rndA_rot);
    });
    it(`${c.name}: host rejects a wrong card answer`, () => {
      const step = hostAuthStep(method, 0, h(c, 'key'), keyType, h(c, 'ek_rndB'), h(c, 'rndA'));
      const bad = h(c, 'ek_rndA_rot');
      bad[0]! ^= 1;
      expect(() => step.finish(bad)).toThrow(expect.objectContaining({ code: 'ERR_AUTHENTICATION' }));
    });
  }
});

describe('ev2_authentication', () => {
  for (const c of load('ev2_authentication').cases) {
    it(`${c.name}: host side`, () => {
      if (c.c_apdu_part1) expect(hex(hostFirstFrame('ev2first', 0))).toBe(hex(apduData(h(c, 'c_apdu_part1'))));
      const step = hostAuthStep('ev2first', 0, h(c, 'key'), 'aes', h(c, 'ek_rndB'), h(c, 'rndA'));
      expect(hex(step.frame)).toBe(c.pcd_part2);
      const s = step.finish(h(c, 'card_part2'));
      expect(s.kind).toBe('ev2');
      expect(hex(s.ti!)).toBe(c.ti);
      expect(s.cmdCtr).toBe(0);
      const k = ev2SessionKeys(h(c, 'key'), h(c, 'rndA'), h(c, 'rndB'));
      expect(hex(k.enc)).toBe(c.ses_auth_enc_key);
      expect(hex(k.mac)).toBe(c.ses_auth_mac_key);
      // K as the cipher the authentication ran with (reused, left usable to its owner): the same keys
      const kc = new BlockCipher('aes', h(c, 'key'));
      kc.cbcEncrypt(new Uint8Array(16), h(c, 'rndA')); // a used cipher: its chaining state must not matter
      const k2 = ev2SessionKeys(kc, h(c, 'rndA'), h(c, 'rndB'));
      expect([hex(k2.enc), hex(k2.mac)]).toEqual([c.ses_auth_enc_key, c.ses_auth_mac_key]);
      expect(() => kc.ecbEncrypt(new Uint8Array(16))).not.toThrow();
      kc.destroy();
      expect(() => ev2SessionKeys(new BlockCipher('2k3des', new Uint8Array(16)), h(c, 'rndA'), h(c, 'rndB'))).toThrow(expect.objectContaining({ code: 'ERR_CRYPTO_INPUT' }));
      if (c.sv1) expect(hex(ev2SessionVector(0xa55a, h(c, 'rndA'), h(c, 'rndB')))).toBe(c.sv1);
    });
    it(`${c.name}: card side`, () => {
      const { response, pending } = beginCardAuth('ev2first', 0, h(c, 'key'), 'aes', h(c, 'rndB'), { pcdCap2: h(c, 'pcdcap2'), pdCap2: h(c, 'pdcap2') });
      expect(hex(response)).toBe(c.ek_rndB);
      const fin = pending.finish(h(c, 'pcd_part2'), fixed(h(c, 'ti')));
      expect(hex(fin.response)).toBe(c.card_part2);
      expect(hex(fin.session.ti!)).toBe(c.ti);
    });
  }
});

function ev2Sessions(c: Case) {
  const st = {
    keyNo: 0,
    ti: h(c, 'ti'),
    cmdCtr: c.cmd_ctr as number,
    encKey: c.ses_enc_key ? h(c, 'ses_enc_key') : new Uint8Array(16),
    macKey: c.ses_mac_key ? h(c, 'ses_mac_key') : new Uint8Array(16),
  };
  return { host: new Ev2HostSession(st), card: new Ev2CardSession(st) };
}

describe('ev2_secure_messaging', () => {
  for (const c of load('ev2_secure_messaging').cases) {
    it(c.name, () => {
      const { host, card } = ev2Sessions(c);
      if (c.iv) expect(hex(host.engine.iv(0xa55a, c.cmd_ctr as number))).toBe(c.iv);
      if (c.resp_iv) expect(hex(host.engine.iv(0x5aa5, (c.cmd_ctr as number) + 1))).toBe(c.resp_iv);
      if (!c.ins) return;
      const ins = parseInt(c.ins as string, 16);
      const full = c.cmd_data_enc !== undefined || c.resp_data_enc !== undefined;
      const comm = full ? 'full' : 'mac';
      const data = c.cmd_data ? h(c, 'cmd_data') : c.cmd_data_plain ? h(c, 'cmd_data_plain') : new Uint8Array(0);
      const header = h(c, 'cmd_header');
      // command: host wraps, card unwraps
      const wire = host.wrapCommand(ins, header, data, comm);
      expect(hex(wire)).toBe(hex(apduData(h(c, 'c_apdu'))));
      expect(host.cmdCtr).toBe((c.cmd_ctr as number) + 1);
      expect(hex(card.unwrapCommand(ins, header, wire.subarray(header.length), comm))).toBe(hex(data));
      expect(card.cmdCtr).toBe((c.cmd_ctr as number) + 1);
      // response
      let body: Uint8Array;
      let plain: Uint8Array;
      if (c.resp_data_enc) {
        body = Uint8Array.from([...h(c, 'resp_data_enc'), ...h(c, 'resp_mact')]);
        const padded = h(c, 'resp_data_plain_padded');
        plain = padded.subarray(0, padded.lastIndexOf(0x80));
      } else if (c.resp_data) {
        body = Uint8Array.from([...h(c, 'resp_data'), ...h(c, 'resp_mact')]);
        plain = h(c, 'resp_data');
      } else {
        const r = h(c, 'response');
        body = r.subarray(0, r.length - 2);
        plain = new Uint8Array(0);
        expect(hex(body)).toBe(c.resp_mact);
      }
      expect(hex(card.wrapResponse(ins, 0x00, plain, comm))).toBe(hex(body));
      expect(hex(host.unwrapResponse(ins, 0x00, body, comm))).toBe(hex(plain));
      const bad = body.slice();
      bad[bad.length - 1]! ^= 0x01;
      expect(() => host.unwrapResponse(ins, 0x00, bad, comm)).toThrow(expect.objectContaining({ code: 'ERR_INTEGRITY' }));
    });
  }
});

describe('ev2_changekey', () => {
  for (const c of load('ev2_changekey').cases) {
    it(c.name, () => {
      const { host, card } = ev2Sessions(c);
      expect(hex(host.engine.iv(0xa55a, c.cmd_ctr as number))).toBe(c.iv);
      const cmd = changeKeyPayload(host, { keyNo: 0, newKey: h(c, 'new_key'), newKeyType: 'aes', newKeyVersion: parseInt(c.new_key_version as string, 16) });
      expect(cmd.sameKey).toBe(true);
      expect(hex(cmd.payload)).toBe(hex(apduData(h(c, 'c_apdu'))));
      const opened = openChangeKeyPayload(card, cmd.payload, { newKeyType: 'aes' });
      expect(hex(opened.newKey)).toBe(c.new_key);
      expect(opened.version).toBe(parseInt(c.new_key_version as string, 16));
      expect(opened.sameKey).toBe(true);
    });
  }
});

describe('ev1_changekey', () => {
  for (const c of load('ev1_changekey').cases) {
    it(c.name, () => {
      expect(hex(crc32Desfire(h(c, 'crc32_input')))).toBe(c.crc32);
      const keyNoByte = parseInt(c.key_no as string, 16);
      const picc = keyNoByte >= 0x40;
      const newKeyType: KeyType = picc ? 'aes' : c.key_version ? 'aes' : '2k3des';
      const st = { keyNo: 0, keyType: c.session_key_type as KeyType, sessionKey: h(c, 'session_key') };
      const host = new Ev1HostSession(st);
      const card = new Ev1CardSession(st);
      const version = c.key_version ? parseInt(c.key_version as string, 16) : undefined;
      const cmd = changeKeyPayload(host, { keyNo: keyNoByte & 0x0f, newKey: h(c, 'new_key'), newKeyType, newKeyVersion: version, picc });
      expect(cmd.sameKey).toBe(true);
      expect(hex(cmd.payload)).toBe(hex(Uint8Array.of(keyNoByte, ...h(c, 'cryptogram_enc'))));
      if (c.apdu) expect(hex(cmd.payload)).toBe(hex(apduData(h(c, 'apdu'))));
      const opened = openChangeKeyPayload(card, cmd.payload, { newKeyType, picc });
      expect(hex(opened.newKey)).toBe(c.new_key);
      expect(opened.version).toBe(version ?? getDesKeyVersion(h(c, 'new_key')));
    });
  }
});

describe('ev2_tmac_session_keys (regression, not NXP-published)', () => {
  for (const c of load('ev2_tmac_session_keys').cases) {
    it(c.name, () => {
      const k = tmacSessionKeys(h(c, 'tmac_key'), h(c, 'uid'), c.tm_counter as number);
      expect(hex(k.mac)).toBe(c.ses_tmac_key);
      expect(hex(k.enc)).toBe(c.ses_tenc_key);
    });
  }
});

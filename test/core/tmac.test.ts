// Transaction MAC in the core: codecs (CreateTransactionMACFile, TMC||TMV, EncTMRI, GetFileSettings
// type 05) and the computations of src/core/sm/tmac.ts against values computed independently with
// OpenSSL 3 (`openssl mac -cipher AES-128-CBC -macopt hexkey:K -in msg CMAC`, `openssl enc
// -aes-128-ecb -nopad`): SesTMMACKey/SesTMENCKey for TMC 0 of the session-key vector's key and UID,
// a TMV over a one-entry TMI, an EncTMRI, and deriveTmacKey.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/core/crypto/bytes.js';
import { FrameError } from '../../src/core/errors.js';
import {
  decodeCreateTransactionMacFile, decodeEncTmri, decodeFileSettings, decodeTransactionMac, encodeCreateTransactionMacFile,
  encodeFileSettings, encodeTransactionMac, ValueRangeError,
} from '../../src/core/protocol/index.js';
import { decryptTmri, deriveTmacKey, encryptTmri, TransactionMacInput, tmiEntry, transactionMacValue } from '../../src/core/sm/tmac.js';

const TMK = fromHex('66A8CB93269DC9BC2885B7A91B9C697B');
const UID = fromHex('04010203040506');
const ACCESS = { read: 0xe, write: 0xf, readWrite: 1, change: 0 };

describe('Transaction MAC codecs', () => {
  it('CreateTransactionMACFile: header and data round trip; W must be F; TMKeyOption 02; lengths', () => {
    const { header, data } = encodeCreateTransactionMacFile({ fileNo: 5, comm: 'mac', access: ACCESS, key: TMK, keyVersion: 9 });
    expect(toHex(header)).toBe('050110EF02');
    expect(toHex(data)).toBe(`${toHex(TMK)}09`);
    expect(decodeCreateTransactionMacFile(header, data)).toEqual({ fileNo: 5, comm: 'mac', access: ACCESS, key: TMK, keyVersion: 9 });
    expect(() => encodeCreateTransactionMacFile({ fileNo: 5, comm: 'mac', access: { ...ACCESS, write: 1 }, key: TMK, keyVersion: 0 })).toThrow(ValueRangeError);
    expect(() => encodeCreateTransactionMacFile({ fileNo: 5, comm: 'mac', access: ACCESS, key: TMK.subarray(0, 8), keyVersion: 0 })).toThrow(ValueRangeError);
    expect(() => decodeCreateTransactionMacFile(fromHex('050110EF00'), data)).toThrow(FrameError);
    expect(() => decodeCreateTransactionMacFile(fromHex('050110E102'), data)).toThrow(FrameError);
    expect(() => decodeCreateTransactionMacFile(fromHex('050110EF'), data)).toThrow(FrameError);
    expect(() => decodeCreateTransactionMacFile(header, data.subarray(0, 16))).toThrow(FrameError);
  });

  it('TMC || TMV, EncTMRI and GetFileSettings type 05', () => {
    const s = { tmc: 0x01020304, tmv: fromHex('0011223344556677') };
    expect(toHex(encodeTransactionMac(s))).toBe('040302010011223344556677');
    expect(decodeTransactionMac(encodeTransactionMac(s))).toEqual(s);
    expect(decodeTransactionMac(fromHex('FFFFFFFF0000000000000000')).tmc).toBe(0xffffffff);
    expect(() => decodeTransactionMac(new Uint8Array(11))).toThrow(FrameError);
    expect(() => decodeTransactionMac(new Uint8Array(13))).toThrow(FrameError);
    expect(decodeEncTmri(new Uint8Array(0))).toBeUndefined();
    expect(() => decodeEncTmri(new Uint8Array(15))).toThrow(FrameError);
    const fs = { type: 'transaction-mac' as const, comm: 'plain' as const, access: ACCESS, keyVersion: 3 };
    expect(toHex(encodeFileSettings(fs))).toBe('050010EF0203');
    expect(decodeFileSettings(encodeFileSettings(fs))).toEqual(fs);
    expect(() => decodeFileSettings(fromHex('050010EF0103'))).toThrow(FrameError);
    expect(() => decodeFileSettings(fromHex('050010EF02'))).toThrow(FrameError);
  });

  it('property: random CreateTransactionMACFile headers decode or throw FrameError', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 8 }), fc.uint8Array({ minLength: 0, maxLength: 20 }), (h, d) => {
      try {
        const p = decodeCreateTransactionMacFile(h, d);
        const again = encodeCreateTransactionMacFile(p);
        expect(toHex(again.header)).toBe(toHex(h));
        expect(toHex(again.data)).toBe(toHex(d));
      } catch (e) {
        expect(e).toBeInstanceOf(FrameError);
      }
    }), { numRuns: 2000 });
  });
});

describe('Transaction MAC computations (OpenSSL-computed expectations)', () => {
  it('TMI entries are 16-byte aligned: Cmd || params || 0.. || data || 0..', () => {
    expect(toHex(tmiEntry(0x6c, fromHex('01E8030000')))).toBe('6C01E803000000000000000000000000');
    expect(tmiEntry(0xbd, fromHex('01000000120000'), new Uint8Array(18)).length).toBe(16 + 32);
    expect(tmiEntry(0x3b, fromHex('02000000100000'), new Uint8Array(16)).length).toBe(32);
    expect(tmiEntry(0xc8, new Uint8Array(32)).length).toBe(48);
    const t = new TransactionMacInput();
    expect(t.empty).toBe(true);
    t.add(0x6c, fromHex('01E8030000'));
    t.add(0xeb, fromHex('02'));
    expect(t.length).toBe(32);
    expect(toHex(t.bytes()).slice(32, 36)).toBe('EB02');
    t.clear();
    expect(t.empty).toBe(true);
  });

  it('TMV = MACt(SesTMMACKey, TMI) for TMC 0 -> 1', () => {
    // SesTMMACKey = CMAC(TMK, 5A00010080 01000000 04010203040506) = EF7BB7FEE59E01BAB3A9FFD29442194A
    // CMAC(SesTMMACKey, 6C01E803 00..) = 249F2E45581D850A49F1848CEAAC3306 -> odd bytes
    const tmi = tmiEntry(0x6c, fromHex('01E8030000'));
    expect(toHex(transactionMacValue(TMK, UID, 0, tmi))).toBe('9F451D0AF18CAC06');
    expect(toHex(transactionMacValue(TMK, UID, 1, tmi))).not.toBe('9F451D0AF18CAC06');
    expect(() => transactionMacValue(TMK, UID, 0, new Uint8Array(0))).toThrow();
    expect(() => transactionMacValue(TMK, UID, 0, new Uint8Array(17))).toThrow();
    expect(() => transactionMacValue(TMK.subarray(0, 8), UID, 0, tmi)).toThrow();
  });

  it('EncTMRI = AES-ECB(SesTMENCKey, TMRIPrev); decryptTmri inverts it', () => {
    // SesTMENCKey = CMAC(TMK, A500010080 01000000 04010203040506) = 23CEE1B2BD88AA4E45C7350B271DE828
    const rid = fromHex('52454144455231000000000000000001');
    const enc = encryptTmri(TMK, UID, 0, rid);
    expect(toHex(enc)).toBe('1C7F7DECA7F97F3C46EC6AB5C15877D9');
    expect(decryptTmri(TMK, UID, 0, enc)).toEqual(rid);
    expect(() => encryptTmri(TMK, UID, 0, new Uint8Array(15))).toThrow();
  });

  it('deriveTmacKey = CMAC(K, 01 || "desfire-cms TMAC key" || 00 0080)', () => {
    expect(toHex(deriveTmacKey(fromHex('000102030405060708090A0B0C0D0E0F')))).toBe('6AC964EBD308BEA657ECB30242DEB807');
    expect(() => deriveTmacKey(new Uint8Array(24))).toThrow();
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DesfireError, FrameError } from '../../src/core/errors.js';
import { fromHex, toHex } from '../../src/core/crypto/bytes.js';
import {
  Cmd, ValueRangeError, decodeAccessRights, decodeAid, decodeAppKeySettings, decodeApplicationIds, decodeCardUid,
  decodeChangeFileSettings, decodeCommMode, decodeConfiguration, decodeCreateApplication, decodeCreateFile, decodeDataHeader,
  decodeDfNameEntry, encodeDfNameEntry, decodeFileIds, decodeIsoFileIds, encodeIsoFileIds, decodeFileSettings, decodeFreeMemory, decodeKeySettingsResponse, decodeKeyVersion, decodePiccKeySettings,
  decodeSignature, decodeValue, decodeVersion, encodeAccessRights, encodeAid, encodeAppKeySettings, encodeApplicationIds,
  encodeCardUid, encodeChangeFileSettings, encodeCommMode, encodeConfiguration, encodeCreateApplication, encodeCreateFile,
  encodeDataHeader, encodeFileIds, encodeFileSettings, encodeFreeMemory, encodeKeySettingsResponse, encodeKeyVersion,
  encodePiccKeySettings, encodeSignature, encodeValue, encodeVersion, CREATE_FILE_COMMANDS,
  type CreateApplicationParams, type CreateFileParams, type FileSettings, type VersionInfo,
} from '../../src/core/protocol/index.js';

const RUNS = { numRuns: 300 };
const nibble = fc.integer({ min: 0, max: 15 });
const byte = fc.integer({ min: 0, max: 255 });
const i32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const u24 = fc.integer({ min: 0, max: 0xffffff });
const access = fc.record({ read: nibble, write: nibble, readWrite: nibble, change: nibble });
const comm = fc.constantFrom('plain' as const, 'mac' as const, 'full' as const);
const appSettings = fc.record({
  changeKeyAccess: nibble, masterKeyChangeable: fc.boolean(), freeDirectoryList: fc.boolean(),
  freeCreateDelete: fc.boolean(), configurationChangeable: fc.boolean(),
});

/** Norm for comparing decoded structures (Uint8Array → hex). */
function norm(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? `hex:${toHex(x)}` : x)));
}

/** decode(random) is a value that re-encodes to the same bytes, or a typed error; never a crash. */
function fuzz<T>(gen: fc.Arbitrary<Uint8Array>, decode: (b: Uint8Array) => T, encode: (v: T) => Uint8Array): void {
  fc.assert(fc.property(gen, (b) => {
    let v: T;
    try {
      v = decode(b);
    } catch (e) {
      expect(e).toBeInstanceOf(DesfireError);
      return;
    }
    expect(toHex(encode(v))).toBe(toHex(b));
  }), { numRuns: 500 });
}

describe('key settings', () => {
  it('round-trips application and PICC settings, bytes both ways', () => {
    fc.assert(fc.property(appSettings, (s) => void expect(decodeAppKeySettings(encodeAppKeySettings(s))).toEqual(s)), RUNS);
    for (let b = 0; b < 256; b++) {
      expect(encodeAppKeySettings(decodeAppKeySettings(b))).toBe(b);
      if (b < 16) expect(encodePiccKeySettings(decodePiccKeySettings(b))).toBe(b);
      else expect(() => decodePiccKeySettings(b)).toThrow(FrameError);
    }
  });
  it('decodes the factory PICC settings 0x0F and a typical app byte', () => {
    expect(decodePiccKeySettings(0x0f)).toEqual({ masterKeyChangeable: true, freeDirectoryList: true, freeCreateDelete: true, configurationChangeable: true });
    expect(decodeAppKeySettings(0xe9)).toEqual({ changeKeyAccess: 0xe, masterKeyChangeable: true, freeDirectoryList: false, freeCreateDelete: false, configurationChangeable: true });
    expect(() => encodeAppKeySettings({ ...decodeAppKeySettings(0), changeKeyAccess: 16 })).toThrow(ValueRangeError);
  });
  it('GetKeySettings response round-trips and rejects bad bytes', () => {
    fc.assert(fc.property(byte, fc.integer({ min: 1, max: 14 }), fc.constantFrom('des' as const, '3k3des' as const, 'aes' as const), (settings, keyCount, keyType) => {
      const r = { settings, keyCount, keyType };
      expect(decodeKeySettingsResponse(encodeKeySettingsResponse(r))).toEqual(r);
    }), RUNS);
    expect(decodeKeySettingsResponse(fromHex('0F81'))).toEqual({ settings: 0x0f, keyCount: 1, keyType: 'aes' });
    for (const bad of ['0F', '0F8100', '0F80', '0F8F', '0FC1', '0F91']) expect(() => decodeKeySettingsResponse(fromHex(bad)), bad).toThrow(FrameError);
    fuzz(fc.uint8Array({ maxLength: 3 }), decodeKeySettingsResponse, encodeKeySettingsResponse);
  });
});

describe('access rights and comm mode', () => {
  it("encodes AN12343's 0x3012 example", () => {
    expect(toHex(encodeAccessRights({ read: 1, write: 2, readWrite: 3, change: 0 }))).toBe('3012');
    expect(decodeAccessRights(fromHex('3012'))).toEqual({ read: 1, write: 2, readWrite: 3, change: 0 });
    expect(toHex(encodeAccessRights({ read: 0xe, write: 0xf, readWrite: 0xf, change: 0 }))).toBe('F0EF');
  });
  it('round-trips every value and rejects bad lengths/values', () => {
    fc.assert(fc.property(access, (a) => void expect(decodeAccessRights(encodeAccessRights(a))).toEqual(a)), RUNS);
    fuzz(fc.uint8Array({ maxLength: 3 }), decodeAccessRights, encodeAccessRights);
    expect(() => encodeAccessRights({ read: 16, write: 0, readWrite: 0, change: 0 })).toThrow(ValueRangeError);
    expect(() => decodeAccessRights(fromHex('30'))).toThrow(FrameError);
  });
  it('comm mode bytes 0/1/3 only', () => {
    expect([encodeCommMode('plain'), encodeCommMode('mac'), encodeCommMode('full')]).toEqual([0, 1, 3]);
    for (let b = 0; b < 256; b++) {
      if (b === 0 || b === 1 || b === 3) expect(encodeCommMode(decodeCommMode(b))).toBe(b);
      else expect(() => decodeCommMode(b)).toThrow(FrameError);
    }
  });
});

const createApp: fc.Arbitrary<CreateApplicationParams> = fc.oneof(
  fc.record({ aid: fc.integer({ min: 1, max: 0xffffff }), settings: appSettings, keyCount: fc.integer({ min: 1, max: 14 }),
    keyType: fc.constantFrom('des' as const, '3k3des' as const, 'aes' as const), isoFileIds: fc.boolean() }),
  fc.record({ aid: fc.integer({ min: 1, max: 0xffffff }), settings: appSettings, keyCount: fc.integer({ min: 1, max: 14 }),
    keyType: fc.constantFrom('des' as const, '3k3des' as const, 'aes' as const), isoFileIds: fc.constant(true),
    isoFid: fc.integer({ min: 0, max: 0xffff }) }, { requiredKeys: ['aid', 'settings', 'keyCount', 'keyType', 'isoFileIds'] })
    .chain((p) => (p.isoFid === undefined ? fc.constant(p) : fc.option(fc.uint8Array({ minLength: 1, maxLength: 16 }), { nil: undefined })
      .map((dfName) => (dfName === undefined ? p : { ...p, dfName })))),
);

describe('applications', () => {
  it('AID is 3 bytes LSB first', () => {
    expect(toHex(encodeAid(0xf0a1b2))).toBe('B2A1F0');
    expect(decodeAid(fromHex('B2A1F0'))).toBe(0xf0a1b2);
    expect(() => decodeAid(fromHex('B2A1'))).toThrow(FrameError);
    expect(() => decodeAid(fromHex('B2A1F000'))).toThrow(FrameError);
    expect(() => encodeAid(0x1000000)).toThrow(ValueRangeError);
  });
  it('CreateApplication: known bytes', () => {
    const p: CreateApplicationParams = { aid: 0x010203, settings: decodeAppKeySettings(0x0f), keyCount: 5, keyType: 'aes', isoFileIds: false };
    expect(toHex(encodeCreateApplication(p))).toBe('0302010F85');
    const iso = { ...p, isoFileIds: true, isoFid: 0xe110, dfName: fromHex('D2760000850101') };
    expect(toHex(encodeCreateApplication(iso))).toBe('0302010FA510E1D2760000850101');
  });
  it('CreateApplication round-trips and fuzzes', () => {
    fc.assert(fc.property(createApp, (p) => void expect(norm(decodeCreateApplication(encodeCreateApplication(p)))).toEqual(norm(p))), RUNS);
    fuzz(fc.uint8Array({ minLength: 4, maxLength: 24 }), decodeCreateApplication, encodeCreateApplication);
  });
  it('CreateApplication rejects bad input', () => {
    for (const bad of ['0302010F', '0302010F80', '0302010F8F', '0302010FC5', '0302010F95', '0302010F8500', '0000000F85',
      '0302010FA510E1' + '00'.repeat(17)]) {
      expect(() => decodeCreateApplication(fromHex(bad)), bad).toThrow(FrameError);
    }
    const p: CreateApplicationParams = { aid: 1, settings: decodeAppKeySettings(0x0f), keyCount: 15, keyType: 'aes', isoFileIds: false };
    expect(() => encodeCreateApplication(p)).toThrow(ValueRangeError);
    expect(() => encodeCreateApplication({ ...p, keyCount: 1, isoFid: 1 })).toThrow(ValueRangeError);
    expect(() => encodeCreateApplication({ ...p, keyCount: 1, isoFileIds: true, dfName: fromHex('01') })).toThrow(ValueRangeError);
  });
  it('GetDFNames entry', () => {
    expect(toHex(encodeDfNameEntry({ aid: 0x010203, isoFid: 0xdf01, dfName: fromHex('A0000001') }))).toBe('03020101DFA0000001');
    fuzz(fc.uint8Array({ maxLength: 24 }), decodeDfNameEntry, encodeDfNameEntry);
    expect(toHex(decodeDfNameEntry(fromHex('0302010100')).dfName)).toBe('');
    expect(() => decodeDfNameEntry(fromHex('03020101'))).toThrow(FrameError);
    expect(() => decodeDfNameEntry(fromHex('0302010100' + '00'.repeat(17)))).toThrow(FrameError);
    expect(() => decodeDfNameEntry(fromHex('00000001DF'))).toThrow(FrameError);
  });
  it('GetApplicationIDs list', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 0xffffff }), { maxLength: 28 }), (a) =>
      void expect(decodeApplicationIds(encodeApplicationIds(a))).toEqual(a)), RUNS);
    expect(() => decodeApplicationIds(fromHex('0102'))).toThrow(FrameError);
    expect(() => decodeApplicationIds(fromHex('000000'))).toThrow(FrameError);
    fuzz(fc.uint8Array({ maxLength: 12 }), decodeApplicationIds, encodeApplicationIds);
  });
});

const fileSettings: fc.Arbitrary<FileSettings> = fc.oneof(
  fc.record({ type: fc.constantFrom('standard' as const, 'backup' as const), comm, access, fileSize: u24 }),
  fc.record({ type: fc.constant('value' as const), comm, access, lowerLimit: i32, upperLimit: i32, limitedCreditValue: i32,
    limitedCreditEnabled: fc.boolean(), freeGetValue: fc.boolean() }),
  fc.record({ type: fc.constantFrom('linear-record' as const, 'cyclic-record' as const), comm, access, recordSize: u24, maxRecords: u24, currentRecords: u24 }),
);

const createFile: fc.Arbitrary<CreateFileParams> = fc.oneof(
  fc.record({ type: fc.constantFrom('standard' as const, 'backup' as const), fileNo: fc.integer({ min: 0, max: 31 }),
    isoFid: fc.integer({ min: 0, max: 0xffff }), comm, access, fileSize: u24 }, { requiredKeys: ['type', 'fileNo', 'comm', 'access', 'fileSize'] }),
  fc.record({ type: fc.constant('value' as const), fileNo: fc.integer({ min: 0, max: 31 }), comm, access, lowerLimit: i32, upperLimit: i32,
    value: i32, limitedCreditEnabled: fc.boolean(), freeGetValue: fc.boolean() }),
  fc.record({ type: fc.constantFrom('linear-record' as const, 'cyclic-record' as const), fileNo: fc.integer({ min: 0, max: 31 }),
    isoFid: fc.integer({ min: 0, max: 0xffff }), comm, access, recordSize: fc.integer({ min: 1, max: 0xffffff }),
    maxRecords: fc.integer({ min: 1, max: 0xffffff }) }, { requiredKeys: ['type', 'fileNo', 'comm', 'access', 'recordSize', 'maxRecords'] }),
);

describe('file settings', () => {
  it('GetFileSettings: known bytes for each type', () => {
    const a = { read: 1, write: 2, readWrite: 3, change: 0 };
    expect(toHex(encodeFileSettings({ type: 'standard', comm: 'full', access: a, fileSize: 32 }))).toBe('0003301220' + '0000');
    expect(decodeFileSettings(fromHex('000330122000' + '00'))).toEqual({ type: 'standard', comm: 'full', access: a, fileSize: 32 });
    expect(toHex(encodeFileSettings({ type: 'value', comm: 'mac', access: a, lowerLimit: -1, upperLimit: 1000, limitedCreditValue: 0,
      limitedCreditEnabled: true, freeGetValue: true }))).toBe('02013012FFFFFFFFE80300000000000003');
    expect(toHex(encodeFileSettings({ type: 'cyclic-record', comm: 'plain', access: a, recordSize: 16, maxRecords: 5, currentRecords: 2 })))
      .toBe('040030121000000500000200' + '00');
  });
  it('GetFileSettings round-trips every file type and fuzzes', () => {
    fc.assert(fc.property(fileSettings, (s) => void expect(decodeFileSettings(encodeFileSettings(s))).toEqual(s)), RUNS);
    fuzz(fc.uint8Array({ minLength: 1, maxLength: 20 }), decodeFileSettings, encodeFileSettings);
    fuzz(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.constantFrom(0, 1, 3), fc.uint8Array({ minLength: 2, maxLength: 18 }))
      .map(([t, c, rest]) => Uint8Array.from([t, c, ...rest])), decodeFileSettings, encodeFileSettings);
  });
  it('GetFileSettings rejects truncated, overlong and bad fields', () => {
    for (const bad of ['0003301220', '000330122000', '0003301220000000', '05033012200000', '00023012200000', '02013012FFFFFFFFE80300000000000007']) {
      expect(() => decodeFileSettings(fromHex(bad)), bad).toThrow(FrameError);
    }
  });
  it('Create*File: known bytes, round trip with and without ISO FID, fuzz', () => {
    const a = { read: 1, write: 2, readWrite: 3, change: 0 };
    expect(toHex(encodeCreateFile({ type: 'standard', fileNo: 1, comm: 'plain', access: a, fileSize: 0x100 }))).toBe('01003012000100');
    expect(toHex(encodeCreateFile({ type: 'backup', fileNo: 2, isoFid: 0xe104, comm: 'mac', access: a, fileSize: 1 }))).toBe('0204E1013012010000');
    fc.assert(fc.property(createFile, (p) => void expect(decodeCreateFile(CREATE_FILE_COMMANDS[p.type], encodeCreateFile(p))).toEqual(p)), RUNS);
    for (const ins of Object.values(CREATE_FILE_COMMANDS)) {
      fuzz(fc.uint8Array({ minLength: 1, maxLength: 20 }), (b) => decodeCreateFile(ins, b), encodeCreateFile);
    }
  });
  it('Create*File rejects bad input', () => {
    expect(() => decodeCreateFile(Cmd.CREATE_STD_DATA_FILE, fromHex('010030120001'))).toThrow(FrameError);
    expect(() => decodeCreateFile(Cmd.CREATE_STD_DATA_FILE, fromHex('20003012000100'))).toThrow(FrameError);
    expect(() => decodeCreateFile(Cmd.CREATE_LINEAR_RECORD_FILE, fromHex('01003012000000050000'))).toThrow(FrameError);
    expect(() => decodeCreateFile(Cmd.READ_DATA, fromHex('01003012000100'))).toThrow(FrameError);
    expect(() => encodeCreateFile({ type: 'standard', fileNo: 32, comm: 'plain', access: { read: 0, write: 0, readWrite: 0, change: 0 }, fileSize: 1 }))
      .toThrow(ValueRangeError);
    expect(() => encodeCreateFile({ type: 'value', fileNo: 1, comm: 'plain', access: { read: 0, write: 0, readWrite: 0, change: 0 },
      lowerLimit: 0, upperLimit: 2 ** 31, value: 0, limitedCreditEnabled: false, freeGetValue: false })).toThrow(ValueRangeError);
  });
  it('ChangeFileSettings data', () => {
    fc.assert(fc.property(comm, access, (c, a) => void expect(decodeChangeFileSettings(encodeChangeFileSettings({ comm: c, access: a }))).toEqual({ comm: c, access: a })));
    fuzz(fc.uint8Array({ maxLength: 4 }), decodeChangeFileSettings, encodeChangeFileSettings);
  });
});

describe('GetVersion', () => {
  // An EV1 4K answer (three frames joined): hardware/software parts as EV1 4K cards report them
  // (04 01 01 01 00 18 05); UID, batch and date illustrative.
  it('decodes parts and identifies the generation', async () => {
    const { generationOf, storageBytes } = await import('../../src/core/protocol/index.js');
    const b = fromHex('0401010100180504010101001805042A8A2B3C4D80BA544490592010');
    const v = decodeVersion(b);
    expect(v.hardware.majorVersion).toBe(1);
    expect(v.hardware.storageSize).toBe(0x18);
    expect(storageBytes(v.hardware.storageSize)).toBe(4096);
    expect(toHex(v.uid)).toBe('042A8A2B3C4D80');
    expect(v.productionYear).toBe(0x10);
    expect(generationOf(v)).toBe('ev1');
    expect(generationOf({ ...v, hardware: { ...v.hardware, majorVersion: 0x12 } })).toBe('ev2');
    expect(generationOf({ ...v, hardware: { ...v.hardware, majorVersion: 0x30 } })).toBe('ev3');
    expect(generationOf({ ...v, hardware: { ...v.hardware, majorVersion: 0x00 } })).toBe('d40');
    expect(toHex(encodeVersion(v))).toBe(toHex(b));
  });
  it('round-trips and rejects wrong lengths', () => {
    fuzz(fc.uint8Array({ minLength: 26, maxLength: 30 }), decodeVersion, encodeVersion);
    fc.assert(fc.property(fc.uint8Array({ minLength: 28, maxLength: 29 }), (b) => {
      const v: VersionInfo = decodeVersion(b);
      expect(toHex(encodeVersion(v))).toBe(toHex(b));
    }));
    expect(() => decodeVersion(new Uint8Array(27))).toThrow(FrameError);
    expect(() => decodeVersion(new Uint8Array(30))).toThrow(FrameError);
  });
});

describe('small codecs', () => {
  it('card UID, free memory, key version, signature, file IDs', () => {
    fuzz(fc.uint8Array({ maxLength: 11 }), decodeCardUid, encodeCardUid);
    expect(decodeFreeMemory(fromHex('001001'))).toBe(0x011000);
    fuzz(fc.uint8Array({ maxLength: 4 }), decodeFreeMemory, encodeFreeMemory);
    fuzz(fc.uint8Array({ maxLength: 2 }), decodeKeyVersion, encodeKeyVersion);
    fuzz(fc.uint8Array({ minLength: 54, maxLength: 58 }), decodeSignature, encodeSignature);
    expect(() => decodeSignature(new Uint8Array(55))).toThrow(FrameError);
    fuzz(fc.uint8Array({ maxLength: 8 }), decodeFileIds, encodeFileIds);
    fuzz(fc.uint8Array({ maxLength: 9 }), decodeIsoFileIds, encodeIsoFileIds);
    expect(decodeIsoFileIds(fromHex('04E103E1'))).toEqual([0xe104, 0xe103]);
    expect(() => decodeIsoFileIds(fromHex('04E104E1'))).toThrow(FrameError);
    expect(() => decodeFileIds(fromHex('0101'))).toThrow(FrameError);
    expect(() => decodeFileIds(fromHex('20'))).toThrow(FrameError);
  });
  it('data header and values', () => {
    expect(toHex(encodeDataHeader({ fileNo: 2, offset: 0x10, length: 0x123 }))).toBe('02100000230100');
    fc.assert(fc.property(fc.integer({ min: 0, max: 31 }), u24, u24, fc.uint8Array({ maxLength: 10 }), (fileNo, offset, length, rest) => {
      const b = Uint8Array.from([...encodeDataHeader({ fileNo, offset, length }), ...rest]);
      const d = decodeDataHeader(b);
      expect(d.header).toEqual({ fileNo, offset, length });
      expect(toHex(d.rest)).toBe(toHex(rest));
    }));
    expect(() => decodeDataHeader(fromHex('021000002301'))).toThrow(FrameError);
    fc.assert(fc.property(i32, (v) => void expect(decodeValue(encodeValue(v))).toBe(v)));
    expect(toHex(encodeValue(-2))).toBe('FEFFFFFF');
    fuzz(fc.uint8Array({ maxLength: 5 }), decodeValue, encodeValue);
  });
  it('SetConfiguration', () => {
    for (const c of [{ option: 'picc' as const, disableFormat: true, randomUid: false },
      { option: 'default-key' as const, key: new Uint8Array(24).fill(0x11), keyVersion: 3 },
      { option: 'ats' as const, ats: fromHex('067777710280') }]) {
      const e = encodeConfiguration(c);
      expect(norm(decodeConfiguration(e.option, e.data))).toEqual(norm(c));
    }
    expect(() => decodeConfiguration(0, fromHex('04'))).toThrow(FrameError);
    expect(() => decodeConfiguration(3, fromHex('00'))).toThrow(FrameError);
    expect(() => encodeConfiguration({ option: 'ats', ats: fromHex('0577') })).toThrow(ValueRangeError);
  });
});

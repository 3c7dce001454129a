// The DesfireClient against the virtual card (src/card) through an in-memory Transport: every
// client operation, in each comm mode and session generation, plus error paths.
import { beforeEach, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/index.js';
import { fromHex, toHex } from '../../src/core/crypto/bytes.js';
import { SessionError } from '../../src/core/errors.js';
import type { Transport } from '../../src/core/transport.js';
import { DesfireClient, splitRecords } from '../../src/core/client/index.js';
import { CardStatusError, ValueRangeError, decodeAppKeySettings, generationOf, type AccessRights } from '../../src/core/protocol/index.js';

function counterRandom(seed: number): (n: number) => Uint8Array {
  let x = seed;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      out[i] = x >>> 24;
    }
    return out;
  };
}

const UID = fromHex('04A1B2C3D4E5F6');
const CMK = fromHex('00112233445566778899AABBCCDDEEFF');
const AMK = fromHex('A0A1A2A3A4A5A6A7A8A9AAABACADAEAF');
const K1 = fromHex('B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF');
const K2 = fromHex('C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF');
const ZERO16 = new Uint8Array(16);
const AID = 0x0a0b0c;
const ALL1: AccessRights = { read: 1, write: 1, readWrite: 1, change: 0 };

function setup(): { card: VirtualCard; client: DesfireClient; log: string[] } {
  const card = VirtualCard.create({ uid: UID, profile: 'ev2', random: counterRandom(7) });
  const log: string[] = [];
  const t: Transport = {
    async transmit(apdu) {
      log.push(toHex(apdu));
      return card.process(apdu);
    },
  };
  return { card, client: new DesfireClient(t, { random: counterRandom(99) }), log };
}

/** Factory card → AES PICC key → one application with AES keys 0..2 and files 1..6. */
async function personalise(client: DesfireClient): Promise<void> {
  await client.authenticate(0, new Uint8Array(8), { method: 'd40', keyType: 'des' });
  await client.changeKey(0, CMK, { keyType: 'aes', keyVersion: 1 });
  expect(client.session).toBeUndefined();
  await client.authenticate(0, CMK, { method: 'ev2' });
  await client.createApplication({ aid: AID, settings: decodeAppKeySettings(0x0b), keyCount: 3, keyType: 'aes', isoFileIds: false });
  await client.selectApplication(AID);
  await client.authenticate(0, ZERO16, { method: 'ev2' });
  await client.changeKey(1, K1, { keyType: 'aes', keyVersion: 2, oldKey: ZERO16 });
  await client.changeKey(2, K2, { keyType: 'aes', keyVersion: 3, oldKey: ZERO16 });
  await client.changeKey(0, AMK, { keyType: 'aes', keyVersion: 4 });
  expect(client.session).toBeUndefined();
  await client.authenticate(0, AMK, { method: 'ev2' });
  await client.createStdDataFile({ fileNo: 1, comm: 'full', access: ALL1, fileSize: 100 });
  await client.createBackupDataFile({ fileNo: 2, comm: 'mac', access: ALL1, fileSize: 32 });
  await client.createValueFile({ fileNo: 3, comm: 'full', access: ALL1, lowerLimit: 0, upperLimit: 1000, value: 10,
    limitedCreditEnabled: true, freeGetValue: false });
  await client.createLinearRecordFile({ fileNo: 4, comm: 'full', access: ALL1, recordSize: 16, maxRecords: 4 });
  await client.createCyclicRecordFile({ fileNo: 5, comm: 'mac', access: { read: 0xe, write: 1, readWrite: 1, change: 0 }, recordSize: 8, maxRecords: 3 });
  await client.createStdDataFile({ fileNo: 6, comm: 'plain', access: { read: 0xe, write: 2, readWrite: 2, change: 0 }, fileSize: 40 });
}

const bytes = (n: number, start = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

describe('client against the virtual card', () => {
  let card: VirtualCard;
  let client: DesfireClient;
  let log: string[];
  beforeEach(() => {
    ({ card, client, log } = setup());
  });

  it('reads a factory card without authentication', async () => {
    const v = await client.getVersion();
    expect(generationOf(v)).toBe('ev2');
    expect(toHex(v.uid)).toBe(toHex(UID));
    const ks = await client.getKeySettings();
    expect(ks).toEqual({ settings: 0x0f, keyCount: 1, keyType: 'des' });
    expect(await client.getApplicationIds()).toEqual([]);
    expect(await client.getFreeMemory()).toBeGreaterThan(1000);
    expect(await client.readSig()).toHaveLength(56);
    expect(log[0]).toBe('9060000000');
    expect(log[1]).toBe('90AF000000');
  });

  it('personalises: PICC key change, application, keys, every file type', async () => {
    await personalise(client);
    expect(await client.getFileIds()).toEqual(expect.arrayContaining([1, 2, 3, 4, 5, 6]));
    expect(await client.getFileSettings(3)).toEqual({ type: 'value', comm: 'full', access: ALL1, lowerLimit: 0, upperLimit: 1000,
      limitedCreditValue: 0, limitedCreditEnabled: true, freeGetValue: false });
    expect(await client.getFileSettings(4)).toEqual({ type: 'linear-record', comm: 'full', access: ALL1, recordSize: 16, maxRecords: 4, currentRecords: 0 });
    expect(await client.getKeyVersion(1)).toBe(2);
    expect(await client.getKeyVersion(0)).toBe(4);
    const ks = await client.getKeySettings();
    expect(ks.keyCount).toBe(3);
    expect(ks.keyType).toBe('aes');
    await client.selectApplication(0);
    expect(await client.getApplicationIds()).toEqual([AID]);
    await client.authenticate(0, CMK, { method: 'ev2' });
    expect(toHex(await client.getCardUid())).toBe(toHex(UID));
    expect(await client.readSig()).toHaveLength(56);
    expect(await client.getKeyVersion(0)).toBe(1);
  });

  for (const method of ['ev2', 'aes'] as const) {
    it(`file data in every comm mode under ${method} sessions`, async () => {
      await personalise(client);
      await client.selectApplication(AID);
      await client.authenticate(1, K1, { method });
      // standard file, full mode, chained both ways (100 bytes > one frame)
      const d = bytes(100);
      await client.writeData(1, 0, d);
      expect(toHex(await client.readData(1, 0, 0))).toBe(toHex(d));
      expect(toHex(await client.readData(1, 10, 20, { comm: 'full' }))).toBe(toHex(d.slice(10, 30)));
      // backup file, MAC mode: visible after commit only
      await client.writeData(2, 0, bytes(32, 0x40));
      expect(toHex(await client.readData(2, 0, 32))).toBe('00'.repeat(32));
      await client.commitTransaction();
      expect(toHex(await client.readData(2, 0, 32))).toBe(toHex(bytes(32, 0x40)));
      await client.writeData(2, 0, bytes(4, 0x90));
      await client.abortTransaction();
      expect(toHex(await client.readData(2, 0, 4))).toBe(toHex(bytes(4, 0x40)));
      // value file, full mode
      expect(await client.getValue(3)).toBe(10);
      await client.credit(3, 5);
      await client.commitTransaction();
      expect(await client.getValue(3)).toBe(15);
      await client.debit(3, 3);
      await client.commitTransaction();
      await client.limitedCredit(3, 3);
      await client.commitTransaction();
      expect(await client.getValue(3)).toBe(15);
      // linear record file, full mode
      await client.writeRecord(4, 0, bytes(16, 0x10));
      await client.commitTransaction();
      await client.writeRecord(4, 0, bytes(16, 0x20));
      await client.commitTransaction();
      const recs = splitRecords(await client.readRecords(4, 0, 0, { recordSize: 16 }), 16);
      expect(recs.map((r) => toHex(r))).toEqual([toHex(bytes(16, 0x10)), toHex(bytes(16, 0x20))]);
      await client.clearRecordFile(4);
      await client.commitTransaction();
      // cyclic record file, MAC mode, free read: plain for key 1? no: key 1 holds RW, so the file's mode
      await client.writeRecord(5, 0, bytes(8, 0x55));
      await client.commitTransaction();
      expect(toHex(await client.readRecords(5, 0, 1))).toBe(toHex(bytes(8, 0x55)));
      expect(client.session).toBeDefined();
    });
  }

  const LEGACY = [
    { name: 'D40 (0x0A) DES', appKeyType: 'des', method: 'd40', keyType: 'des', key: new Uint8Array(8) },
    { name: 'ISO (0x1A) DES', appKeyType: 'des', method: 'iso', keyType: 'des', key: new Uint8Array(8) },
    { name: 'ISO (0x1A) 3K3DES', appKeyType: '3k3des', method: 'iso', keyType: '3k3des', key: new Uint8Array(24) },
    { name: 'AES (0xAA)', appKeyType: 'aes', method: 'aes', keyType: 'aes', key: new Uint8Array(16) },
  ] as const;
  for (const g of LEGACY) {
    it(`${g.name} session: plain, MAC and full files, values and records`, async () => {
      await client.createApplication({ aid: 0x112233, settings: decodeAppKeySettings(0x0f), keyCount: 2, keyType: g.appKeyType, isoFileIds: false });
      await client.selectApplication(0x112233);
      await client.authenticate(0, g.key, { method: g.method, keyType: g.keyType });
      const k0: AccessRights = { read: 0, write: 0, readWrite: 0, change: 0 };
      const comms = ['plain', 'mac', 'full'] as const;
      for (const [i, comm] of comms.entries()) {
        await client.createStdDataFile({ fileNo: i, comm, access: k0, fileSize: 80 });
        const d = bytes(70, 0x30 + i);
        await client.writeData(i, 5, d);
        expect(toHex(await client.readData(i, 5, 70))).toBe(toHex(d));
        expect(toHex(await client.readData(i, 0, 0))).toBe('00'.repeat(5) + toHex(d) + '00'.repeat(5));
      }
      await client.createValueFile({ fileNo: 5, comm: 'full', access: k0, lowerLimit: -100, upperLimit: 100, value: 0, limitedCreditEnabled: false, freeGetValue: false });
      await client.debit(5, 42);
      await client.commitTransaction();
      expect(await client.getValue(5)).toBe(-42);
      await client.createCyclicRecordFile({ fileNo: 6, comm: 'mac', access: k0, recordSize: 4, maxRecords: 3 });
      for (let r = 0; r < 4; r++) {
        await client.writeRecord(6, 0, bytes(4, r * 16));
        await client.commitTransaction();
      }
      // a cyclic file of 3 records keeps the 2 newest (one is the spare for the next write)
      expect(splitRecords(await client.readRecords(6, 0, 0), 4).map((r) => toHex(r))).toEqual([2, 3].map((r) => toHex(bytes(4, r * 16))));
      expect(client.session?.kind).toBe(g.method === 'd40' ? 'd40' : 'ev1');
      // enciphered command data (ChangeKeySettings) and MAC'd management answers
      await client.changeKeySettings(0x0d);
      expect(await client.getKeySettings()).toEqual({ settings: 0x0d, keyCount: 2, keyType: g.appKeyType });
      expect(await client.getKeyVersion(0)).toBe(0);
      // ChangeKey of another key (XOR with the old key + CRC of the new one), then use it
      const newKey = bytes(g.key.length, 0x71);
      await client.changeKey(1, newKey, { keyType: g.keyType, oldKey: g.key, ...(g.keyType === 'aes' ? { keyVersion: 7 } : {}) });
      expect(client.session).toBeDefined();
      await client.authenticate(1, newKey, { method: g.method, keyType: g.keyType });
      await expect(client.readData(2, 0, 1)).rejects.toMatchObject({ code: 'ERR_CARD_PERMISSION_DENIED' });
      expect(client.session).toBeUndefined();
    });
  }

  const PICC_SESSIONS = [
    { method: 'd40', keyType: 'des' }, { method: 'iso', keyType: 'des' }, { method: 'aes', keyType: 'aes' }, { method: 'ev2', keyType: 'aes' },
  ] as const;
  for (const g of PICC_SESSIONS) {
    it(`every PICC- and application-level management command under a ${g.method} session`, async () => {
      let picc: Uint8Array = new Uint8Array(8);
      if (g.keyType === 'aes') {
        await client.authenticate(0, picc, { method: 'd40', keyType: 'des' });
        await client.changeKey(0, CMK, { keyType: 'aes', keyVersion: 1 });
        picc = CMK;
      }
      await client.authenticate(0, picc, { method: g.method, keyType: g.keyType });
      expect(generationOf(await client.getVersion())).toBe('ev2');
      const free = await client.getFreeMemory();
      await client.createApplication({ aid: 0x445566, settings: decodeAppKeySettings(0x0f), keyCount: 2, keyType: g.keyType === 'aes' ? 'aes' : 'des', isoFileIds: false });
      expect(await client.getFreeMemory()).toBeLessThan(free);
      expect(await client.getApplicationIDs()).toEqual([0x445566]);
      expect((await client.getKeySettings()).settings).toBe(0x0f);
      if (g.method !== 'd40') {
        expect(toHex(await client.getCardUid())).toBe(toHex(UID));
        expect(await client.readSig()).toHaveLength(56);
      }
      await client.selectApplication(0x445566);
      await client.authenticate(0, g.keyType === 'aes' ? ZERO16 : new Uint8Array(8), { method: g.method, keyType: g.keyType });
      const k0: AccessRights = { read: 0, write: 0, readWrite: 0, change: 0 };
      await client.createValueFile({ fileNo: 1, comm: 'mac', access: k0, lowerLimit: 0, upperLimit: 100, value: 50, limitedCreditEnabled: true, freeGetValue: true });
      await client.createBackupDataFile({ fileNo: 2, comm: 'full', access: k0, fileSize: 16 });
      await client.createLinearRecordFile({ fileNo: 3, comm: 'plain', access: k0, recordSize: 2, maxRecords: 5 });
      expect((await client.getFileIDs()).sort()).toEqual([1, 2, 3]);
      await client.debit(1, 10);
      await client.writeData(2, 0, bytes(16));
      await client.writeRecord(3, 0, bytes(2));
      await client.abortTransaction();
      expect(await client.getValue(1)).toBe(50);
      await client.debit(1, 10);
      await client.commitTransaction();
      await client.limitedCredit(1, 10);
      await client.commitTransaction();
      await client.credit(1, 7);
      await client.commitTransaction();
      expect(await client.getValue(1)).toBe(57);
      await client.writeRecord(3, 0, bytes(2));
      await client.commitTransaction();
      await client.clearRecordFile(3);
      await client.commitTransaction();
      await expect(client.readRecords(3, 0, 0)).rejects.toMatchObject({ code: 'ERR_CARD_BOUNDARY_ERROR' });
      await client.authenticate(0, g.keyType === 'aes' ? ZERO16 : new Uint8Array(8), { method: g.method, keyType: g.keyType });
      await client.changeFileSettings(2, { comm: 'plain', access: { ...k0, read: 0xe } });
      expect(await client.getFileSettings(2)).toEqual({ type: 'backup', comm: 'plain', access: { ...k0, read: 0xe }, fileSize: 16 });
      await client.deleteFile(2);
      expect((await client.getFileIds()).sort()).toEqual([1, 3]);
      await client.selectApplication(0);
      await client.authenticate(0, picc, { method: g.method, keyType: g.keyType });
      await client.deleteApplication(0x445566);
      await client.formatPICC();
      expect(await client.getApplicationIds()).toEqual([]);
      expect(client.session).toBeDefined();
    });
  }

  it('free access is plain without a session; protected files need one', async () => {
    await personalise(client);
    await client.selectApplication(AID);
    expect(client.session).toBeUndefined();
    expect(toHex(await client.readData(6, 0, 4))).toBe('00000000');
    await expect(client.readData(1, 0, 4, { comm: 'full' })).rejects.toThrow(SessionError);
    await expect(client.readData(1, 0, 4)).rejects.toMatchObject({ code: 'ERR_CARD_AUTHENTICATION_ERROR' });
    await client.authenticate(2, K2, { method: 'ev2' });
    await client.writeData(6, 0, bytes(40));
    expect(toHex(await client.readData(6, 0, 0))).toBe(toHex(bytes(40)));
  });

  it('ChangeFileSettings, DeleteFile, ChangeKeySettings, EV2NonFirst', async () => {
    await personalise(client);
    await client.changeFileSettings(6, { comm: 'mac', access: { read: 2, write: 2, readWrite: 2, change: 0 } });
    expect(await client.getFileSettings(6)).toMatchObject({ comm: 'mac', access: { read: 2 } });
    await client.deleteFile(6);
    expect(await client.getFileIds()).not.toContain(6);
    await client.changeKeySettings(0x0f);
    expect((await client.getKeySettings()).settings).toBe(0x0f);
    const ti = toHex(client.session!.ti!);
    await client.authenticate(1, K1, { method: 'ev2', nonFirst: true });
    expect(toHex(client.session!.ti!)).toBe(ti);
    expect(toHex(await client.readData(1, 0, 3))).toBe('000000');
  });

  it('error statuses surface typed, end the session, and bad arguments send nothing', async () => {
    await personalise(client);
    const s = client.session;
    const sent = log.length;
    await expect(client.readData(40, 0, 1)).rejects.toThrow(ValueRangeError);
    await expect(client.credit(3, -1)).rejects.toThrow(ValueRangeError);
    await expect(client.createStdDataFile({ fileNo: 7, comm: 'plain', access: { ...ALL1, read: 16 }, fileSize: 1 })).rejects.toThrow(ValueRangeError);
    expect(log.length).toBe(sent);
    expect(client.session).toBe(s);
    const e = await client.readData(9, 0, 1, { comm: 'plain' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CardStatusError);
    expect(e).toMatchObject({ code: 'ERR_CARD_FILE_NOT_FOUND', status: 0xf0 });
    expect(client.session).toBeUndefined();
    await client.authenticate(1, K1, { method: 'ev2' });
    await expect(client.readData(1, 90, 20)).rejects.toMatchObject({ code: 'ERR_CARD_BOUNDARY_ERROR' });
    await client.authenticate(1, K1, { method: 'ev2' });
    await expect(client.createStdDataFile({ fileNo: 7, comm: 'plain', access: ALL1, fileSize: 1 })).rejects.toMatchObject({ status: 0xae });
    await expect(client.authenticate(1, K2, { method: 'ev2' })).rejects.toThrow();
    expect(client.session).toBeUndefined();
    await expect(client.selectApplication(0x999999)).rejects.toMatchObject({ code: 'ERR_CARD_APPLICATION_NOT_FOUND' });
    await expect(client.getCardUid()).rejects.toThrow(SessionError);
  });

  it('GetDFNames: one application per frame, without and with an EV2 session', async () => {
    await client.authenticate(0, new Uint8Array(8), { method: 'd40', keyType: 'des' });
    await client.changeKey(0, CMK, { keyType: 'aes', keyVersion: 1 });
    await client.authenticate(0, CMK, { method: 'ev2' });
    expect(await client.getDfNames()).toEqual([]);
    const names = [fromHex('D2760000850101'), fromHex('A000000001020304050607080910AABB'), undefined];
    for (const [i, dfName] of names.entries()) {
      await client.createApplication({ aid: 0x100 + i, settings: decodeAppKeySettings(0x0f), keyCount: 1, keyType: 'aes', isoFileIds: true,
        isoFid: 0xdf00 + i, ...(dfName ? { dfName } : {}) });
    }
    await client.createApplication({ aid: 0x200, settings: decodeAppKeySettings(0x0f), keyCount: 1, keyType: 'aes', isoFileIds: false });
    const expected = names.map((n, i) => ({ aid: 0x100 + i, isoFid: 0xdf00 + i, dfName: toHex(n ?? new Uint8Array(0)) }));
    const norm = (l: { aid: number; isoFid: number; dfName: Uint8Array }[]) => l.map((e) => ({ ...e, dfName: toHex(e.dfName) }));
    expect(norm(await client.getDfNames())).toEqual(expected);
    await client.selectApplication(0); // ends the session on both sides
    expect(norm(await client.getDfNames())).toEqual(expected);
  });

  it('SetConfiguration: random UID and default key, enciphered under the PICC master key', async () => {
    await personalise(client);
    await client.selectApplication(0);
    await client.authenticate(0, CMK, { method: 'ev2' });
    await client.setConfiguration({ option: 'default-key', key: bytes(24, 0x20), keyVersion: 5 });
    await client.setConfiguration({ option: 'picc', disableFormat: false, randomUid: true });
    expect(toHex(await client.getCardUid())).toBe(toHex(UID));
    await client.authenticate(0, CMK, { method: 'aes' });
    expect(toHex(await client.getCardUID())).toBe(toHex(UID));
  });

  it('deletes the application and formats the card', async () => {
    await personalise(client);
    await client.selectApplication(0);
    await client.authenticate(0, CMK, { method: 'ev2' });
    await client.deleteApplication(AID);
    expect(await client.getApplicationIds()).toEqual([]);
    await client.createApplication({ aid: 0x000001, settings: decodeAppKeySettings(0x0f), keyCount: 1, keyType: '3k3des', isoFileIds: true, isoFid: 0xdf01, dfName: fromHex('A0000001') });
    await client.selectApplication(1);
    await client.authenticate(0, new Uint8Array(24), { method: 'iso', keyType: '3k3des' });
    await client.createStdDataFile({ fileNo: 1, isoFid: 0xe104, comm: 'plain', access: ALL1, fileSize: 8 });
    await client.createLinearRecordFile({ fileNo: 2, isoFid: 0xe105, comm: 'plain', access: ALL1, recordSize: 8, maxRecords: 2 });
    expect((await client.getIsoFileIds()).sort()).toEqual([0xe104, 0xe105]);
    await client.selectApplication(0);
    await client.authenticate(0, CMK, { method: 'ev2' });
    await client.formatPicc();
    expect(await client.getApplicationIds()).toEqual([]);
    expect(card.uid).toHaveLength(7);
  });
});

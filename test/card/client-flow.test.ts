// The design's flows end to end with the project's DesfireClient (src/core/client) against the
// virtual card: issue a card (factory DES key -> AES CMK, locked key settings, random UID), install
// an application with per-key AES keys and files in every comm mode, runtime use by role keys,
// rotation of a key with a tear in the middle, image persistence between sessions.
import { describe, expect, it } from 'vitest';
import { VirtualCard, verifyOriginality } from '../../src/card/index.js';
import { fromHex } from '../../src/core/crypto/bytes.js';
import type { AccessRights } from '../../src/core/protocol/index.js';
import { cardStatus, clientFor } from './host.js';

const UID = fromHex('04C0FFEE123456');
const CMK = fromHex('0F0E0D0C0B0A09080706050403020100');
const AMK = fromHex('A1A2A3A4A5A6A7A8A9AAABACADAEAFA0');
const READ_KEY = fromHex('B1B2B3B4B5B6B7B8B9BABBBCBDBEBFB0');
const WRITE_KEY = fromHex('C1C2C3C4C5C6C7C8C9CACBCCCDCECFC0');
const READ_KEY_V2 = fromHex('D1D2D3D4D5D6D7D8D9DADBDCDDDEDFD0');
const ZERO16 = new Uint8Array(16);
const AID = 0xf0a1b2;
const RIGHTS: AccessRights = { read: 1, write: 2, readWrite: 2, change: 0 };

const client = clientFor;
const status = cardStatus;

describe('design flows through the DesfireClient', () => {
  it('issue, install, use, rotate with a tear, persist', async () => {
    const card = VirtualCard.create({ uid: UID, profile: 'ev3' });
    let c = client(card);

    // --- issue: legacy DES auth with the factory key, AES CMK, locked settings, random UID
    expect((await c.getKeySettings()).settings).toBe(0x0f);
    await c.authenticate(0, new Uint8Array(8), { method: 'd40' });
    await c.changeKey(0, CMK, { keyType: 'aes', keyVersion: 1 });
    await c.authenticate(0, CMK, { method: 'ev2' });
    await c.changeKeySettings(0x09); // changeable, configuration changeable; no free listing/create
    await c.authenticate(0, CMK, { method: 'ev2' });
    await c.setConfiguration({ option: 'picc', disableFormat: false, randomUid: true });
    expect((await c.getVersion()).uid).toEqual(new Uint8Array(7));
    expect(await c.getCardUid()).toEqual(UID);
    expect(verifyOriginality(UID, await c.readSig())).toBe(true);

    // --- install an application
    await c.createApplication({
      aid: AID,
      settings: { masterKeyChangeable: true, freeDirectoryList: false, freeCreateDelete: false, configurationChangeable: true, changeKeyAccess: 0 },
      keyCount: 3,
      keyType: 'aes',
      isoFileIds: false,
    });
    await c.selectApplication(AID);
    await c.authenticate(0, ZERO16, { method: 'ev2' });
    await c.changeKey(0, AMK, { keyType: 'aes', keyVersion: 1 });
    await c.authenticate(0, AMK, { method: 'ev2' });
    await c.changeKey(1, READ_KEY, { keyType: 'aes', keyVersion: 1, oldKey: ZERO16, oldKeyType: 'aes' });
    await c.changeKey(2, WRITE_KEY, { keyType: 'aes', keyVersion: 1, oldKey: ZERO16, oldKeyType: 'aes' });
    await c.createStdDataFile({ fileNo: 1, comm: 'full', access: RIGHTS, fileSize: 32 });
    await c.createBackupDataFile({ fileNo: 2, comm: 'mac', access: RIGHTS, fileSize: 16 });
    await c.createValueFile({ fileNo: 3, comm: 'full', access: RIGHTS, lowerLimit: 0, upperLimit: 10000, value: 0, limitedCreditEnabled: false, freeGetValue: false });
    await c.createCyclicRecordFile({ fileNo: 4, comm: 'plain', access: RIGHTS, recordSize: 8, maxRecords: 5 });
    await c.commitTransaction();
    expect(await c.getFileIds()).toEqual([1, 2, 3, 4]);

    // --- runtime: the writer role
    await c.selectApplication(AID);
    expect(await status(c.readData(1, 0, 4))).toBe(0xae);
    await c.authenticate(2, WRITE_KEY, { method: 'ev2' });
    await c.writeData(1, 0, fromHex('00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF'), { comm: 'full' });
    await c.writeData(2, 0, fromHex('CAFEBABE'), { comm: 'mac' });
    await c.credit(3, 500, { comm: 'full' });
    await c.writeRecord(4, 0, fromHex('0102030405060708'), { comm: 'plain' });
    await c.commitTransaction();
    await c.debit(3, 120, { comm: 'full' });
    await c.commitTransaction();
    // --- the reader role sees it all, and may not write
    await c.authenticate(1, READ_KEY, { method: 'ev2' });
    expect(await c.readData(1, 0, 32, { comm: 'full' })).toEqual(fromHex('00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF'));
    expect(await c.readData(2, 0, 4, { comm: 'mac' })).toEqual(fromHex('CAFEBABE'));
    expect(await c.getValue(3, { comm: 'full' })).toBe(380);
    expect(await c.readRecords(4, 0, 1, { comm: 'plain' })).toEqual(fromHex('0102030405060708'));
    expect(await status(c.writeData(1, 0, fromHex('00'), { comm: 'full' }))).toBe(0x9d);

    // --- rotation of key 1 with a tear after the ChangeKey, before the verify
    await c.selectApplication(AID);
    await c.authenticate(0, AMK, { method: 'aes' });
    await c.changeKey(1, READ_KEY_V2, { keyType: 'aes', keyVersion: 2, oldKey: READ_KEY, oldKeyType: 'aes' });
    card.tear();
    c = client(card);
    await c.selectApplication(AID);
    // reconcile: the version tells which key is on the card
    expect(await c.getKeyVersion(1)).toBe(2);
    expect(await status(c.authenticate(1, READ_KEY, { method: 'ev2' }))).not.toBe(0);
    await c.selectApplication(AID);
    await c.authenticate(1, READ_KEY_V2, { method: 'ev2' });
    expect(await c.getValue(3, { comm: 'full' })).toBe(380);

    // --- persistence: a new card object from the image behaves the same
    const again = client(VirtualCard.fromImage(card.toImage()));
    await again.selectApplication(AID);
    await again.authenticate(1, READ_KEY_V2, { method: 'aes' });
    expect(await again.readData(2, 0, 4, { comm: 'mac' })).toEqual(fromHex('CAFEBABE'));
    await again.selectApplication(0);
    expect(await status(again.getApplicationIds())).toBe(0xae);
    await again.authenticate(0, CMK, { method: 'ev2' });
    expect(await again.getApplicationIds()).toEqual([AID]);
  });
});

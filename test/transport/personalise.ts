// A small personalisation used by the transport tests: from a factory card, an AES application
// with a full-mode file readable with key 1. Runs over any Transport with the host library.
import { DesfireClient } from '../../src/core/client/index.js';
import type { Transport } from '../../src/core/transport.js';

export const AID = 0x0ca4d1;
export const KEY1 = Uint8Array.from(Buffer.from('00112233445566778899aabbccddeeff', 'hex'));
export const ZERO_AES = new Uint8Array(16);
export const FILE_DATA = Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 1) & 0xff);

const settings = { masterKeyChangeable: true, freeDirectoryList: true, freeCreateDelete: false, configurationChangeable: true, changeKeyAccess: 0 };

export async function personalise(t: Transport): Promise<void> {
  const c = new DesfireClient(t);
  await c.authenticate(0, new Uint8Array(8), { method: 'd40' });
  await c.createApplication({ aid: AID, settings, keyCount: 2, keyType: 'aes', isoFileIds: false });
  await c.selectApplication(AID);
  await c.authenticate(0, ZERO_AES, { method: 'ev2' });
  await c.changeKey(1, KEY1, { keyType: 'aes', keyVersion: 1, oldKey: ZERO_AES, oldKeyType: 'aes' });
  await c.createStdDataFile({ fileNo: 1, comm: 'full', access: { read: 1, write: 1, readWrite: 1, change: 0 }, fileSize: 32 });
  await c.authenticate(1, KEY1, { method: 'ev2' });
  await c.writeData(1, 0, FILE_DATA, { comm: 'full' });
}

/** Authenticate with key 1 (EV2) and read the file in full mode. */
export async function readBack(c: DesfireClient): Promise<Uint8Array> {
  await c.selectApplication(AID);
  await c.authenticate(1, KEY1, { method: 'ev2' });
  return c.readData(1, 0, 32, { comm: 'full' });
}

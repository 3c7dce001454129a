// Transaction MAC (EV2+) on the virtual card, driven through the DesfireClient: file creation and
// settings, TMC/TMV at CommitTransaction checked against a TMI built by hand from the data sheet's
// rules, CommitReaderID with EncTMRI, persistence in the image, and the refusals (EV1, a second TMAC
// file, bad lengths and parameters, a commit without the required reader ID) — which change nothing.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CardImageError, VirtualCard } from '../../src/card/index.js';
import { tmacSessionKeys } from '../../src/core/auth/index.js';
import { concat, fromHex, toHex } from '../../src/core/crypto/bytes.js';
import { cmac, ecbDecrypt } from '../../src/core/crypto/index.js';
import type { DesfireClient } from '../../src/core/client/index.js';
import { Cmd, type AccessRights } from '../../src/core/protocol/index.js';
import { truncateOdd } from '../../src/core/sm/index.js';
import { Host, aidBytes, cardStatus, clientFor, hdr } from './host.js';

const UID = fromHex('04A1B2C3D4E5F6');
const AMK = fromHex('A1A2A3A4A5A6A7A8A9AAABACADAEAFA0');
const K1 = fromHex('B1B2B3B4B5B6B7B8B9BABBBCBDBEBFB0');
const TMK = fromHex('66A8CB93269DC9BC2885B7A91B9C697B');
const ZERO16 = new Uint8Array(16);
const AID = 0x5a0001;
const RIGHTS: AccessRights = { read: 1, write: 1, readWrite: 1, change: 0 };
const TMAC_NO = 0x0f;

const client = clientFor;
const status = cardStatus;

/** TMV computed here from the data sheet's formula, independently of src/core/sm/tmac.ts. */
function expectedTmv(tmc: number, tmi: Uint8Array): Uint8Array {
  return truncateOdd(cmac('aes', tmacSessionKeys(TMK, UID, tmc).mac, tmi));
}

function pad16(b: number[]): number[] {
  const out = [...b];
  while (out.length % 16 !== 0) out.push(0);
  return out;
}

/** An EV2 card with one AES application: value file 1 (full), cyclic record file 2, std file 3, and a TMAC file unless `tmac` is false. */
async function setup(opts: { profile?: 'ev1' | 'ev2' | 'ev3'; tmacRw?: number; tmac?: boolean } = {}): Promise<{ card: VirtualCard; c: DesfireClient }> {
  const card = VirtualCard.create({ uid: UID, profile: opts.profile ?? 'ev2', strict: true });
  const c = client(card);
  await c.createApplication({
    aid: AID,
    settings: { masterKeyChangeable: true, freeDirectoryList: true, freeCreateDelete: false, configurationChangeable: true, changeKeyAccess: 0 },
    keyCount: 2, keyType: 'aes', isoFileIds: false,
  });
  await c.selectApplication(AID);
  const method = opts.profile === 'ev1' ? 'aes' : 'ev2';
  await c.authenticate(0, ZERO16, { method });
  await c.changeKey(0, AMK, { keyType: 'aes', keyVersion: 1 });
  await c.authenticate(0, AMK, { method });
  await c.changeKey(1, K1, { keyType: 'aes', keyVersion: 1, oldKey: ZERO16, oldKeyType: 'aes' });
  await c.createValueFile({ fileNo: 1, comm: 'full', access: RIGHTS, lowerLimit: 0, upperLimit: 10000, value: 1000, limitedCreditEnabled: false, freeGetValue: false });
  await c.createCyclicRecordFile({ fileNo: 2, comm: 'mac', access: RIGHTS, recordSize: 16, maxRecords: 4 });
  await c.createStdDataFile({ fileNo: 3, comm: 'plain', access: RIGHTS, fileSize: 20 });
  if (opts.tmac !== false) {
    await c.createTransactionMacFile({ fileNo: TMAC_NO, comm: 'plain', access: { read: 0xe, write: 0xf, readWrite: opts.tmacRw ?? 0xf, change: 0 }, key: TMK, keyVersion: 7 });
  }
  await c.selectApplication(AID);
  await c.authenticate(1, K1, { method });
  return { card, c };
}

describe('Transaction MAC file', () => {
  it('is created once per application, with its settings, and reads as TMC || TMV = 0', async () => {
    const { c } = await setup();
    expect(await c.getFileIds()).toEqual([1, 2, 3, TMAC_NO]);
    const fs = await c.getFileSettings(TMAC_NO);
    expect(fs).toEqual({ type: 'transaction-mac', comm: 'plain', access: { read: 0xe, write: 0xf, readWrite: 0xf, change: 0 }, keyVersion: 7 });
    expect(await c.readTransactionMac(TMAC_NO)).toEqual({ tmc: 0, tmv: new Uint8Array(8) });
    // a second one, under another file number: DE
    await c.selectApplication(AID);
    await c.authenticate(0, AMK, { method: 'ev2' });
    expect(await status(c.createTransactionMacFile({ fileNo: 9, comm: 'plain', access: { read: 0xe, write: 0xf, readWrite: 0xf, change: 0 }, key: TMK, keyVersion: 0 }))).toBe(0xde);
    await c.authenticate(0, AMK, { method: 'ev2' });
    expect(await c.getFileIds()).toEqual([1, 2, 3, TMAC_NO]);
    // the card writes it, nobody else
    await c.selectApplication(AID);
    await c.authenticate(1, K1, { method: 'ev2' });
    expect(await status(c.writeData(TMAC_NO, 0, Uint8Array.of(1)))).toBe(0x9d);
  });

  it('TMC counts committed transactions with a non-empty TMI; TMV is MACt(SesTMMACKey, TMI)', async () => {
    const { c } = await setup();
    // debit 250 + a record: TMI = DC 01 FA000000 pad | 3B 02 000000 100000 pad | record
    const rec = fromHex('00112233445566778899AABBCCDDEEFF');
    await c.debit(1, 250);
    await c.writeRecord(2, 0, rec);
    const r1 = await c.commitTransactionWithMac();
    const tmi1 = Uint8Array.from([...pad16([0xdc, 0x01, 0xfa, 0, 0, 0]), ...pad16([0x3b, 0x02, 0, 0, 0, 16, 0, 0]), ...rec]);
    expect(r1.tmc).toBe(1);
    expect(toHex(r1.tmv)).toBe(toHex(expectedTmv(0, tmi1)));
    expect(await c.readTransactionMac(TMAC_NO)).toEqual(r1);

    // a read-only transaction counts too (GetValue and ReadData are in the TMI); length 0 = actual length
    expect(await c.getValue(1)).toBe(750);
    expect((await c.readData(3, 2, 0)).length).toBe(18);
    const r2 = await c.commitTransactionWithMac();
    const tmi2 = Uint8Array.from([...pad16([0x6c, 0x01, 0xee, 0x02, 0, 0]), ...pad16([0xbd, 0x03, 2, 0, 0, 18, 0, 0]), ...pad16(Array(18).fill(0))]);
    expect(r2.tmc).toBe(2);
    expect(toHex(r2.tmv)).toBe(toHex(expectedTmv(1, tmi2)));

    // nothing done: TMC stays; aborted reads are not MAC'd; reading the TMAC file is not in the TMI
    expect(await c.commitTransactionWithMac()).toEqual(r2);
    await c.getValue(1);
    await c.abortTransaction();
    await c.readTransactionMac(TMAC_NO);
    await c.commitTransaction();
    expect(await c.readTransactionMac(TMAC_NO)).toEqual(r2);
  });

  it('is persisted in the card image; an image with two TMAC files is refused', async () => {
    const { card, c } = await setup();
    await c.debit(1, 1);
    const r = await c.commitTransactionWithMac();
    const img = card.toImage();
    const again = client(VirtualCard.fromImage(img));
    await again.selectApplication(AID);
    expect(await again.readTransactionMac(TMAC_NO)).toEqual(r);
    const bad = structuredClone(img);
    const app = bad.apps[0]!;
    app.files.push({ ...app.files.find((f) => f.type === 'tmac')!, fileNo: 20 });
    expect(() => VirtualCard.fromImage(bad)).toThrow(CardImageError);
  });

  it('CommitReaderID: required when RW names a key, once per transaction, EncTMRI carries the previous reader ID', async () => {
    const { c } = await setup({ tmacRw: 1 });
    const RID1 = fromHex('52454144455231000000000000000001');
    const RID2 = fromHex('52454144455232000000000000000002');
    await c.debit(1, 10);
    expect(await status(c.commitTransaction())).toBe(0x9d); // no reader ID committed
    await c.selectApplication(AID);
    await c.authenticate(1, K1, { method: 'ev2' });
    expect(await c.getValue(1)).toBe(1000); // the refused commit changed nothing

    await c.debit(1, 10);
    const enc1 = (await c.commitReaderId(RID1))!;
    // first transaction: TMRIPrev is all zero
    expect(ecbDecrypt('aes', tmacSessionKeys(TMK, UID, 0).enc, enc1)).toEqual(new Uint8Array(16));
    expect(await status(c.commitReaderId(RID2))).toBe(0x9d); // once per transaction
    await c.selectApplication(AID);
    await c.authenticate(1, K1, { method: 'ev2' });
    await c.debit(1, 10);
    const enc1b = (await c.commitReaderId(RID1))!;
    const r1 = await c.commitTransactionWithMac();
    const tmi = Uint8Array.from([...pad16([0xdc, 0x01, 10, 0, 0, 0]), ...pad16([0xc8, ...RID1, ...enc1b])]);
    expect(r1.tmc).toBe(1);
    expect(toHex(r1.tmv)).toBe(toHex(expectedTmv(0, tmi)));

    await c.getValue(1);
    const enc2 = (await c.commitReaderId(RID2))!;
    expect(ecbDecrypt('aes', tmacSessionKeys(TMK, UID, 1).enc, enc2)).toEqual(RID1);
    expect((await c.commitTransactionWithMac()).tmc).toBe(2);
  });

  it('CommitReaderID rights: F disabled (9D), a key needs that key (AE/9D), E free without authentication', async () => {
    const off = await setup({ tmacRw: 0xf });
    expect(await status(off.c.commitReaderId(ZERO16))).toBe(0x9d);
    const keyed = await setup({ tmacRw: 0 });
    expect(await status(keyed.c.commitReaderId(ZERO16))).toBe(0x9d); // authenticated with key 1
    await keyed.c.selectApplication(AID);
    expect(await status(keyed.c.commitReaderId(ZERO16))).toBe(0xae);
    const free = await setup({ tmacRw: 0xe });
    await free.c.selectApplication(AID);
    expect(await free.c.commitReaderId(fromHex('000102030405060708090A0B0C0D0E0F'))).toBeUndefined();
    const r = await free.c.commitTransactionWithMac();
    // not authenticated: no EncTMRI, the TMI gets Cmd || TMRI only
    const tmi = Uint8Array.from(pad16([0xc8, ...fromHex('000102030405060708090A0B0C0D0E0F')]));
    expect(r.tmc).toBe(1);
    expect(toHex(r.tmv)).toBe(toHex(expectedTmv(0, tmi)));
  });

  it('refusals: EV1 (1C), no TMAC file (9E / 9D), bad lengths (7E) and parameters (9E) change nothing', async () => {
    const ev1 = await setup({ profile: 'ev1', tmac: false });
    await ev1.c.selectApplication(AID);
    await ev1.c.authenticate(0, AMK, { method: 'aes' });
    expect(await status(ev1.c.createTransactionMacFile({ fileNo: 9, comm: 'plain', access: { read: 0xe, write: 0xf, readWrite: 0xf, change: 0 }, key: TMK, keyVersion: 0 }))).toBe(0x1c);
    await ev1.c.selectApplication(AID);
    expect(await status(ev1.c.commitReaderId(ZERO16))).toBe(0x1c);

    const none = await setup({ tmac: false });
    expect(await status(none.c.commitTransactionWithMac())).toBe(0x9e);
    await none.c.selectApplication(AID);
    expect(await status(none.c.commitReaderId(ZERO16))).toBe(0x9d);

    // raw commands (the client would refuse them): free create/delete app, no session
    const h = Host.fresh({ uid: UID, profile: 'ev2' });
    await h.cmd(Cmd.CREATE_APPLICATION, new Uint8Array([...aidBytes(AID), 0x0f, 0x82]));
    await h.cmd(Cmd.SELECT_APPLICATION, aidBytes(AID));
    const before = JSON.stringify(h.card.toImage());
    const key = concat(TMK, Uint8Array.of(1));
    await h.fails(0x7e, h.cmd(Cmd.CREATE_TRANSACTION_MAC_FILE, Uint8Array.of(1, 0, 0x0e, 0xef)));
    await h.fails(0x7e, h.cmd(Cmd.CREATE_TRANSACTION_MAC_FILE, Uint8Array.of(1, 0, 0xf0, 0xef, 2), TMK));
    await h.fails(0x9e, h.cmd(Cmd.CREATE_TRANSACTION_MAC_FILE, Uint8Array.of(1, 0, 0xf0, 0xef, 0), key)); // TMKeyOption 00
    await h.fails(0x9e, h.cmd(Cmd.CREATE_TRANSACTION_MAC_FILE, Uint8Array.of(1, 0, 0xf0, 0xe0, 2), key)); // W = 0
    await h.fails(0x9e, h.cmd(Cmd.CREATE_TRANSACTION_MAC_FILE, Uint8Array.of(0x20, 0, 0xf0, 0xef, 2), key)); // file 32
    await h.fails(0x9e, h.cmd(Cmd.CREATE_TRANSACTION_MAC_FILE, Uint8Array.of(1, 2, 0xf0, 0xef, 2), key)); // comm 02
    expect(JSON.stringify(h.card.toImage())).toBe(before);
    await h.cmd(Cmd.CREATE_TRANSACTION_MAC_FILE, Uint8Array.of(1, 0, 0xe0, 0xef, 2), key);
    await h.fails(0x7e, h.cmd(Cmd.COMMIT_READER_ID, new Uint8Array(15)));
    await h.fails(0x7e, h.cmd(Cmd.COMMIT_READER_ID, new Uint8Array(17)));
    await h.fails(0x9e, h.cmd(Cmd.COMMIT_TRANSACTION, Uint8Array.of(0x02)));
    await h.fails(0x7e, h.cmd(Cmd.COMMIT_TRANSACTION, Uint8Array.of(0x01, 0x00)));
    await h.fails(0xbe, h.cmd(Cmd.READ_DATA, hdr(1, 12, 1)));
    expect(await h.cmd(Cmd.READ_DATA, hdr(1, 4, 0))).toEqual(new Uint8Array(8));
  });

  it('fuzz: random CreateTransactionMACFile / CommitReaderID / CommitTransaction bodies never fault the card', async () => {
    const { card } = await setup({ tmacRw: 0xe });
    await fc.assert(fc.property(
      fc.constantFrom(Cmd.CREATE_TRANSACTION_MAC_FILE, Cmd.COMMIT_READER_ID, Cmd.COMMIT_TRANSACTION, Cmd.READ_DATA),
      fc.uint8Array({ maxLength: 40 }),
      (ins, body) => {
        const apdu = body.length ? Uint8Array.of(0x90, ins, 0, 0, body.length, ...body, 0) : Uint8Array.of(0x90, ins, 0, 0, 0);
        const out = card.process(apdu);
        expect(out.length).toBeGreaterThanOrEqual(2);
        card.toImage();
      },
    ), { numRuns: 3000 });
    expect(card.internalErrors).toBe(0);
  });
});

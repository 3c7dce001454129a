// PICC level: factory state, GetVersion profiles, authentication generations on the PICC master
// key, PICC key type change, key settings, FormatPICC, SetConfiguration (random UID), GetCardUID,
// GetFreeMemory, Read_Sig.
import { describe, expect, it } from 'vitest';
import { decodeVersion, generationOf } from '../../src/core/protocol/codecs/version.js';
import { VirtualCard, originalityPublicKey, verifyOriginality, TOTAL_USER_MEMORY } from '../../src/card/index.js';
import { Host, ZERO16, ZERO8, createApp, hex } from './host.js';

const AES1 = hex('00112233445566778899aabbccddeeff');

describe('factory state', () => {
  it('is a new card: DES zero PICC key, settings 0F, no applications, all memory free', async () => {
    const h = Host.fresh();
    expect([...(await h.cmd(0x45))]).toEqual([0x0f, 0x01]);
    expect([...(await h.cmd(0x6a))]).toEqual([]);
    const free = await h.cmd(0x6e);
    expect(free[0]! | (free[1]! << 8) | (free[2]! << 16)).toBe(TOTAL_USER_MEMORY);
    expect([...(await h.cmd(0x64, Uint8Array.of(0)))]).toEqual([0]);
    await h.auth('d40', 0, ZERO8, 'des');
    await h.auth('iso', 0, ZERO8, 'des');
    const img = h.card.toImage();
    expect(img.picc.keyType).toBe('des');
    expect(img.picc.keySettings).toBe(0x0f);
    expect(img.apps).toEqual([]);
  });

  it.each([
    ['ev1', 'ev1', 0x01],
    ['ev2', 'ev2', 0x12],
    ['ev3', 'ev3', 0x33],
  ] as const)('GetVersion for %s: three frames 7+7+14, generation %s', async (profile, gen, major) => {
    const card = VirtualCard.create({ profile, uid: hex('04112233445566'), strict: true });
    const r1 = card.process(hex('9060000000'));
    expect(r1.length).toBe(9);
    expect([...r1.slice(7)]).toEqual([0x91, 0xaf]);
    const r2 = card.process(hex('90af000000'));
    expect([...r2.slice(7)]).toEqual([0x91, 0xaf]);
    const r3 = card.process(hex('90af000000'));
    expect(r3.length).toBe(16);
    expect([...r3.slice(14)]).toEqual([0x91, 0x00]);
    const v = decodeVersion(Uint8Array.from([...r1.slice(0, 7), ...r2.slice(0, 7), ...r3.slice(0, 14)]));
    expect(v.hardware.majorVersion).toBe(major);
    expect(generationOf(v)).toBe(gen);
    expect(Buffer.from(v.uid).toString('hex')).toBe('04112233445566');
  });

  it('GetVersion under EV1 AES and EV2 sessions carries the response MAC on the last frame', async () => {
    for (const m of ['aes', 'ev2first'] as const) {
      const h = Host.fresh();
      await h.auth('d40', 0, ZERO8, 'des');
      await h.changeKey({ keyNo: 0, newKey: ZERO16, newKeyType: 'aes', picc: true });
      await h.auth(m, 0, ZERO16, 'aes');
      const v = decodeVersion(await h.cmd(0x60));
      expect(v.hardware.majorVersion).toBe(0x12);
      // the session is still good afterwards
      expect((await h.cmd(0x6e)).length).toBe(3);
    }
  });
});

describe('PICC master key', () => {
  it('changes type DES -> AES -> 3K3DES -> DES with ChangeKey flags, with key versions', async () => {
    const h = Host.fresh();
    await h.auth('d40', 0, ZERO8, 'des');
    await h.changeKey({ keyNo: 0, newKey: AES1, newKeyType: 'aes', newKeyVersion: 7, picc: true });
    expect(h.session).toBeUndefined();
    expect(h.card.toImage().picc.keyType).toBe('aes');
    expect([...(await h.cmd(0x45))]).toEqual([0x0f, 0x81]);
    expect([...(await h.cmd(0x64, Uint8Array.of(0)))]).toEqual([7]);
    await h.fails(0xae, h.auth('iso', 0, ZERO8, 'des'));
    await h.auth('aes', 0, AES1, 'aes');
    const k3 = hex('0123456789abcdef0123456789abcdef0123456789abcdef').map((b) => b & 0xfe);
    await h.changeKey({ keyNo: 0, newKey: k3, newKeyType: '3k3des', newKeyVersion: 0, picc: true });
    expect([...(await h.cmd(0x45))]).toEqual([0x0f, 0x41]);
    await h.auth('iso', 0, k3, '3k3des');
    await h.changeKey({ keyNo: 0, newKey: ZERO8, newKeyType: 'des', picc: true });
    await h.auth('d40', 0, ZERO8, 'des');
    expect(h.card.toImage().picc.keyType).toBe('des');
  });

  it('EV2First/NonFirst on an AES PICC key; EV2 commands are refused on an EV1 card', async () => {
    const h = Host.fresh();
    await h.auth('iso', 0, ZERO8, 'des');
    await h.changeKey({ keyNo: 0, newKey: AES1, newKeyType: 'aes', picc: true });
    await h.auth('ev2first', 0, AES1, 'aes');
    await h.cmd(0x6e);
    await h.auth('ev2nonfirst', 0, AES1, 'aes');
    await h.cmd(0x6e);
    const ev1 = Host.fresh({ profile: 'ev1' });
    expect([...ev1.card.process(hex('9071000002000000'))]).toEqual([0x91, 0x1c]);
    expect([...ev1.card.process(hex('903c00000100 00'))]).toEqual([0x91, 0x1c]);
  });

  it('LRP (PCDcap2 02) is refused before EV3 with 0x9E', async () => {
    const h = Host.fresh({ profile: 'ev2' });
    await h.auth('d40', 0, ZERO8, 'des');
    await h.changeKey({ keyNo: 0, newKey: ZERO16, newKeyType: 'aes', picc: true });
    expect([...h.card.process(hex('9071000008 00 06 020000000000 00'))]).toEqual([0x91, 0x9e]);
    expect([...h.card.process(hex('9071000008 00 06 000000000000 00')).slice(-2)]).toEqual([0x91, 0xaf]);
  });

  it('LRP on the ev3 profile: AuthenticateLRPFirst, full-mode files, ChangeKey', async () => {
    const h = Host.fresh({ profile: 'ev3' });
    await createApp(h, 0x00e3, 0x0f, 0x82);
    await h.select(0x00e3);
    await h.cmd(0xcd, Uint8Array.of(1, 0x03, 0x10, 0x11, 80, 0, 0));
    const lrp = Uint8Array.of(0x02, 0, 0, 0, 0, 0);
    await h.auth('ev2first', 0, ZERO16, 'aes', lrp);
    await h.changeKey({ keyNo: 1, newKey: AES1, newKeyType: 'aes', newKeyVersion: 4, oldKey: ZERO16, oldKeyType: 'aes' });
    await h.auth('ev2first', 1, AES1, 'aes', lrp);
    const d = Uint8Array.from({ length: 80 }, (_, i) => i ^ 0x5a);
    await h.cmd(0x3d, Uint8Array.of(1, 0, 0, 0, 80, 0, 0), d, 'full');
    expect([...(await h.cmd(0xbd, Uint8Array.of(1, 0, 0, 0, 80, 0, 0), undefined, 'full', 'full', 80))]).toEqual([...d]);
    expect([...(await h.cmd(0x64, Uint8Array.of(1)))]).toEqual([4]);
  });

  it('wrong key: 0xAE, and the card forgets any previous authentication', async () => {
    const h = Host.fresh();
    await h.fails(0xae, h.auth('d40', 0, hex('0202020202020202'), 'des'));
    await h.fails(0x40, h.auth('d40', 1, ZERO8, 'des'));
    // AES method on a DES key
    await h.fails(0xae, h.auth('aes', 0, ZERO16, 'aes'));
  });

  it('ChangeKeySettings: needs the master key, full mode; bit 3 cleared freezes the settings', async () => {
    const h = Host.fresh();
    await h.fails(0xae, h.cmd(0x54, new Uint8Array(0), Uint8Array.of(0x09)));
    await h.auth('iso', 0, ZERO8, 'des');
    await h.cmd(0x54, new Uint8Array(0), Uint8Array.of(0x09), 'full', 'mac', 0);
    expect(h.card.toImage().picc.keySettings).toBe(0x09);
    // listing is no longer free
    await h.select(0);
    await h.fails(0xae, h.cmd(0x6a));
    await h.fails(0xae, h.cmd(0x45));
    // create/delete no longer free
    await h.fails(0xae, createApp(h, 0x010203, 0x0f, 0x01));
    await h.auth('iso', 0, ZERO8, 'des');
    await h.cmd(0x54, new Uint8Array(0), Uint8Array.of(0x01), 'full', 'mac', 0);
    await h.auth('iso', 0, ZERO8, 'des');
    await h.fails(0x9d, h.cmd(0x54, new Uint8Array(0), Uint8Array.of(0x0f), 'full', 'mac', 0));
    // master key not changeable once bit 0 is cleared
    await h.auth('iso', 0, ZERO8, 'des');
    // settings 01: bit 0 set, so the key is still changeable
    await h.changeKey({ keyNo: 0, newKey: ZERO8, newKeyType: 'des', picc: true });
  });

  it('master key not changeable (bit 0 clear): ChangeKey 0x9D, state unchanged', async () => {
    const h = Host.fresh();
    await h.auth('iso', 0, ZERO8, 'des');
    await h.cmd(0x54, new Uint8Array(0), Uint8Array.of(0x0e), 'full', 'mac', 0);
    await h.auth('iso', 0, ZERO8, 'des');
    const before = JSON.stringify(h.card.toImage());
    await h.fails(0x9d, h.changeKey({ keyNo: 0, newKey: AES1, newKeyType: 'aes', picc: true }));
    expect(JSON.stringify(h.card.toImage())).toBe(before);
  });
});

describe('FormatPICC, GetFreeMemory, configuration, UID, signature', () => {
  it('FormatPICC needs the PICC master key and removes every application, keeping the PICC key', async () => {
    const h = Host.fresh();
    await createApp(h, 0x000001, 0x0f, 0x81);
    await createApp(h, 0x000002, 0x0f, 0x01);
    const free = (b: Uint8Array) => b[0]! | (b[1]! << 8) | (b[2]! << 16);
    expect(free(await h.cmd(0x6e))).toBeLessThan(TOTAL_USER_MEMORY);
    await h.fails(0xae, h.cmd(0xfc));
    await h.auth('d40', 0, ZERO8, 'des');
    await h.cmd(0xfc);
    expect(h.card.toImage().apps).toEqual([]);
    expect(free(await h.cmd(0x6e))).toBe(TOTAL_USER_MEMORY);
  });

  it('SetConfiguration: random UID hides the UID from GetVersion and anti-collision; GetCardUID (full) shows it', async () => {
    const uid = hex('04a1a2a3a4a5a6');
    const h = Host.fresh({ uid });
    await h.fails(0xae, h.cmd(0x51));
    await h.auth('iso', 0, ZERO8, 'des');
    expect([...(await h.cmd(0x51, undefined, undefined, h.macComm, 'full', 7))]).toEqual([...uid]);
    await h.cmd(0x5c, Uint8Array.of(0x00), Uint8Array.of(0x02), 'full', 'mac', 1);
    expect(h.card.toImage().picc.randomUid).toBe(true);
    const v = decodeVersion(await h.cmd(0x60));
    expect([...v.uid]).toEqual([0, 0, 0, 0, 0, 0, 0]);
    const rf = h.card.rfUid;
    expect(rf.length).toBe(4);
    expect(rf[0]).toBe(0x08);
    expect(h.card.uid).toEqual(uid);
    // one-way
    await h.fails(0x9d, h.cmd(0x5c, Uint8Array.of(0x00), Uint8Array.of(0x00), 'full', 'mac', 1));
    await h.auth('aes', 0, ZERO16, 'aes').catch(() => undefined);
    await h.auth('iso', 0, ZERO8, 'des');
    expect([...(await h.cmd(0x51, undefined, undefined, h.macComm, 'full', 7))]).toEqual([...uid]);
    // bad option
    await h.fails(0x9e, h.cmd(0x5c, Uint8Array.of(0x07), Uint8Array.of(0x00), 'full', 'mac'));
  });

  it('SetConfiguration default key: new applications get it', async () => {
    const h = Host.fresh();
    await h.auth('iso', 0, ZERO8, 'des');
    const dk = Uint8Array.from({ length: 24 }, (_, i) => (i * 16 + 2) & 0xff);
    await h.cmd(0x5c, Uint8Array.of(0x01), Uint8Array.from([...dk, 0x05]), 'full', 'mac', 25);
    await h.auth('iso', 0, ZERO8, 'des');
    await createApp(h, 0x00aa01, 0x0f, 0x82);
    await h.select(0x00aa01);
    expect([...(await h.cmd(0x64, Uint8Array.of(1)))]).toEqual([5]);
    await h.auth('aes', 1, dk.slice(0, 16), 'aes');
  });

  it('Read_Sig: 56-byte ECDSA secp224r1 signature over the UID, verifiable with the documented key; full mode when authenticated', async () => {
    const uid = hex('04010203040506');
    const h = Host.fresh({ uid });
    const sig = await h.cmd(0x3c, Uint8Array.of(0x00));
    expect(sig.length).toBe(56);
    expect(verifyOriginality(uid, sig)).toBe(true);
    expect(verifyOriginality(hex('04010203040507'), sig)).toBe(false);
    expect(Buffer.from(originalityPublicKey()).toString('hex')).toBe(
      '04bced97d3c9b5018c50ef1fe7e38f3cd150fcee28ffe2b06dc485948e81fe6885a63f74ba00f3d5be5f7d55d59b453e59f7555f4f0b99f7b7',
    );
    await h.auth('d40', 0, ZERO8, 'des');
    await h.changeKey({ keyNo: 0, newKey: ZERO16, newKeyType: 'aes', picc: true });
    await h.auth('ev2first', 0, ZERO16, 'aes');
    const sig2 = await h.cmd(0x3c, Uint8Array.of(0x00), undefined, 'mac', 'full', 56);
    expect([...sig2]).toEqual([...sig]);
    await h.fails(0x9e, h.cmd(0x3c, Uint8Array.of(0x01)));
  });
});

// Applications (create/select/delete/list, limits, memory) and application keys (ChangeKey access
// nibble 0..D / E / F, key versions, key types fixed at creation, authentication per key type).
import { describe, expect, it } from 'vitest';
import { TOTAL_USER_MEMORY } from '../../src/card/index.js';
import { Host, ZERO16, ZERO24, ZERO8, aidBytes, createApp, hex } from './host.js';

const K1 = hex('101112131415161718191a1b1c1d1e1f');
const K2 = hex('202122232425262728292a2b2c2d2e2f');

function aids(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < b.length; i += 3) out.push(b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16));
  return out;
}

describe('applications', () => {
  it('create, list, select, delete; duplicate 0xDE; unknown 0xA0; AID 000000 0x9E/0x7E', async () => {
    const h = Host.fresh();
    await createApp(h, 0x123456, 0x0f, 0x83);
    await h.fails(0xde, createApp(h, 0x123456, 0x0f, 0x83));
    await h.fails(0x9e, createApp(h, 0x000000, 0x0f, 0x83));
    await h.fails(0x9e, createApp(h, 0x000001, 0x0f, 0x80)); // 0 keys
    await h.fails(0x9e, createApp(h, 0x000001, 0x0f, 0x8f)); // 15 keys
    await h.fails(0x9e, createApp(h, 0x000001, 0x0f, 0xc1)); // bad key type bits
    await h.fails(0x7e, h.cmd(0xca, Uint8Array.of(1, 0, 0, 0x0f)));
    expect(aids(await h.cmd(0x6a))).toEqual([0x123456]);
    await h.fails(0xa0, h.select(0x654321));
    await h.select(0x123456);
    expect([...(await h.cmd(0x45))]).toEqual([0x0f, 0x83]);
    await h.select(0);
    await h.cmd(0xda, aidBytes(0x123456));
    await h.fails(0xa0, h.cmd(0xda, aidBytes(0x123456)));
    expect(aids(await h.cmd(0x6a))).toEqual([]);
  });

  it('28 applications at most (0xCE); long AID lists come in 19-AID frames', async () => {
    const h = Host.fresh();
    for (let i = 1; i <= 28; i++) await createApp(h, i, 0x0f, 0x01);
    await h.fails(0xce, createApp(h, 29, 0x0f, 0x01));
    const first = h.card.process(Uint8Array.of(0x90, 0x6a, 0, 0, 0));
    expect(first.length).toBe(57 + 2);
    expect(first[58]).toBe(0xaf);
    const second = h.card.process(Uint8Array.of(0x90, 0xaf, 0, 0, 0));
    expect(second.length).toBe(27 + 2);
    expect(aids(await h.cmd(0x6a))).toEqual(Array.from({ length: 28 }, (_, i) => i + 1));
  });

  it('EEPROM: CreateApplication/CreateFile answer 0x0E when memory is exhausted, GetFreeMemory accounts in 32-byte blocks', async () => {
    const h = Host.fresh();
    const free = async () => {
      const b = await h.cmd(0x6e);
      return b[0]! | (b[1]! << 8) | (b[2]! << 16);
    };
    await createApp(h, 1, 0x0f, 0x0e);
    const afterApp = await free();
    expect(afterApp % 32).toBe(0);
    expect(TOTAL_USER_MEMORY - afterApp).toBe(Math.ceil((32 + 25 * 14) / 32) * 32);
    await h.select(1);
    // a standard file of 7400 bytes fits, another of 1000 does not
    await h.cmd(0xcd, Uint8Array.of(1, 0, 0xee, 0xee, 7400 & 0xff, 7400 >> 8, 0));
    expect(await free()).toBe(TOTAL_USER_MEMORY - 384 - 32 - 7424);
    await h.fails(0x0e, h.cmd(0xcd, Uint8Array.of(2, 0, 0xee, 0xee, 1000 & 0xff, 1000 >> 8, 0)));
    await h.select(0);
    await h.fails(0x0e, createApp(h, 2, 0x0f, 0x0e));
  });

  it('ISO FIDs and DF names: GetDFNames one application per frame, duplicates refused', async () => {
    const h = Host.fresh();
    await createApp(h, 0x000010, 0x0f, 0xa1, Uint8Array.of(0x01, 0xe1, 0xd2, 0x76, 0x00, 0x00, 0x85, 0x01, 0x01));
    await createApp(h, 0x000011, 0x0f, 0xa1, Uint8Array.of(0x02, 0xe1, 0x41));
    await h.fails(0xde, createApp(h, 0x000012, 0x0f, 0xa1, Uint8Array.of(0x02, 0xe1)));
    const r1 = h.card.process(Uint8Array.of(0x90, 0x6d, 0, 0, 0));
    expect(r1[r1.length - 1]).toBe(0xaf);
    expect(r1.length - 2).toBe(3 + 2 + 7);
    const r2 = h.card.process(Uint8Array.of(0x90, 0xaf, 0, 0, 0));
    expect(r2[r2.length - 1]).toBe(0x00);
    await h.select(0x000010);
    // files in an ISO application carry a FID
    await h.fails(0x7e, h.cmd(0xcd, Uint8Array.of(1, 0, 0xee, 0xee, 16, 0, 0)));
    await h.cmd(0xcd, Uint8Array.of(1, 0x04, 0xe1, 0, 0xee, 0xee, 16, 0, 0));
    await h.fails(0xde, h.cmd(0xcd, Uint8Array.of(2, 0x04, 0xe1, 0, 0xee, 0xee, 16, 0, 0)));
    expect([...(await h.cmd(0x61))]).toEqual([0x04, 0xe1]);
  });

  it('CreateApplication with the PICC master key when free create is off; DeleteApplication with the AMK', async () => {
    const h = Host.fresh();
    await h.auth('iso', 0, ZERO8, 'des');
    await h.cmd(0x54, new Uint8Array(0), Uint8Array.of(0x09), 'full', 'mac', 0);
    await h.select(0);
    await h.fails(0xae, createApp(h, 7, 0x0f, 0x82));
    await h.auth('iso', 0, ZERO8, 'des');
    await createApp(h, 7, 0x0f, 0x82);
    await createApp(h, 8, 0x0f, 0x82);
    await h.select(7);
    await h.fails(0xae, h.cmd(0xda, aidBytes(7)));
    await h.auth('aes', 0, ZERO16, 'aes');
    await h.fails(0x9d, h.cmd(0xda, aidBytes(8)));
    await h.auth('aes', 0, ZERO16, 'aes');
    await h.cmd(0xda, aidBytes(7));
    expect(h.card.toImage().apps.map((a) => a.aid)).toEqual(['000008']);
  });
});

describe('application keys', () => {
  it('AES application: ChangeKey of key 0 (same key) and of other keys with the master key (nibble 0)', async () => {
    const h = Host.fresh();
    await createApp(h, 1, 0x0f, 0x83);
    await h.select(1);
    await h.auth('aes', 0, ZERO16, 'aes');
    await h.changeKey({ keyNo: 1, newKey: K1, newKeyType: 'aes', newKeyVersion: 3, oldKey: ZERO16, oldKeyType: 'aes' });
    expect(h.session).toBeDefined();
    expect([...(await h.cmd(0x64, Uint8Array.of(1)))]).toEqual([3]);
    await h.changeKey({ keyNo: 0, newKey: K2, newKeyType: 'aes', newKeyVersion: 1 });
    expect(h.session).toBeUndefined();
    await h.fails(0xae, h.auth('aes', 0, ZERO16, 'aes'));
    await h.auth('ev2first', 0, K2, 'aes');
    await h.changeKey({ keyNo: 2, newKey: K1, newKeyType: 'aes', newKeyVersion: 9, oldKey: ZERO16, oldKeyType: 'aes' });
    await h.auth('ev2first', 1, K1, 'aes');
    await h.auth('aes', 2, K1, 'aes');
    // a key number beyond the application's keys
    await h.fails(0x40, h.auth('aes', 3, ZERO16, 'aes'));
    await h.fails(0x40, h.cmd(0x64, Uint8Array.of(5)));
  });

  it('ChangeKey access nibble: key 1 changes keys (0x1F), same key (0xEF), frozen (0xFF); master key changeable bit', async () => {
    for (const [settings, who, target, ok] of [
      [0x1f, 1, 2, true],
      [0x1f, 0, 2, false],
      [0x1f, 2, 2, false],
      [0xef, 2, 2, true],
      [0xef, 0, 2, false],
      [0xff, 0, 2, false],
      [0xff, 2, 2, false],
      [0x0e, 0, 0, false], // master key not changeable
      [0x0f, 1, 0, false], // only the master key changes itself
    ] as const) {
      const h = Host.fresh();
      await createApp(h, 1, settings, 0x83);
      await h.select(1);
      await h.auth('aes', who, ZERO16, 'aes');
      const p = h.changeKey({ keyNo: target, newKey: K1, newKeyType: 'aes', newKeyVersion: 1, oldKey: ZERO16, oldKeyType: 'aes' });
      if (ok) {
        await p;
        await h.auth('aes', target, K1, 'aes');
      } else {
        await h.fails(0x9d, p);
        expect(h.card.toImage().apps[0]!.keys[target]!.version).toBe(0);
      }
    }
  });

  it('ChangeKey without authentication: 0xAE; with a bad cryptogram: 0x1E and nothing changes', async () => {
    const h = Host.fresh();
    await createApp(h, 1, 0x0f, 0x82);
    await h.select(1);
    await h.fails(0xae, h.cmd(0xc4, Uint8Array.of(1), new Uint8Array(32)));
    await h.auth('aes', 0, ZERO16, 'aes');
    const before = JSON.stringify(h.card.toImage());
    const r = h.card.process(Uint8Array.from([0x90, 0xc4, 0, 0, 33, 1, ...new Uint8Array(32), 0]));
    expect([...r]).toEqual([0x91, 0x1e]);
    expect(JSON.stringify(h.card.toImage())).toBe(before);
  });

  it('DES-family and 3K3DES applications: legacy, ISO authentication; type fixed at creation', async () => {
    const h = Host.fresh();
    await createApp(h, 1, 0x0f, 0x02);
    await createApp(h, 2, 0x0f, 0x42);
    await h.select(1);
    await h.auth('d40', 0, ZERO8, 'des');
    const k2 = hex('00112233445566778899aabbccddeeff').map((b) => b & 0xfe);
    await h.changeKey({ keyNo: 1, newKey: k2, newKeyType: '2k3des', newKeyVersion: 0x55, oldKey: ZERO16, oldKeyType: '2k3des' });
    await h.auth('iso', 1, k2, '2k3des');
    expect([...(await h.cmd(0x64, Uint8Array.of(1)))]).toEqual([0x55]);
    await h.fails(0xae, h.auth('aes', 0, ZERO16, 'aes'));
    await h.select(2);
    await h.fails(0xae, h.auth('d40', 0, ZERO8, 'des'));
    await h.auth('iso', 0, ZERO24, '3k3des');
    const k3 = Uint8Array.from({ length: 24 }, (_, i) => (i * 22) & 0xfe);
    await h.changeKey({ keyNo: 1, newKey: k3, newKeyType: '3k3des', newKeyVersion: 2, oldKey: ZERO24, oldKeyType: '3k3des' });
    await h.auth('iso', 1, k3, '3k3des');
  });

  it('EV2 ChangeKey of a DES-family key in an EV2 session carries its version byte', async () => {
    const h = Host.fresh();
    await h.auth('d40', 0, ZERO8, 'des');
    await h.changeKey({ keyNo: 0, newKey: ZERO16, newKeyType: 'aes', picc: true });
    await h.auth('ev2first', 0, ZERO16, 'aes');
    await h.changeKey({ keyNo: 0, newKey: K1, newKeyType: 'aes', newKeyVersion: 0x42, picc: true });
    await h.auth('ev2first', 0, K1, 'aes');
    expect([...(await h.cmd(0x64, Uint8Array.of(0)))]).toEqual([0x42]);
  });

  it('application ChangeKeySettings: needs AMK, 0x9D once configuration is frozen (bit 3)', async () => {
    const h = Host.fresh();
    await createApp(h, 1, 0x0f, 0x81);
    await h.select(1);
    await h.auth('aes', 0, ZERO16, 'aes');
    await h.cmd(0x54, new Uint8Array(0), Uint8Array.of(0xe3), 'full', 'mac', 0);
    await h.select(1);
    expect([...(await h.cmd(0x45))]).toEqual([0xe3, 0x81]);
    await h.auth('aes', 0, ZERO16, 'aes');
    await h.fails(0x9d, h.cmd(0x54, new Uint8Array(0), Uint8Array.of(0x0f), 'full', 'mac', 0));
  });
});

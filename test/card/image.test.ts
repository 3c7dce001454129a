// Card images: round trip, strict validation, atomic save (a crash mid-save leaves the old image),
// onChange after every persistent change, any number of cards with distinct UIDs.
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CardImageError, VirtualCard, loadImage, loadImageSync, saveImageAtomic, saveImageAtomicSync, type ImageFs } from '../../src/card/index.js';
import { Host, ZERO16, ZERO8, createApp, hdr, i32 } from './host.js';

async function populated(): Promise<Host> {
  const h = Host.fresh({ profile: 'ev3' });
  await h.auth('d40', 0, ZERO8, 'des');
  await h.changeKey({ keyNo: 0, newKey: ZERO16, newKeyType: 'aes', newKeyVersion: 2, picc: true });
  await h.auth('ev2first', 0, ZERO16, 'aes');
  await createApp(h, 0x112233, 0x0f, 0xa3, Uint8Array.of(0x10, 0xe1, 0x01, 0x02));
  await h.select(0x112233);
  await h.cmd(0xcd, Uint8Array.of(1, 0x10, 0xe1, 0x03, 0x30, 0x12, 8, 0, 0));
  await h.cmd(0xcc, Uint8Array.of(2, 0x01, 0x00, 0x00, ...i32(-5), ...i32(500), ...i32(42), 0x01));
  await h.cmd(0xc0, Uint8Array.of(3, 0x11, 0xe1, 0x00, 0xee, 0xee, 4, 0, 0, 3, 0, 0));
  await h.cmd(0xcb, Uint8Array.of(4, 0x12, 0xe1, 0x00, 0xee, 0xee, 4, 0, 0));
  await h.cmd(0x3b, hdr(3, 0, 4), Uint8Array.of(1, 2, 3, 4));
  await h.cmd(0x3d, hdr(4, 0, 2), Uint8Array.of(9, 9));
  await h.cmd(0xc7);
  return h;
}

describe('card images', () => {
  it('round-trip: fromImage(toImage()) behaves as the original and serialises identically', async () => {
    const h = await populated();
    const img = h.card.toImage();
    const json = JSON.stringify(img);
    const copy = VirtualCard.fromImage(JSON.parse(json), { strict: true });
    expect(JSON.stringify(copy.toImage())).toBe(json);
    const h2 = new Host(copy);
    await h2.select(0x112233);
    expect([...(await h2.cmd(0xbb, hdr(3, 0, 0)))]).toEqual([1, 2, 3, 4]);
    expect([...(await h2.cmd(0xbd, hdr(4, 0, 0)))]).toEqual([9, 9, 0, 0]);
    await h2.auth('ev2first', 0, ZERO16, 'aes');
    expect(copy.uid).toEqual(h.card.uid);
    expect(copy.profile).toBe('ev3');
  });

  it('rejects invalid images with CardImageError', async () => {
    const good = (await populated()).card.toImage();
    const bad: unknown[] = [
      null,
      { ...good, format: 'x' },
      { ...good, version: 2 },
      { ...good, uid: '0011' },
      { ...good, profile: 'ev9' },
      { ...good, picc: { ...good.picc, key: { key: '00', version: 0 } } },
      { ...good, apps: [{ ...good.apps[0]!, keys: [] }] },
      { ...good, apps: [good.apps[0]!, good.apps[0]!] },
      { ...good, apps: [{ ...good.apps[0]!, files: [{ ...good.apps[0]!.files[1]!, value: 100000 }] }] },
    ];
    for (const b of bad) expect(() => VirtualCard.fromImage(b as never)).toThrow(CardImageError);
  });

  it('many cards with distinct UIDs', () => {
    const uids = new Set(Array.from({ length: 50 }, () => Buffer.from(VirtualCard.create().uid).toString('hex')));
    expect(uids.size).toBe(50);
  });

  it('onChange fires after persistent changes only', async () => {
    const h = Host.fresh();
    let n = 0;
    h.card.onChange = () => n++;
    await h.cmd(0x60);
    await h.cmd(0x6e);
    expect(n).toBe(0);
    await createApp(h, 5, 0x0f, 0x81);
    expect(n).toBe(1);
    await h.select(5);
    await h.cmd(0xcb, Uint8Array.of(1, 0, 0xee, 0xee, 4, 0, 0));
    expect(n).toBe(2);
    await h.cmd(0x3d, hdr(1, 0, 1), Uint8Array.of(1));
    expect(n).toBe(2); // backup file: not persistent before commit
    await h.cmd(0xc7);
    expect(n).toBe(3);
    await h.select(0);
    await h.fails(0xde, createApp(h, 5, 0x0f, 0x81));
    expect(n).toBe(3);
  });
});

describe('image files', () => {
  it('save and load, mode 0600, no temp files left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'card-img-'));
    const path = join(dir, 'card.json');
    const img = (await populated()).card.toImage();
    await saveImageAtomic(path, img);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await loadImage(path)).toEqual(img);
    saveImageAtomicSync(path, img);
    expect(loadImageSync(path)).toEqual(img);
    expect(readdirSync(dir)).toEqual(['card.json']);
    writeFileSync(join(dir, 'junk.json'), '{"format":');
    await expect(loadImage(join(dir, 'junk.json'))).rejects.toThrow(CardImageError);
  });

  it('a crash mid-save (failing write, failing fsync, failing rename) leaves the old image intact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'card-img-'));
    const path = join(dir, 'card.json');
    const h = await populated();
    const old = h.card.toImage();
    await saveImageAtomic(path, old);
    const oldText = readFileSync(path, 'utf8');
    await h.auth('ev2first', 0, ZERO16, 'aes');
    await h.cmd(0xda, Uint8Array.of(0x33, 0x22, 0x11));
    const next = h.card.toImage();
    const failing = (where: 'write' | 'sync' | 'rename'): ImageFs => ({
      open: (async (...args: Parameters<typeof fsp.open>) => {
        const fh = await fsp.open(...args);
        if (where === 'write') {
          const orig = fh.writeFile.bind(fh);
          fh.writeFile = (async (data: string) => {
            await orig(data.slice(0, 100));
            throw new Error('ENOSPC (simulated)');
          }) as typeof fh.writeFile;
        }
        if (where === 'sync') fh.sync = async () => Promise.reject(new Error('EIO (simulated)'));
        return fh;
      }) as typeof fsp.open,
      rename: where === 'rename' ? async () => Promise.reject(new Error('crash (simulated)')) : fsp.rename,
      unlink: fsp.unlink,
    });
    for (const w of ['write', 'sync', 'rename'] as const) {
      await expect(saveImageAtomic(path, next, failing(w))).rejects.toThrow(/simulated/);
      expect(readFileSync(path, 'utf8')).toBe(oldText);
      expect(await loadImage(path)).toEqual(old);
      expect(readdirSync(dir)).toEqual(['card.json']);
    }
    await saveImageAtomic(path, next);
    expect(await loadImage(path)).toEqual(next);
  });
});

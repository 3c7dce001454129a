// Files and data in every comm mode under every session generation (D40, EV1 ISO, EV1 AES, EV2):
// standard, backup, value, linear and cyclic record files; chained long writes and reads;
// file management (create, delete, settings, change settings); access rights (key, free, never).
import { describe, expect, it } from 'vitest';
import type { AuthMethod } from '../../src/core/auth/index.js';
import type { KeyType } from '../../src/core/crypto/cipher.js';
import type { CommMode } from '../../src/core/sm/types.js';
import { decodeFileSettings } from '../../src/core/protocol/codecs/fileSettings.js';
import { Host, ZERO16, ZERO8, createApp, hdr, i32 } from './host.js';

const COMM_BYTE: Record<CommMode, number> = { plain: 0, mac: 1, full: 3 };

interface Gen {
  name: string;
  method: AuthMethod;
  keyType: KeyType;
  key: Uint8Array;
  ks2: number;
  /** Give key 1 this value first (ChangeKey with the master key, same generation). */
  change?: boolean;
}

const K2K = Uint8Array.from({ length: 16 }, (_, i) => (i * 29 + 3) & 0xfe);
const K3K = Uint8Array.from({ length: 24 }, (_, i) => (i * 31 + 7) & 0xfe);

const GENS: Gen[] = [
  { name: 'D40', method: 'd40', keyType: 'des', key: ZERO8, ks2: 0x04 },
  { name: 'EV1 ISO', method: 'iso', keyType: 'des', key: ZERO8, ks2: 0x04 },
  { name: 'EV1 AES', method: 'aes', keyType: 'aes', key: ZERO16, ks2: 0x84 },
  { name: 'EV2', method: 'ev2first', keyType: 'aes', key: ZERO16, ks2: 0x84 },
  { name: 'D40 2K3DES', method: 'd40', keyType: '2k3des', key: K2K, ks2: 0x04, change: true },
  { name: 'EV1 ISO 2K3DES', method: 'iso', keyType: '2k3des', key: K2K, ks2: 0x04, change: true },
  { name: 'EV1 ISO 3K3DES', method: 'iso', keyType: '3k3des', key: K3K, ks2: 0x44, change: true },
];

const pattern = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

/** App 0x0000A1 with 4 keys; files 1..5 (std 100, backup 64, value, linear 3x16, cyclic 4x8), rights all key 1, Change key 0. */
async function setup(g: Gen, comm: CommMode): Promise<Host> {
  const h = Host.fresh();
  await createApp(h, 0xa1, 0x0f, g.ks2);
  await h.select(0xa1);
  const c = COMM_BYTE[comm];
  await h.cmd(0xcd, Uint8Array.of(1, c, 0x10, 0x11, 100, 0, 0));
  await h.cmd(0xcb, Uint8Array.of(2, c, 0x10, 0x11, 64, 0, 0));
  await h.cmd(0xcc, Uint8Array.of(3, c, 0x10, 0x11, ...i32(-100), ...i32(1000), ...i32(50), 0x01));
  await h.cmd(0xc1, Uint8Array.of(4, c, 0x10, 0x11, 16, 0, 0, 3, 0, 0));
  await h.cmd(0xc0, Uint8Array.of(5, c, 0x10, 0x11, 8, 0, 0, 4, 0, 0));
  if (g.change) {
    const zero = new Uint8Array(g.keyType === '3k3des' ? 24 : 16);
    await h.auth(g.method, 0, g.keyType === '3k3des' ? zero : ZERO8, g.keyType === '3k3des' ? '3k3des' : 'des');
    await h.changeKey({ keyNo: 1, newKey: g.key, newKeyType: g.keyType, oldKey: zero, oldKeyType: g.keyType });
  }
  await h.auth(g.method, 1, g.key, g.keyType);
  return h;
}

describe.each(GENS)('$name session', (g) => {
  it.each(['plain', 'mac', 'full'] as CommMode[])('%s files: every operation round-trips', async (comm) => {
    const h = await setup(g, comm);
    const rd = (f: number, off: number, len: number, plain: number) => h.cmd(0xbd, hdr(f, off, len), undefined, comm, comm, plain);
    // standard file: a chained 100-byte write (several frames in every mode), partial reads
    const d = pattern(100);
    await h.cmd(0x3d, hdr(1, 0, 100), d, comm);
    expect([...(await rd(1, 0, 0, 100))]).toEqual([...d]);
    expect([...(await rd(1, 10, 5, 5))]).toEqual([...d.slice(10, 15)]);
    await h.fails(0xbe, rd(1, 90, 20, 20));
    await h.auth(g.method, 1, g.key, g.keyType);
    // backup file: invisible until commit
    const b = pattern(64, 9);
    await h.cmd(0x3d, hdr(2, 0, 64), b, comm);
    expect([...(await rd(2, 0, 64, 64))]).toEqual(new Array(64).fill(0));
    await h.cmd(0xc7);
    expect([...(await rd(2, 0, 64, 64))]).toEqual([...b]);
    // value file
    const gv = async () => {
      const v = await h.cmd(0x6c, Uint8Array.of(3), undefined, comm, comm, 4);
      return v[0]! | (v[1]! << 8) | (v[2]! << 16) | (v[3]! << 24);
    };
    expect(await gv()).toBe(50);
    await h.cmd(0x0c, Uint8Array.of(3), i32(25), comm);
    await h.cmd(0xdc, Uint8Array.of(3), i32(5), comm);
    expect(await gv()).toBe(50);
    await h.cmd(0xc7);
    expect(await gv()).toBe(70);
    await h.fails(0xbe, h.cmd(0xdc, Uint8Array.of(3), i32(171), comm));
    await h.auth(g.method, 1, g.key, g.keyType);
    // records
    await h.cmd(0x3b, hdr(4, 0, 16), pattern(16, 3), comm);
    await h.cmd(0xc7);
    await h.cmd(0x3b, hdr(4, 4, 4), pattern(4, 5), comm);
    await h.cmd(0xc7);
    const recs = await h.cmd(0xbb, hdr(4, 0, 0), undefined, comm, comm, 32);
    expect(recs.length).toBe(32);
    expect([...recs.slice(0, 16)]).toEqual([...pattern(16, 3)]);
    expect([...recs.slice(16, 20)]).toEqual([0, 0, 0, 0]);
    expect([...recs.slice(20, 24)]).toEqual([...pattern(4, 5)]);
    // cyclic: 4 max -> 3 kept
    for (let i = 0; i < 5; i++) {
      await h.cmd(0x3b, hdr(5, 0, 8), pattern(8, 100 + i), comm);
      await h.cmd(0xc7);
    }
    const cyc = await h.cmd(0xbb, hdr(5, 0, 0), undefined, comm, comm, 24);
    expect([...cyc]).toEqual([...pattern(8, 102), ...pattern(8, 103), ...pattern(8, 104)]);
    // clear
    await h.cmd(0xeb, Uint8Array.of(5));
    await h.cmd(0xc7);
    await h.fails(0xbe, h.cmd(0xbb, hdr(5, 0, 0), undefined, comm, comm));
  });
});

describe('EV2 NonFirst', () => {
  it('switches keys mid-transaction keeping TI and CmdCtr; file operations continue in full mode', async () => {
    const h = Host.fresh();
    await createApp(h, 0xa2, 0x0f, 0x83);
    await h.select(0xa2);
    // R=1 W=2 RW=F C=0
    await h.cmd(0xcb, Uint8Array.of(1, 0x03, 0xf0, 0x12, 16, 0, 0));
    await h.auth('ev2first', 2, ZERO16, 'aes');
    const ti = h.session!.ti;
    await h.cmd(0x3d, hdr(1, 0, 3), Uint8Array.of(1, 2, 3), 'full');
    await h.auth('ev2nonfirst', 1, ZERO16, 'aes');
    expect(h.session!.ti).toEqual(ti);
    // the write is still pending in the same transaction
    await h.cmd(0xc7);
    expect([...(await h.cmd(0xbd, hdr(1, 0, 3), undefined, 'full', 'full', 3))]).toEqual([1, 2, 3]);
    await h.fails(0x9d, h.cmd(0x3d, hdr(1, 0, 1), Uint8Array.of(9), 'full'));
    // NonFirst without an EV2 session: the card refuses it
    expect([...h.card.process(Uint8Array.of(0x90, 0x77, 0, 0, 1, 1, 0))]).toEqual([0x91, 0xae]);
  });
});

describe('transactions and record semantics', () => {
  async function plainApp(): Promise<Host> {
    const h = Host.fresh();
    await createApp(h, 0xb1, 0x0f, 0x81);
    await h.select(0xb1);
    await h.cmd(0xcb, Uint8Array.of(2, 0, 0xee, 0xee, 16, 0, 0));
    await h.cmd(0xcc, Uint8Array.of(3, 0, 0xee, 0xee, ...i32(0), ...i32(100), ...i32(10), 0x03));
    await h.cmd(0xc1, Uint8Array.of(4, 0, 0xee, 0xee, 4, 0, 0, 2, 0, 0));
    return h;
  }

  it('uncommitted changes are lost on AbortTransaction, SelectApplication, reset and tear', async () => {
    for (const end of ['abort', 'select', 'reset', 'tear'] as const) {
      const h = await plainApp();
      const before = JSON.stringify(h.card.toImage());
      await h.cmd(0x3d, hdr(2, 0, 4), Uint8Array.of(1, 2, 3, 4));
      await h.cmd(0x0c, Uint8Array.of(3), i32(5));
      await h.cmd(0x3b, hdr(4, 0, 4), Uint8Array.of(9, 9, 9, 9));
      if (end === 'abort') await h.cmd(0xa7);
      if (end === 'select') await h.select(0xb1);
      if (end === 'reset') h.card.reset();
      if (end === 'tear') h.card.tear();
      if (end !== 'abort') await h.select(0xb1);
      await h.cmd(0xc7);
      expect(JSON.stringify(h.card.toImage())).toBe(before);
    }
  });

  it('several WriteRecord in one transaction write the same new record; after ClearRecordFile WriteRecord is 0x9D', async () => {
    const h = await plainApp();
    await h.cmd(0x3b, hdr(4, 0, 2), Uint8Array.of(1, 2));
    await h.cmd(0x3b, hdr(4, 2, 2), Uint8Array.of(3, 4));
    await h.cmd(0xc7);
    expect([...(await h.cmd(0xbb, hdr(4, 0, 0)))]).toEqual([1, 2, 3, 4]);
    await h.cmd(0xeb, Uint8Array.of(4));
    await h.fails(0x9d, h.cmd(0x3b, hdr(4, 0, 2), Uint8Array.of(5, 6)));
    await h.cmd(0xc7);
    await h.fails(0xbe, h.cmd(0xbb, hdr(4, 0, 0)));
  });

  it('a full linear record file refuses a new record (0xBE); ReadRecords offsets count back from the newest', async () => {
    const h = await plainApp();
    for (const v of [1, 2]) {
      await h.cmd(0x3b, hdr(4, 0, 4), Uint8Array.of(v, v, v, v));
      await h.cmd(0xc7);
    }
    await h.fails(0xbe, h.cmd(0x3b, hdr(4, 0, 4), Uint8Array.of(3, 3, 3, 3)));
    expect([...(await h.cmd(0xbb, hdr(4, 0, 1)))]).toEqual([2, 2, 2, 2]);
    expect([...(await h.cmd(0xbb, hdr(4, 1, 1)))]).toEqual([1, 1, 1, 1]);
    await h.fails(0xbe, h.cmd(0xbb, hdr(4, 2, 1)));
    await h.fails(0xbe, h.cmd(0xbb, hdr(4, 1, 2)));
    await h.fails(0xbe, h.cmd(0x3b, hdr(4, 3, 2), Uint8Array.of(1, 1)));
  });

  it('value limits, limited credit (once, at most the last debits), free GetValue', async () => {
    const h = await plainApp();
    await h.fails(0xbe, h.cmd(0x0c, Uint8Array.of(3), i32(91)));
    await h.fails(0xbe, h.cmd(0xdc, Uint8Array.of(3), i32(11)));
    await h.fails(0x9e, h.cmd(0x0c, Uint8Array.of(3), i32(-1)));
    await h.fails(0xbe, h.cmd(0x1c, Uint8Array.of(3), i32(1)));
    await h.cmd(0xdc, Uint8Array.of(3), i32(4));
    await h.cmd(0xdc, Uint8Array.of(3), i32(3));
    await h.cmd(0xc7);
    const settings = decodeFileSettings(await h.cmd(0xf5, Uint8Array.of(3)));
    expect(settings.type === 'value' && settings.limitedCreditValue).toBe(7);
    await h.fails(0xbe, h.cmd(0x1c, Uint8Array.of(3), i32(8)));
    await h.cmd(0x1c, Uint8Array.of(3), i32(7));
    await h.cmd(0xc7);
    const v = await h.cmd(0x6c, Uint8Array.of(3));
    expect(v[0]).toBe(10);
    await h.fails(0xbe, h.cmd(0x1c, Uint8Array.of(3), i32(1)));
  });
});

describe('file management and access rights', () => {
  it('create every type, duplicates 0xDE, GetFileIDs, GetFileSettings, DeleteFile, 0xF0 for a missing file', async () => {
    const h = Host.fresh();
    await createApp(h, 0xc1, 0x0f, 0x82);
    await h.select(0xc1);
    await h.cmd(0xcd, Uint8Array.of(1, 0x03, 0x30, 0x12, 32, 0, 0));
    await h.fails(0xde, h.cmd(0xcd, Uint8Array.of(1, 0x03, 0x30, 0x12, 32, 0, 0)));
    await h.fails(0x9e, h.cmd(0xcc, Uint8Array.of(2, 0, 0xee, 0xee, ...i32(10), ...i32(0), ...i32(5), 0)));
    await h.fails(0x9e, h.cmd(0xc0, Uint8Array.of(2, 0, 0xee, 0xee, 4, 0, 0, 1, 0, 0)));
    await h.fails(0x9e, h.cmd(0xcd, Uint8Array.of(2, 0x02, 0xee, 0xee, 4, 0, 0)));
    await h.fails(0x9e, h.cmd(0xcd, Uint8Array.of(0x20, 0x00, 0xee, 0xee, 4, 0, 0)));
    expect([...(await h.cmd(0x6f))]).toEqual([1]);
    const fs = decodeFileSettings(await h.cmd(0xf5, Uint8Array.of(1)));
    expect(fs).toMatchObject({ type: 'standard', comm: 'full', fileSize: 32, access: { readWrite: 3, change: 0, read: 1, write: 2 } });
    await h.fails(0xf0, h.cmd(0xf5, Uint8Array.of(9)));
    await h.fails(0xf0, h.cmd(0xbd, hdr(9, 0, 1)));
    await h.cmd(0xdf, Uint8Array.of(1));
    await h.fails(0xf0, h.cmd(0xdf, Uint8Array.of(1)));
    expect([...(await h.cmd(0x6f))]).toEqual([]);
  });

  it('access: not authenticated 0xAE, wrong key 0x9D, never (F) 0x9D, free (E) plain even for a full file', async () => {
    const h = Host.fresh();
    await createApp(h, 0xc2, 0x0f, 0x84);
    await h.select(0xc2);
    // R=1 W=2 RW=3 C=0, full
    await h.cmd(0xcd, Uint8Array.of(1, 0x03, 0x30, 0x12, 16, 0, 0));
    // R=E W=F RW=F C=F
    await h.cmd(0xcd, Uint8Array.of(2, 0x03, 0xff, 0xef, 16, 0, 0));
    await h.fails(0xae, h.cmd(0xbd, hdr(1, 0, 1)));
    await h.auth('aes', 2, ZERO16, 'aes');
    await h.fails(0x9d, h.cmd(0xbd, hdr(1, 0, 1), undefined, 'full'));
    await h.auth('aes', 2, ZERO16, 'aes');
    await h.cmd(0x3d, hdr(1, 0, 2), Uint8Array.of(7, 8), 'full');
    await h.auth('aes', 3, ZERO16, 'aes');
    expect([...(await h.cmd(0xbd, hdr(1, 0, 2), undefined, 'full', 'full', 2))]).toEqual([7, 8]);
    await h.select(0xc2);
    expect((await h.cmd(0xbd, hdr(2, 0, 0))).length).toBe(16);
    await h.fails(0x9d, h.cmd(0x3d, hdr(2, 0, 1), Uint8Array.of(1)));
    // authenticated with a key that has no right but R is free: plain
    await h.auth('aes', 1, ZERO16, 'aes');
    expect((await h.cmd(0xbd, hdr(2, 0, 4), undefined, 'plain', 'plain', 4)).length).toBe(4);
  });

  it('ChangeFileSettings: with the Change key in full mode; free (E) in plain; never (F) 0x9D', async () => {
    const h = Host.fresh();
    await createApp(h, 0xc3, 0x0f, 0x83);
    await h.select(0xc3);
    await h.cmd(0xcd, Uint8Array.of(1, 0x00, 0x01, 0x11, 16, 0, 0)); // Change = 1
    await h.cmd(0xcd, Uint8Array.of(2, 0x00, 0x0e, 0x11, 16, 0, 0)); // Change = E
    await h.cmd(0xcd, Uint8Array.of(3, 0x00, 0x0f, 0x11, 16, 0, 0)); // Change = F
    await h.fails(0xae, h.cmd(0x5f, Uint8Array.of(1), Uint8Array.of(0x03, 0x00, 0x00)));
    await h.auth('aes', 1, ZERO16, 'aes');
    await h.cmd(0x5f, Uint8Array.of(1), Uint8Array.of(0x03, 0x22, 0x22), 'full', 'mac');
    await h.select(0xc3);
    await h.cmd(0x5f, Uint8Array.of(2), Uint8Array.of(0x01, 0xee, 0xee));
    await h.fails(0x9d, h.cmd(0x5f, Uint8Array.of(3), Uint8Array.of(0x01, 0xee, 0xee)));
    const f1 = decodeFileSettings(await h.cmd(0xf5, Uint8Array.of(1)));
    expect(f1).toMatchObject({ comm: 'full', access: { readWrite: 2, change: 2, read: 2, write: 2 } });
    const f2 = decodeFileSettings(await h.cmd(0xf5, Uint8Array.of(2)));
    expect(f2).toMatchObject({ comm: 'mac', access: { readWrite: 14, change: 14, read: 14, write: 14 } });
  });

  it('free GetValue: GetValue in plain without authentication only with the flag', async () => {
    const h = Host.fresh();
    await createApp(h, 0xc5, 0x0f, 0x82);
    await h.select(0xc5);
    await h.cmd(0xcc, Uint8Array.of(1, 0x03, 0x10, 0x11, ...i32(0), ...i32(100), ...i32(33), 0x02));
    await h.cmd(0xcc, Uint8Array.of(2, 0x03, 0x10, 0x11, ...i32(0), ...i32(100), ...i32(44), 0x00));
    expect([...(await h.cmd(0x6c, Uint8Array.of(1)))]).toEqual([33, 0, 0, 0]);
    await h.fails(0xae, h.cmd(0x6c, Uint8Array.of(2)));
    await h.fails(0xae, h.cmd(0xdc, Uint8Array.of(1), i32(1)));
    await h.auth('aes', 1, ZERO16, 'aes');
    expect([...(await h.cmd(0x6c, Uint8Array.of(2), undefined, 'full', 'full', 4))]).toEqual([44, 0, 0, 0]);
    // authenticated with the file's key: the file's comm mode, even with the flag
    expect([...(await h.cmd(0x6c, Uint8Array.of(1), undefined, 'full', 'full', 4))]).toEqual([33, 0, 0, 0]);
  });

  it('32 files fill the file number space (a 33rd is a duplicate); wrong file type for the command: 0x9E', async () => {
    const h = Host.fresh();
    await createApp(h, 0xc6, 0x0f, 0x81);
    await h.select(0xc6);
    for (let f = 0; f < 31; f++) await h.cmd(0xcd, Uint8Array.of(f, 0, 0xee, 0xee, 1, 0, 0));
    await h.cmd(0xcc, Uint8Array.of(31, 0, 0xee, 0xee, ...i32(0), ...i32(1), ...i32(0), 0));
    expect((await h.cmd(0x6f)).length).toBe(32);
    await h.fails(0xde, h.cmd(0xcd, Uint8Array.of(8, 0, 0xee, 0xee, 1, 0, 0)));
    await h.fails(0x9e, h.cmd(0x6c, Uint8Array.of(0)));
    await h.fails(0x9e, h.cmd(0xbd, hdr(31, 0, 1)));
    await h.fails(0x9e, h.cmd(0xbb, hdr(0, 0, 1)));
  });

  it('free create/delete and free listing bits of the application key settings', async () => {
    const h = Host.fresh();
    await createApp(h, 0xc4, 0x09, 0x81); // no free listing, no free create/delete
    await h.select(0xc4);
    await h.fails(0xae, h.cmd(0xcd, Uint8Array.of(1, 0, 0xee, 0xee, 16, 0, 0)));
    await h.fails(0xae, h.cmd(0x6f));
    await h.fails(0xae, h.cmd(0x45));
    await h.auth('aes', 0, ZERO16, 'aes');
    await h.cmd(0xcd, Uint8Array.of(1, 0, 0xee, 0xee, 16, 0, 0));
    expect([...(await h.cmd(0x6f))]).toEqual([1]);
    await h.select(0xc4);
    await h.fails(0xae, h.cmd(0xf5, Uint8Array.of(1)));
    await h.fails(0xae, h.cmd(0xdf, Uint8Array.of(1)));
  });
});

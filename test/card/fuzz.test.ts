// Fuzzing the card's APDU handling with fast-check: random and mutated APDUs (well over 100,000
// per run, split across the cases below) must never crash the card (strict mode rethrows any
// unexpected exception), must always be answered with a status word, must never change state
// without the required authentication, and must never leave a state that does not serialise to a
// valid image.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualCard, decodeImage, encodeImage, loadImageSync, saveImageAtomicSync } from '../../src/card/index.js';
import { Host, ZERO16, ZERO8, createApp, hdr, hex, i32 } from './host.js';

const KNOWN_INS = [
  0x0a, 0x1a, 0xaa, 0x71, 0x77, 0xaf, 0x3d, 0xbd, 0x3b, 0xbb, 0xeb, 0x0c, 0xdc, 0x1c, 0x6c, 0xad, 0x8d, 0xab, 0x8b, 0x45, 0x54, 0xc4, 0xc6, 0x64, 0x51, 0x5a,
  0x5c, 0x60, 0x6a, 0x6d, 0x6e, 0xca, 0xda, 0xfc, 0x3c, 0x5f, 0x61, 0x6f, 0xf5, 0xcd, 0xcb, 0xcc, 0xc1, 0xc0, 0xce, 0xdf, 0xc7, 0xa7, 0xc8,
];

const wrapped = fc
  .record({
    ins: fc.oneof(fc.constantFrom(...KNOWN_INS), fc.integer({ min: 0, max: 255 })),
    data: fc.oneof(
      fc.uint8Array({ maxLength: 8 }),
      fc.uint8Array({ maxLength: 60 }),
      // data commands: a plausible header then anything
      fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), fc.uint8Array({ maxLength: 40 })).map(([f, o, l, d]) =>
        Uint8Array.from([...hdr(f, o, l), ...d]),
      ),
      // AIDs of the fixtures
      fc.constantFrom(Uint8Array.of(0x01, 0, 0), Uint8Array.of(0x02, 0, 0), Uint8Array.of(0, 0, 0)),
    ),
    le: fc.boolean(),
  })
  .map(({ ins, data, le }) => {
    if (data.length === 0) return Uint8Array.of(0x90, ins, 0, 0, 0);
    return Uint8Array.from([0x90, ins, 0, 0, data.length, ...data, ...(le ? [0] : [])]);
  });

const isoSelect = fc
  .record({ ins: fc.constantFrom(0xa4, 0xb0), p1: fc.constantFrom(0x00, 0x04, 0x02), p2: fc.constantFrom(0x00, 0x0c, 0x01), data: fc.uint8Array({ maxLength: 16 }) })
  .map(({ ins, p1, p2, data }) => Uint8Array.from([0x00, ins, p1, p2, data.length, ...data]));

const randomApdu = fc.oneof(
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 70 }) },
  { weight: 6, arbitrary: wrapped },
  { weight: 1, arbitrary: isoSelect },
);

/** A card on which nothing can change without a key: no free rights anywhere. */
async function lockedCard(): Promise<VirtualCard> {
  const h = Host.fresh({ uid: hex('04deadbeef0001') });
  await h.auth('d40', 0, ZERO8, 'des');
  const picc = hex('5f5e5d5c5b5a59585756555453525150');
  await h.changeKey({ keyNo: 0, newKey: picc, newKeyType: 'aes', picc: true });
  await h.auth('aes', 0, picc, 'aes');
  await createApp(h, 0x000001, 0x09, 0x84);
  await createApp(h, 0x000002, 0x09, 0x04);
  await h.cmd(0x54, new Uint8Array(0), Uint8Array.of(0x09), 'full', 'mac', 0);
  await h.select(1);
  await h.auth('aes', 0, ZERO16, 'aes');
  await h.cmd(0xcd, Uint8Array.of(1, 0x00, 0x12, 0x34, 32, 0, 0));
  await h.cmd(0xcb, Uint8Array.of(2, 0x01, 0x12, 0x34, 32, 0, 0));
  await h.cmd(0xcc, Uint8Array.of(3, 0x03, 0x12, 0x34, ...i32(-10), ...i32(100), ...i32(5), 0x01));
  await h.cmd(0xc1, Uint8Array.of(4, 0x00, 0x12, 0x34, 8, 0, 0, 4, 0, 0));
  await h.cmd(0xc0, Uint8Array.of(5, 0x03, 0x12, 0x34, 8, 0, 0, 4, 0, 0));
  // app keys 1..3 changed from the default, app settings: no free listing / create / delete
  for (const k of [1, 2, 3]) await h.changeKey({ keyNo: k, newKey: Uint8Array.from(ZERO16, (_, i) => i + k * 16), newKeyType: 'aes', oldKey: ZERO16, oldKeyType: 'aes' });
  await h.changeKey({ keyNo: 0, newKey: hex('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf'), newKeyType: 'aes' });
  await h.select(2);
  await h.auth('d40', 0, ZERO8, 'des');
  await h.changeKey({ keyNo: 0, newKey: hex('0102030405060708').map((b) => b & 0xfe), newKeyType: 'des' });
  return h.card;
}

/** A card with free rights everywhere (state may change freely; it must stay valid). */
async function openCard(): Promise<VirtualCard> {
  const h = Host.fresh({ uid: hex('04deadbeef0002') });
  await createApp(h, 0x000001, 0xef, 0x83);
  await h.select(1);
  await h.cmd(0xcd, Uint8Array.of(1, 0x00, 0xee, 0xee, 32, 0, 0));
  await h.cmd(0xcb, Uint8Array.of(2, 0x00, 0xee, 0xee, 32, 0, 0));
  await h.cmd(0xcc, Uint8Array.of(3, 0x00, 0xee, 0xee, ...i32(-10), ...i32(100), ...i32(5), 0x03));
  await h.cmd(0xc1, Uint8Array.of(4, 0x00, 0xee, 0xee, 8, 0, 0, 4, 0, 0));
  await h.cmd(0xc0, Uint8Array.of(5, 0x00, 0xee, 0xee, 8, 0, 0, 4, 0, 0));
  return h.card;
}

/** Valid traffic to mutate: plain commands and protected ones captured from real sessions. */
async function corpus(): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  const card = await lockedCard();
  const h = new Host(card);
  const tap = h.transport.transmit;
  h.transport.transmit = async (a) => {
    out.push(a.slice());
    return tap(a);
  };
  await h.cmd(0x60);
  await h.select(1);
  await h.auth('aes', 1, Uint8Array.from(ZERO16, (_, i) => i + 16), 'aes');
  await h.cmd(0xbd, hdr(1, 0, 0), undefined, 'plain', 'plain', 32).catch(() => undefined);
  await h.auth('ev2first', 2, Uint8Array.from(ZERO16, (_, i) => i + 32), 'aes');
  await h.cmd(0x3d, hdr(1, 0, 32), new Uint8Array(32).fill(7), 'plain').catch(() => undefined);
  await h.cmd(0x3d, hdr(2, 0, 20), new Uint8Array(20).fill(7), 'mac').catch(() => undefined);
  await h.cmd(0xdc, Uint8Array.of(3), i32(1), 'full').catch(() => undefined);
  await h.cmd(0x3b, hdr(5, 0, 8), new Uint8Array(8).fill(3), 'full').catch(() => undefined);
  await h.cmd(0xc7).catch(() => undefined);
  await h.cmd(0xc4, Uint8Array.of(1), new Uint8Array(40), 'full').catch(() => undefined);
  return out;
}

function mutate(base: Uint8Array, op: number, pos: number, val: number): Uint8Array {
  const b = Uint8Array.from(base);
  const i = b.length ? pos % b.length : 0;
  switch (op) {
    case 0:
      if (b.length) b[i]! ^= 1 << (val & 7);
      return b;
    case 1:
      if (b.length) b[i] = val;
      return b;
    case 2:
      return b.slice(0, i);
    case 3:
      return Uint8Array.from([...b, val]);
    default: {
      // keep the ISO header, change Lc
      if (b.length > 4) b[4] = val;
      return b;
    }
  }
}

const NATIVE_STATUSES = [0x00, 0x0c, 0x0e, 0x1c, 0x1e, 0x40, 0x7e, 0x9d, 0x9e, 0xa0, 0xae, 0xaf, 0xbe, 0xca, 0xce, 0xde, 0xee, 0xf0];

function checkResponse(r: Uint8Array, req: Uint8Array): void {
  if (req.length > 0 && req[0] !== 0x90 && req[0] !== 0x00) {
    // only ISO-wrapped commands (CLA 90) and ISO SELECT (CLA 00) are understood
    expect([...r]).toEqual([0x6e, 0x00]);
    return;
  }
  expect(r.length).toBeGreaterThanOrEqual(2);
  const sw1 = r[r.length - 2];
  expect([0x91, 0x90, 0x67, 0x6a, 0x6d, 0x6e]).toContain(sw1);
  if (sw1 !== 0x91) expect(r.length).toBe(2);
  else expect(NATIVE_STATUSES).toContain(r[r.length - 1]);
}

// Each run yields to the event loop first: a long synchronous loop would starve vitest's worker RPC
// ("Timeout calling onTaskUpdate") on a loaded machine.
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

const RUNS = 200;
const PER_RUN = 200; // 40,000 APDUs per property

describe('fuzzing the card (fast-check)', () => {
  it('random APDUs never crash a locked card and never change it without authentication', { timeout: 120_000 }, async () => {
    const img = (await lockedCard()).toImage();
    const image = JSON.stringify(img);
    let n = 0;
    let internal = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(randomApdu, { minLength: PER_RUN, maxLength: PER_RUN }), async (apdus) => {
        await yieldToEventLoop();
        const card = VirtualCard.fromImage(img, { strict: true });
        for (const a of apdus) {
          checkResponse(card.process(a), a);
          n++;
        }
        expect(JSON.stringify(card.toImage())).toBe(image);
        internal += card.internalErrors;
      }),
      { numRuns: RUNS },
    );
    expect(n).toBe(RUNS * PER_RUN);
    expect(internal).toBe(0);
  });

  it('mutated real traffic (including protected EV1/EV2 commands) never crashes the card or changes it', { timeout: 120_000 }, async () => {
    const base = await corpus();
    expect(base.length).toBeGreaterThan(10);
    const img = (await lockedCard()).toImage();
    const image = JSON.stringify(img);
    const mutated = fc
      .tuple(fc.integer({ min: 0, max: base.length - 1 }), fc.integer({ min: 0, max: 4 }), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean())
      .map(([k, op, pos, val, raw]) => (raw ? base[k]! : mutate(base[k]!, op, pos, val)));
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(mutated, { minLength: PER_RUN, maxLength: PER_RUN }), async (apdus) => {
        await yieldToEventLoop();
        const card = VirtualCard.fromImage(img, { strict: true });
        for (const a of apdus) {
          checkResponse(card.process(a), a);
          n++;
        }
        expect(JSON.stringify(card.toImage())).toBe(image);
      }),
      { numRuns: RUNS },
    );
    expect(n).toBe(RUNS * PER_RUN);
  });

  it('random and mutated APDUs on a card with free rights keep a valid, loadable image', { timeout: 120_000 }, async () => {
    const base = await corpus();
    const card = await openCard();
    let changes = 0;
    card.onChange = () => changes++;
    const apdu = fc.oneof(
      randomApdu,
      fc.tuple(fc.integer({ min: 0, max: base.length - 1 }), fc.integer({ min: 0, max: 4 }), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([k, op, pos, val]) => mutate(base[k]!, op, pos, val)),
    );
    const path = join(mkdtempSync(join(tmpdir(), 'card-fuzz-')), 'card.json');
    let n = 0;
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(apdu, { minLength: PER_RUN, maxLength: PER_RUN }), async (apdus) => {
        await yieldToEventLoop();
        for (const a of apdus) {
          checkResponse(card.process(a), a);
          n++;
        }
        // the state always serialises to an image that loads back to the same state
        const img = card.toImage();
        expect(JSON.stringify(encodeImage(decodeImage(JSON.parse(JSON.stringify(img)))))).toBe(JSON.stringify(img));
        // and every 10th run it goes through a real atomic save and load
        if (runs++ % 10 === 0) {
          saveImageAtomicSync(path, img);
          expect(loadImageSync(path)).toEqual(img);
        }
      }),
      { numRuns: 150 },
    );
    expect(n).toBe(150 * PER_RUN);
    expect(changes).toBeGreaterThan(0);
    expect(card.internalErrors).toBe(0);
  });
});

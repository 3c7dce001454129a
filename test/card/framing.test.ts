// ISO 7816-4 framing, 0xAF chaining both ways, interrupted chains, unknown commands, and the rule
// that any error ends the authentication.
import { describe, expect, it } from 'vitest';
import { latencyModel, VirtualCard } from '../../src/card/index.js';
import { Host, ZERO16, ZERO8, createApp, hdr, hex } from './host.js';

const sw = (r: Uint8Array) => Buffer.from(r.slice(r.length - 2)).toString('hex');

describe('ISO 7816-4 wrapping', () => {
  it('answers ISO status words to malformed APDUs and never changes state', () => {
    const card = VirtualCard.create({ strict: true });
    const before = JSON.stringify(card.toImage());
    expect(sw(card.process(hex('8060000000')))).toBe('6e00');
    expect(sw(card.process(hex('6000')))).toBe('6e00');
    expect(sw(card.process(hex('0060000000')))).toBe('6d00');
    expect(sw(card.process(hex('9060010000')))).toBe('6a86');
    expect(sw(card.process(hex('90600000')))).toBe('6700');
    expect(sw(card.process(hex('906000000500')))).toBe('6700');
    expect(sw(card.process(hex('9060000001')))).toBe('6700');
    expect(sw(card.process(new Uint8Array(0)))).toBe('6700');
    expect(JSON.stringify(card.toImage())).toBe(before);
  });

  it('accepts APDUs with and without Le', () => {
    const card = VirtualCard.create({ strict: true });
    expect(sw(card.process(hex('906e000000')))).toBe('9100');
    expect(sw(card.process(hex('9064000001 00')))).toBe('9100');
    expect(sw(card.process(hex('9064000001 00 00')))).toBe('9100');
  });

  it('unknown command: 0x1C; AF without a pending exchange: 0xCA', () => {
    const card = VirtualCard.create({ strict: true });
    expect(sw(card.process(hex('9001000000')))).toBe('911c');
    expect(sw(card.process(hex('90af000000')))).toBe('91ca');
  });
});

describe('ISO 7816-4 SELECT', () => {
  it('selects the PICC by its DF name and applications by DF name or FID, ending authentication', async () => {
    const h = Host.fresh();
    await createApp(h, 0x000042, 0x0f, 0xa1, Uint8Array.of(0x05, 0xe1, 0xa0, 0x00, 0x00, 0x00, 0x42));
    await h.select(0x42);
    await h.cmd(0xcd, Uint8Array.of(1, 0x06, 0xe1, 0, 0xee, 0xee, 4, 0, 0));
    expect(sw(h.card.process(hex('00a4040007d276000085010000')))).toBe('9000');
    expect([...(await h.cmd(0x6a))]).toEqual([0x42, 0, 0]);
    expect(sw(h.card.process(hex('00a4040005a000000042')))).toBe('9000');
    expect([...(await h.cmd(0x6f))]).toEqual([1]);
    expect(sw(h.card.process(hex('00a40000023f00')))).toBe('9000');
    expect(sw(h.card.process(hex('00a4000002e105')))).toBe('9000');
    expect([...(await h.cmd(0x6f))]).toEqual([1]);
    expect(sw(h.card.process(hex('00a4040c07d2760000850100')))).toBe('9000');
    await h.auth('d40', 0, ZERO8, 'des');
    expect(sw(h.card.process(hex('00a4040005a000000099')))).toBe('6a82');
    // authentication is gone
    await h.fails(0xae, h.cmd(0x54, new Uint8Array(0), Uint8Array.of(0x0f)).finally(() => (h.session = undefined)));
    expect(sw(h.card.process(hex('00a4020002e105')))).toBe('6a86');
    expect(sw(h.card.process(hex('00a40400')))).toBe('6700');
    expect(sw(h.card.process(hex('00b0000000')))).toBe('6d00');
  });
});

describe('chaining', () => {
  async function withFile(): Promise<Host> {
    const h = Host.fresh();
    await createApp(h, 0xd1, 0x0f, 0x81);
    await h.select(0xd1);
    await h.cmd(0xcd, Uint8Array.of(1, 0, 0xee, 0xee, 200, 0, 0));
    return h;
  }

  it('long responses come in frames of 59 bytes', async () => {
    const h = await withFile();
    const r1 = h.card.process(Uint8Array.from([0x90, 0xbd, 0, 0, 7, ...hdr(1, 0, 0), 0]));
    expect(r1.length).toBe(61);
    expect(sw(r1)).toBe('91af');
    const sizes = [59];
    for (;;) {
      const r = h.card.process(hex('90af000000'));
      sizes.push(r.length - 2);
      if (sw(r) === '9100') break;
      expect(sw(r)).toBe('91af');
    }
    expect(sizes).toEqual([59, 59, 59, 23]);
  });

  it('long commands are joined from AF frames; an interrupted command chain is 0xCA and writes nothing', async () => {
    const h = await withFile();
    const data = Uint8Array.from({ length: 100 }, (_, i) => i);
    const all = Uint8Array.from([...hdr(1, 0, 100), ...data]);
    const f1 = Uint8Array.from([0x90, 0x3d, 0, 0, 54, ...all.slice(0, 54), 0]);
    expect(sw(h.card.process(f1))).toBe('91af');
    // interrupted by another command
    expect(sw(h.card.process(hex('906e000000')))).toBe('91ca');
    expect([...(await h.cmd(0xbd, hdr(1, 0, 4)))]).toEqual([0, 0, 0, 0]);
    // done properly
    expect(sw(h.card.process(f1))).toBe('91af');
    const rest = all.slice(54);
    expect(sw(h.card.process(Uint8Array.from([0x90, 0xaf, 0, 0, rest.length, ...rest, 0])))).toBe('9100');
    expect([...(await h.cmd(0xbd, hdr(1, 0, 100)))]).toEqual([...data]);
    // too much data in a continuation frame: 0x7E
    expect(sw(h.card.process(f1))).toBe('91af');
    const over = new Uint8Array(rest.length + 1);
    expect(sw(h.card.process(Uint8Array.from([0x90, 0xaf, 0, 0, over.length, ...over, 0])))).toBe('917e');
  });

  it('a torn chained write leaves the file as it was', async () => {
    const h = await withFile();
    const all = Uint8Array.from([...hdr(1, 0, 100), ...new Uint8Array(100).fill(0x55)]);
    expect(sw(h.card.process(Uint8Array.from([0x90, 0x3d, 0, 0, 54, ...all.slice(0, 54), 0])))).toBe('91af');
    h.card.tear();
    await h.select(0xd1);
    expect([...(await h.cmd(0xbd, hdr(1, 0, 2)))]).toEqual([0, 0]);
  });
});

describe('authentication state', () => {
  it('is lost on any error, on SelectApplication and on reset', async () => {
    const h = Host.fresh();
    await createApp(h, 0xe1, 0x0f, 0x81);
    await h.select(0xe1);
    await h.cmd(0xcd, Uint8Array.of(1, 0x03, 0x00, 0x00, 16, 0, 0));
    const key = ZERO16;
    for (const end of ['error', 'select', 'reset'] as const) {
      await h.auth('ev2first', 0, key, 'aes');
      await h.cmd(0xbd, hdr(1, 0, 1), undefined, 'full', 'full', 1);
      const s = h.session!;
      h.session = undefined; // keep the host's copy alive: replay it after the event
      if (end === 'error') {
        const p = s.wrapCommand(0xf5, Uint8Array.of(9), new Uint8Array(0), 'mac');
        expect(sw(h.card.process(Uint8Array.from([0x90, 0xf5, 0, 0, p.length, ...p, 0])))).toBe('91f0');
      }
      if (end === 'select') expect(sw(h.card.process(hex('905a000003e1000000')))).toBe('9100');
      if (end === 'reset') {
        h.card.reset();
        expect(sw(h.card.process(hex('905a000003e1000000')))).toBe('9100');
      }
      // a command protected with the old session is refused: not authenticated any more
      const payload = s.wrapCommand(0xbd, hdr(1, 0, 1), new Uint8Array(0), 'full');
      const r = h.card.process(Uint8Array.from([0x90, 0xbd, 0, 0, payload.length, ...payload, 0]));
      expect(sw(r)).toBe('91ae');
      s.destroy();
    }
  });

  it('a command MAC from a wrong session key is 0x1E, and the session is gone afterwards', async () => {
    const h = Host.fresh();
    await createApp(h, 0xe2, 0x0f, 0x81);
    await h.select(0xe2);
    await h.cmd(0xcd, Uint8Array.of(1, 0x01, 0x00, 0x00, 16, 0, 0));
    await h.auth('ev2first', 0, ZERO16, 'aes');
    const payload = h.session!.wrapCommand(0x3d, hdr(1, 0, 2), Uint8Array.of(1, 2), 'mac');
    payload[payload.length - 1]! ^= 1;
    expect(sw(h.card.process(Uint8Array.from([0x90, 0x3d, 0, 0, payload.length, ...payload, 0])))).toBe('911e');
    h.session = undefined;
    await h.fails(0xae, h.cmd(0x3d, hdr(1, 0, 2), Uint8Array.of(1, 2)));
    expect(h.card.toImage().apps[0]!.files[0]!.data).toBe('00'.repeat(16));
  });

  it('an EV2 session ends when CmdCtr is exhausted (FFFF): 0xAE, re-authentication works', { timeout: 120_000 }, async () => {
    const h = Host.fresh();
    await h.auth('d40', 0, ZERO8, 'des');
    await h.changeKey({ keyNo: 0, newKey: ZERO16, newKeyType: 'aes', picc: true });
    const s = await h.auth('ev2first', 0, ZERO16, 'aes');
    const empty = new Uint8Array(0);
    for (let i = 0; i < 0xffff; i++) {
      const p = s.wrapCommand(0x6e, empty, empty, 'mac');
      const r = h.card.process(Uint8Array.from([0x90, 0x6e, 0, 0, p.length, ...p, 0]));
      s.unwrapResponse(0x6e, r[r.length - 1]!, r.subarray(0, r.length - 2), 'mac');
    }
    expect(s.cmdCtr).toBe(0xffff);
    expect(sw(h.card.process(hex('906e000000')))).toBe('91ae');
    await h.auth('ev2first', 0, ZERO16, 'aes');
    expect((await h.cmd(0x6e)).length).toBe(3);
  });

  it('authentication interrupted by another command: 0xCA, not authenticated', async () => {
    const card = VirtualCard.create({ strict: true });
    expect(sw(card.process(hex('900a0000010000')))).toBe('91af');
    expect(sw(card.process(hex('906e000000')))).toBe('91ca');
    expect(sw(card.process(hex('90af0000100000000000000000000000000000000000')))).toBe('91ca');
  });
});

describe('latency model', () => {
  it('reports a per-command estimate, slower at 106 than at 848 kbit/s, and is off by default', () => {
    const slow = VirtualCard.create({ latency: latencyModel(106) });
    const fast = VirtualCard.create({ latency: latencyModel(848) });
    const off = VirtualCard.create();
    const apdu = hex('9060000000');
    slow.process(apdu);
    fast.process(apdu);
    off.process(apdu);
    expect(slow.lastLatencyMs).toBeGreaterThan(fast.lastLatencyMs);
    expect(fast.lastLatencyMs).toBeGreaterThan(0);
    expect(off.lastLatencyMs).toBe(0);
  });
});

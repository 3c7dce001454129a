// The bridge against a fake vpcd written here: a TCP server that speaks vpcd's side of the
// protocol (length-prefixed frames; it writes the length and the payload separately, as vpcd does).
import { createServer } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { PcscFrontEnd } from '../../src/transport/pcsc-frontend.js';
import { type BridgeEvent, VpcdBridge, parseHostPort } from '../../src/transport/vpcd-bridge.js';
import { FrameDecoder, classify, encodeFrame } from '../../src/transport/vpcd-protocol.js';
import { EchoCard, bytes, hex } from './fake-card.js';
import { FakeVpcd } from './fake-vpcd.js';

describe('vpcd framing', () => {
  it('encodes a 2-byte big-endian length', () => {
    expect(hex(encodeFrame(bytes('04')))).toBe('000104');
    expect(hex(encodeFrame(new Uint8Array(0x123)).subarray(0, 2))).toBe('0123');
  });
  it('decodes whatever way the stream is cut', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), (payloads, cuts) => {
        const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
        const points = [...new Set(cuts.map((c) => (stream.length ? c % stream.length : 0)))].sort((a, b) => a - b);
        const d = new FrameDecoder();
        const got: Uint8Array[] = [];
        let prev = 0;
        for (const p of [...points, stream.length]) {
          got.push(...d.push(stream.subarray(prev, p)));
          prev = p;
        }
        expect(got.map(hex)).toEqual(payloads.map(hex));
        expect(d.pending).toBe(0);
      }),
    );
  });
  it('classifies 1 byte as control, longer as APDU, refuses empty', () => {
    expect(classify(bytes('04'))).toEqual({ kind: 'control', code: 4 });
    expect(classify(bytes('9060')).kind).toBe('apdu');
    expect(() => classify(new Uint8Array(0))).toThrow(expect.objectContaining({ code: 'ERR_VPCD_FRAME' }));
  });
  it('parses HOST:PORT', () => {
    expect(parseHostPort('127.0.0.1:35963')).toEqual({ host: '127.0.0.1', port: 35963 });
    expect(parseHostPort('localhost')).toEqual({ host: 'localhost', port: 35963 });
    expect(parseHostPort(':4000')).toEqual({ host: '127.0.0.1', port: 4000 });
    expect(parseHostPort('[::1]:4000')).toEqual({ host: '::1', port: 4000 });
    expect(() => parseHostPort('h:99999')).toThrow(expect.objectContaining({ code: 'ERR_VPCD_CONNECT' }));
    expect(() => parseHostPort('a:b:c')).toThrow(expect.objectContaining({ code: 'ERR_VPCD_CONNECT' }));
  });
});

describe('VpcdBridge against a fake vpcd', () => {
  let vpcd: FakeVpcd | undefined;
  let bridge: VpcdBridge | undefined;
  afterEach(async () => {
    await bridge?.stop();
    await vpcd?.close();
    bridge = vpcd = undefined;
  });

  async function setup(extra: { afterCommand?: () => void | Promise<void>; events?: BridgeEvent[] } = {}) {
    vpcd = new FakeVpcd();
    await vpcd.listen();
    const card = new EchoCard();
    bridge = await VpcdBridge.start({
      frontEnd: new PcscFrontEnd(card),
      port: vpcd.port,
      reconnectDelayMs: 50,
      ...(extra.afterCommand ? { afterCommand: extra.afterCommand } : {}),
      onEvent: (e) => extra.events?.push(e),
    });
    await bridge.waitConnected(5000);
    await vpcd.accepted();
    return { card, vpcd, bridge };
  }

  it('answers GET ATR with the contactless ATR, power and reset codes with nothing but a card reset', async () => {
    const { card, vpcd } = await setup();
    expect(hex(await vpcd.exchange(bytes('04')))).toBe('3B8180018080');
    vpcd.send(bytes('01'));
    vpcd.send(bytes('02'));
    vpcd.send(bytes('00'));
    // Control codes get no answer: the next answer is the ATR of this request.
    expect(hex(await vpcd.exchange(bytes('04')))).toBe('3B8180018080');
    expect(card.resets).toBe(3);
  });

  it('answers FF CA 00 00 00 with UID || 90 00 and passes other APDUs to the card', async () => {
    const { card, vpcd } = await setup();
    expect(hex(await vpcd.exchange(bytes('FFCA000000')))).toBe('041122334455669000');
    expect(hex(await vpcd.exchange(bytes('9060000000')))).toBe('90600000009100');
    expect(card.seen.map(hex)).toEqual(['9060000000']);
  });

  it('keeps answers in order when frames arrive merged in one write', async () => {
    const { vpcd } = await setup();
    const frames = [bytes('9001000000'), bytes('04'), bytes('9002000000')];
    vpcd.sock!.write(Buffer.concat(frames.map((f) => encodeFrame(f))));
    expect(hex(await vpcd.recv())).toBe('90010000009100');
    expect(hex(await vpcd.recv())).toBe('3B8180018080');
    expect(hex(await vpcd.recv())).toBe('90020000009100');
  });

  it('answers a faulting card with 6F 00 and stays up', async () => {
    const { vpcd } = await setup();
    expect(hex(await vpcd.exchange(bytes('90EE000000')))).toBe('6F00');
    expect(hex(await vpcd.exchange(bytes('9060000000')))).toBe('90600000009100');
  });

  it('runs afterCommand after each APDU and before its answer is sent', async () => {
    const order: string[] = [];
    const { vpcd } = await setup({
      afterCommand: async () => {
        order.push('saved');
        await new Promise((r) => setTimeout(r, 20));
      },
    });
    const p = vpcd.exchange(bytes('9060000000')).then(() => order.push('answered'));
    await p;
    expect(order).toEqual(['saved', 'answered']);
  });

  it('ignores a zero-length frame (reports it) and keeps serving', async () => {
    const events: BridgeEvent[] = [];
    const { vpcd } = await setup({ events });
    vpcd.sock!.write(bytes('0000'));
    expect(hex(await vpcd.exchange(bytes('04')))).toBe('3B8180018080');
    expect(events.some((e) => e.type === 'error' && /zero-length/.test(e.error.message))).toBe(true);
  });

  it('resets the card and reconnects when vpcd goes away and comes back', async () => {
    const events: BridgeEvent[] = [];
    const { card, vpcd: first, bridge: b } = await setup({ events });
    const port = first.port;
    await first.close();
    // vpcd is gone: the card left the field.
    await expect.poll(() => card.resets, { timeout: 5000 }).toBe(1);
    // pcscd restarts: a new vpcd on the same port.
    vpcd = new FakeVpcd();
    await vpcd.listen(port);
    await vpcd.accepted();
    await b.waitConnected(5000);
    expect(hex(await vpcd.exchange(bytes('04')))).toBe('3B8180018080');
    expect(b.stats.connects).toBe(2);
    expect(events.filter((e) => e.type === 'connected')).toHaveLength(2);
  });

  it('waitConnected fails with ERR_VPCD_CONNECT when nobody listens', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const events: BridgeEvent[] = [];
    bridge = await VpcdBridge.start({ frontEnd: new PcscFrontEnd(new EchoCard()), port, reconnectDelayMs: 20, onEvent: (e) => events.push(e) });
    await expect(bridge.waitConnected(300)).rejects.toMatchObject({ code: 'ERR_VPCD_CONNECT' });
    // Repeated refusals are reported once per outage, not once per retry.
    expect(events.filter((e) => e.type === 'connect-failed')).toHaveLength(1);
  });
});

describe('VpcdBridge with the real VirtualCard under random frames', () => {
  it('answers every APDU and GET ATR, stays connected, whatever vpcd sends', async () => {
    const vpcd = new FakeVpcd();
    await vpcd.listen();
    const card = VirtualCard.create({ uid: bytes('04123456789ABC') });
    const b = await VpcdBridge.start({ frontEnd: new PcscFrontEnd(card), port: vpcd.port, reconnectDelayMs: 50 });
    try {
      await b.waitConnected(5000);
      await vpcd.accepted();
      const payload = fc.oneof(
        fc.constantFrom(bytes('00'), bytes('01'), bytes('02'), bytes('04'), bytes('03'), bytes('FF')),
        fc.uint8Array({ minLength: 2, maxLength: 80 }),
        fc.uint8Array({ minLength: 0, maxLength: 60 }).map((d) => Uint8Array.of(0x90, d[0] ?? 0x60, 0, 0, d.length, ...d, 0)),
        fc.constant(bytes('FFCA000000')),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(payload, { minLength: 1, maxLength: 12 }), async (frames) => {
          for (const f of frames) {
            vpcd.send(f);
            if (f.length === 1 && f[0] !== 0x04) continue; // control codes other than GET ATR get no answer
            const r = await vpcd.recv();
            if (f.length === 1) expect(hex(r)).toBe('3B8180018080');
            else expect(r.length).toBeGreaterThanOrEqual(2);
          }
          expect(vpcd.pendingAnswers).toBe(0);
        }),
        { numRuns: 60 },
      );
      expect(b.connected).toBe(true);
      expect(b.stats.connects).toBe(1);
      expect(card.internalErrors).toBe(0);
    } finally {
      await b.stop();
      await vpcd.close();
    }
  }, 60_000);
});

describe('VpcdBridge latency option', () => {
  async function run(latency: boolean) {
    const vpcd = new FakeVpcd();
    await vpcd.listen();
    // A card whose latency model says every command takes a minute.
    const card = Object.assign(new EchoCard(), { lastLatencyMs: 60_000 });
    const b = await VpcdBridge.start({ frontEnd: new PcscFrontEnd(card), port: vpcd.port, latency });
    await b.waitConnected(5000);
    await vpcd.accepted();
    vpcd.send(bytes('9060000000'));
    return { vpcd, b };
  }
  it('holds the answer for the card latency estimate when on (stop cuts the wait short)', async () => {
    const { vpcd, b } = await run(true);
    await expect(vpcd.recv(300)).rejects.toThrow(/no answer/);
    await b.stop();
    await vpcd.close();
  });
  it('answers at once when off (default)', async () => {
    const { vpcd, b } = await run(false);
    expect(hex(await vpcd.recv(10_000))).toBe('90600000009100');
    await b.stop();
    await vpcd.close();
  });
});

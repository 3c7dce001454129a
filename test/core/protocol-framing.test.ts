import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FrameError } from '../../src/core/errors.js';
import { fromHex, toHex } from '../../src/core/crypto/bytes.js';
import type { Transport } from '../../src/core/transport.js';
import {
  CARD_RESPONSE_FRAME_DATA, CommandAssembler, DEFAULT_COMMAND_FRAME_DATA, ResponseChain, commandApdus, exchange,
  responseApdus, unwrapCommand, unwrapResponse, wrapCommand, wrapResponse,
} from '../../src/core/protocol/index.js';

describe('ISO 7816-4 wrapping', () => {
  it('wraps as 90 INS 00 00 [Lc data] 00', () => {
    expect(toHex(wrapCommand(0x60))).toBe('9060000000');
    expect(toHex(wrapCommand(0x5a, fromHex('010000')))).toBe('905A00000301000000');
    expect(toHex(wrapResponse(0x00, fromHex('0401')))).toBe('04019100');
    expect(toHex(wrapResponse(0x9d))).toBe('919D');
  });

  it('round-trips commands and responses', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 255 }), (ins, data) => {
      const f = unwrapCommand(wrapCommand(ins, data));
      expect(f.ins).toBe(ins);
      expect(toHex(f.data)).toBe(toHex(data));
    }));
    fc.assert(fc.property(fc.constantFrom(0x00, 0xaf), fc.uint8Array({ maxLength: 256 }), (st, data) => {
      const r = unwrapResponse(wrapResponse(st, data));
      expect(r.status).toBe(st);
      expect(toHex(r.data)).toBe(toHex(data));
    }));
  });

  it('accepts a case-3 command without Le', () => {
    expect(toHex(unwrapCommand(fromHex('905A000003010000')).data)).toBe('010000');
  });

  it('rejects malformed command APDUs with FrameError', () => {
    for (const bad of ['', '9060', '90600000', '0060000000', '9060010000', '9060000001', '905A0000030100',
      '905A000003010000000000', '905A0000030100000001', '905A000000AA']) {
      expect(() => unwrapCommand(fromHex(bad)), bad).toThrow(FrameError);
    }
    expect(() => wrapCommand(0x3d, new Uint8Array(256))).toThrow(FrameError);
  });

  it('rejects malformed responses with FrameError', () => {
    expect(() => unwrapResponse(fromHex(''))).toThrow(FrameError);
    expect(() => unwrapResponse(fromHex('91'))).toThrow(FrameError);
    expect(() => unwrapResponse(fromHex('6A82'))).toThrow(FrameError);
    expect(() => unwrapResponse(fromHex('9000'))).toThrow(FrameError);
    expect(() => unwrapResponse(fromHex('00919D'))).toThrow(FrameError);
    expect(() => unwrapResponse(new Uint8Array(259))).toThrow(FrameError);
    expect(() => unwrapResponse(wrapResponse(0, new Uint8Array(60)), { maxData: 59 })).toThrow(FrameError);
  });

  it('never crashes on random command bytes: a frame or FrameError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      try {
        const f = unwrapCommand(b);
        expect(f.data.length).toBeLessThanOrEqual(255);
      } catch (e) {
        expect(e).toBeInstanceOf(FrameError);
      }
    }));
  });
});

/** A scripted card side built from the card helpers: joins AF frames, answers with a chain. */
function echoCard(expected: (ins: number, first: Uint8Array) => number): Transport & { log: string[] } {
  let asm: CommandAssembler | undefined;
  const chain = new ResponseChain();
  const log: string[] = [];
  return {
    log,
    async transmit(apdu) {
      log.push(toHex(apdu));
      const f = unwrapCommand(apdu);
      if (f.ins === 0xaf && chain.pending) return chain.next(apdu);
      chain.reset();
      if (f.ins === 0xaf && asm) asm.push(f.data);
      else asm = new CommandAssembler(f.ins, f.data, expected(f.ins, f.data));
      if (!asm.complete) return wrapResponse(0xaf);
      const data = asm.data();
      asm = undefined;
      return chain.start(0x00, Uint8Array.from([...data, ...data]));
    },
  };
}

describe('additional-frame chaining', () => {
  it('splits commands at 54 data bytes by default, continuing with AF', () => {
    const apdus = commandApdus(0x3d, new Uint8Array(120).fill(7));
    expect(apdus.map((a) => a.length)).toEqual([60, 60, 18]);
    expect(apdus[1]![1]).toBe(0xaf);
    expect(DEFAULT_COMMAND_FRAME_DATA).toBe(54);
    expect(commandApdus(0x60, new Uint8Array(0))).toHaveLength(1);
  });

  it('splits card responses into frames of 59 data bytes', () => {
    const r = responseApdus(0x00, new Uint8Array(130));
    expect(r.map((a) => a.length)).toEqual([61, 61, 14]);
    expect(toHex(r[0]!.slice(59))).toBe('91AF');
    expect(toHex(r[2]!.slice(12))).toBe('9100');
    expect(CARD_RESPONSE_FRAME_DATA).toBe(59);
    expect(responseApdus(0x00, new Uint8Array(59))).toHaveLength(1);
  });

  it('exchange joins both directions for any length', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), fc.integer({ min: 1, max: 255 }), async (payload, max) => {
      const card = echoCard(() => payload.length);
      const r = await exchange(card, 0x3d, payload, { maxFrameData: max });
      expect(r.status).toBe(0);
      expect(toHex(r.data)).toBe(toHex(Uint8Array.from([...payload, ...payload])));
      expect(r.frameSizes.reduce((a, b) => a + b, 0)).toBe(r.data.length);
      expect(r.frameSizes.slice(0, -1).every((n) => n === 59)).toBe(true);
    }), { numRuns: 60 });
  });

  it('stops early when the card refuses mid-chain', async () => {
    let n = 0;
    const card: Transport = { async transmit() { n++; return n === 1 ? wrapResponse(0xaf) : wrapResponse(0x7e); } };
    const r = await exchange(card, 0x3d, new Uint8Array(200));
    expect(r.status).toBe(0x7e);
    expect(n).toBe(2);
  });

  it('refuses a never-ending chain and a card that answers data mid-command', async () => {
    const forever: Transport = { async transmit() { return wrapResponse(0xaf, new Uint8Array(59)); } };
    await expect(exchange(forever, 0xbd, new Uint8Array(7), { maxResponse: 1000 })).rejects.toThrow(FrameError);
    const chatty: Transport = { async transmit() { return wrapResponse(0xaf, new Uint8Array(1)); } };
    await expect(exchange(chatty, 0x3d, new Uint8Array(100))).rejects.toThrow(FrameError);
  });

  it('card chain answers COMMAND_ABORTED to an unexpected AF; assembler refuses excess', () => {
    const chain = new ResponseChain();
    expect(toHex(chain.next(fromHex('90AF000000')))).toBe('91CA');
    expect(() => new CommandAssembler(0x3d, new Uint8Array(10), 5)).toThrow(FrameError);
  });
});

describe('chaining guards', () => {
  it('an empty AF answer after the whole command is a FrameError (no endless loop)', async () => {
    let n = 0;
    const card: Transport = { async transmit() { n++; return wrapResponse(0xaf); } };
    await expect(exchange(card, 0x60, new Uint8Array(0))).rejects.toThrow(FrameError);
    expect(n).toBe(1);
  });
});

describe('Node Buffers from a transport', () => {
  it('parsed frames are plain Uint8Array copies, not views of the Buffer', () => {
    const buf = Buffer.from('0102039100', 'hex');
    const r = unwrapResponse(buf);
    expect(Object.getPrototypeOf(r.data)).toBe(Uint8Array.prototype);
    buf[0] = 0xff;
    expect(toHex(r.data)).toBe('010203');
    const c = unwrapCommand(Buffer.from('905A00000301020300', 'hex'));
    expect(Object.getPrototypeOf(c.data)).toBe(Uint8Array.prototype);
  });
});

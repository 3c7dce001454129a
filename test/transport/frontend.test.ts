import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { PcscFrontEnd, contactlessAtr, pseudoApdu } from '../../src/transport/pcsc-frontend.js';
import { TransportError } from '../../src/transport/errors.js';
import { EchoCard, bytes, hex } from './fake-card.js';

describe('PC/SC part 3 ATR', () => {
  it('is 3B 81 80 01 80 80 for a DESFire (historical byte 80)', () => {
    expect(hex(contactlessAtr())).toBe('3B8180018080');
  });
  it('carries n historical bytes and a TCK that XORs T0..TCK to zero', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 15 }), (hist) => {
        const atr = contactlessAtr(hist);
        expect(atr[0]).toBe(0x3b);
        expect(atr[1]).toBe(0x80 | hist.length);
        expect(hex(atr.subarray(2, 4))).toBe('8001');
        expect(hex(atr.subarray(4, 4 + hist.length))).toBe(hex(hist));
        let x = 0;
        for (const b of atr.subarray(1)) x ^= b;
        expect(x).toBe(0);
      }),
    );
  });
  it('refuses more than 15 historical bytes', () => {
    expect(() => contactlessAtr(new Uint8Array(16))).toThrow(RangeError);
  });
});

describe('GET DATA pseudo-APDU', () => {
  const uid = bytes('04112233445566');
  const hist = bytes('80');
  it('FF CA 00 00 00 → UID || 90 00', () => {
    expect(hex(pseudoApdu(bytes('FFCA000000'), uid, hist))).toBe('041122334455669000');
  });
  it('Le = UID length → UID || 90 00; no Le (case 1) → all', () => {
    expect(hex(pseudoApdu(bytes('FFCA000007'), uid, hist))).toBe('041122334455669000');
    expect(hex(pseudoApdu(bytes('FFCA0000'), uid, hist))).toBe('041122334455669000');
  });
  it('Le too short → 6C with the exact length; too long → data with 62 82', () => {
    expect(hex(pseudoApdu(bytes('FFCA000004'), uid, hist))).toBe('6C07');
    expect(hex(pseudoApdu(bytes('FFCA000010'), uid, hist))).toBe('041122334455666282');
  });
  it('P1 = 01 → historical bytes of the ATS', () => {
    expect(hex(pseudoApdu(bytes('FFCA010000'), uid, hist))).toBe('809000');
  });
  it('errors: bad P1 6A81, bad P2 6B00, other INS 6D00, body 6700, short 6700', () => {
    expect(hex(pseudoApdu(bytes('FFCA020000'), uid, hist))).toBe('6A81');
    expect(hex(pseudoApdu(bytes('FFCA000100'), uid, hist))).toBe('6B00');
    expect(hex(pseudoApdu(bytes('FF82000006FFFFFFFFFFFF'), uid, hist))).toBe('6D00');
    expect(hex(pseudoApdu(bytes('FFCA00000100'), uid, hist))).toBe('6700');
    expect(hex(pseudoApdu(bytes('FFCA'), uid, hist))).toBe('6700');
  });
  it('never throws and always ends in a status word, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 40 }), (tail) => {
        const apdu = new Uint8Array(1 + tail.length);
        apdu[0] = 0xff;
        apdu.set(tail, 1);
        const r = pseudoApdu(apdu, uid, hist);
        expect(r.length).toBeGreaterThanOrEqual(2);
      }),
    );
  });
});

describe('PcscFrontEnd', () => {
  it('answers FF itself, hands everything else to the card', () => {
    const card = new EchoCard();
    const fe = new PcscFrontEnd(card);
    expect(hex(fe.transmit(bytes('FFCA000000')))).toBe('041122334455669000');
    expect(card.seen).toHaveLength(0);
    expect(hex(fe.transmit(bytes('9060000000')))).toBe('90600000009100');
    expect(card.seen).toHaveLength(1);
  });
  it('answers a card fault with 6F 00 instead of throwing', () => {
    const fe = new PcscFrontEnd(new EchoCard());
    expect(hex(fe.transmit(bytes('90EE000000')))).toBe('6F00');
  });
});

describe('InProcessTransport', () => {
  it('transmits through the front end and exposes the ATR', async () => {
    const card = new EchoCard();
    const t = new InProcessTransport(card);
    expect(hex(t.atr)).toBe('3B8180018080');
    expect(hex(await t.transmit(bytes('FFCA000000')))).toBe('041122334455669000');
    expect(hex(await t.transmit(bytes('906000000000')))).toBe('9060000000009100');
  });
  it('with pcsc: false passes FF APDUs to the card', async () => {
    const card = new EchoCard();
    const t = new InProcessTransport(card, { pcsc: false });
    expect(hex(await t.transmit(bytes('FFCA000000')))).toBe('FFCA0000009100');
  });
  it('applies the latency model', async () => {
    const card = new EchoCard();
    const calls: number[] = [];
    const t = new InProcessTransport(card, { latency: (c, r) => (calls.push(c.length + r.length), 1) });
    await t.transmit(bytes('9060000000'));
    expect(calls).toEqual([12]);
  });
  it('resets the card on reconnect', async () => {
    const card = new EchoCard();
    const t = new InProcessTransport(card);
    await t.reconnect();
    expect(card.resets).toBe(1);
  });
  it('refuses empty APDUs and use after close, with typed errors', async () => {
    const t = new InProcessTransport(new EchoCard());
    await expect(t.transmit(new Uint8Array(0))).rejects.toMatchObject({ code: 'ERR_TRANSPORT_APDU' });
    await t.close();
    const e = await t.transmit(bytes('9060000000')).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TransportError);
    expect(e).toMatchObject({ code: 'ERR_TRANSPORT_CLOSED' });
  });
});

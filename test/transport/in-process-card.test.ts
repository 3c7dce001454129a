// The in-process transport with the real virtual card and the host library on top.
import { describe, expect, it } from 'vitest';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { DesfireClient } from '../../src/core/client/index.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { FILE_DATA, personalise, readBack } from './personalise.js';
import { bytes, hex } from './fake-card.js';

const UID = bytes('04C0FFEE000001');

describe('InProcessTransport over the VirtualCard', () => {
  it('GET DATA gives the card UID; the ATR is the DESFire contactless one', async () => {
    const card = VirtualCard.create({ uid: UID });
    const t = new InProcessTransport(card);
    expect(hex(t.atr)).toBe('3B8180018080');
    expect(hex(await t.transmit(bytes('FFCA000000')))).toBe(hex(UID) + '9000');
  });

  it('carries GetVersion, EV2 authentication and a full-mode read', async () => {
    const card = VirtualCard.create({ uid: UID, profile: 'ev2' });
    const t = new InProcessTransport(card);
    await personalise(t);
    await t.reconnect(); // a new activation, as when a reader meets the card
    const c = new DesfireClient(t);
    const v = await c.getVersion();
    expect(hex(v.uid)).toBe(hex(UID));
    expect(hex(await readBack(c))).toBe(hex(FILE_DATA));
  });

  it('a reconnect (field reset) ends the card-side session: the next protected read fails', async () => {
    const card = VirtualCard.create({ uid: UID });
    const t = new InProcessTransport(card);
    await personalise(t);
    const c = new DesfireClient(t);
    await readBack(c);
    await t.reconnect();
    await expect(c.readData(1, 0, 32, { comm: 'full' })).rejects.toBeDefined();
  });

  it('reports state changes through the card (onChange) as commands change it', async () => {
    const card = VirtualCard.create({ uid: UID });
    let changes = 0;
    card.onChange = () => changes++;
    const t = new InProcessTransport(card);
    await t.transmit(bytes('9060000000')); // GetVersion: no change
    expect(changes).toBe(0);
    await personalise(t);
    expect(changes).toBeGreaterThan(0);
  });
});

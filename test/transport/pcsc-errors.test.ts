// Typed errors of the PC/SC transport and the latency option of the in-process one (no pcscd
// needed: pcsclite's messages carry the PC/SC return codes, mapped here to stable codes).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { latencyModel } from '../../src/card/latency.js';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { pcscError } from '../../src/transport/pcsc.js';
import { TransportError } from '../../src/transport/errors.js';
import { bytes } from './fake-card.js';
import { requireComponent } from '../helpers/system.js';

describe('PcscContext.open without pcscd', () => {
  it('fails with ERR_PCSC_NO_SERVICE (libpcsclite pointed at a socket nobody serves)', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'test/transport/fixtures/open-context.ts'], {
      env: { ...process.env, PCSCLITE_CSOCK_NAME: '/nonexistent/pcscd.comm' },
      timeout: 30_000,
    });
    const r = JSON.parse(stdout.trim().split('\n').pop()!) as { ok: boolean; code?: string; message?: string };
    if (r.code === 'ERR_PCSC_UNAVAILABLE' && !requireComponent('pcsclite', { ok: false, reason: r.message ?? '' })) return;
    expect(r).toMatchObject({ ok: false, code: 'ERR_PCSC_NO_SERVICE' });
    expect(r.message).toMatch(/pcscd is not running/);
  }, 40_000);
});

describe('pcscError', () => {
  it.each([
    ['SCardEstablishContext error: Service not available.(0x8010001D)', 'ERR_PCSC_NO_SERVICE'],
    ['SCardConnect error: No smart card inserted.(0x8010000C)', 'ERR_PCSC_NO_CARD'],
    ['SCardTransmit error: The smart card has been removed.(0x80100069)', 'ERR_PCSC_NO_CARD'],
    ['SCardConnect error: Unknown reader specified.(0x80100009)', 'ERR_PCSC_NO_READER'],
    ['SCardTransmit error: Transaction failed.(0x80100016)', 'ERR_PCSC_IO'],
  ])('%s → %s', (msg, code) => {
    const e = pcscError(new Error(msg), 'op');
    expect(e).toBeInstanceOf(TransportError);
    expect(e.code).toBe(code);
    expect(e.message).toContain(msg);
  });
  it('passes a TransportError through unchanged', () => {
    const t = new TransportError('ERR_PCSC_TIMEOUT', 'x');
    expect(pcscError(t, 'op')).toBe(t);
  });
});

describe('InProcessTransport latency: true', () => {
  afterEach(() => vi.useRealTimers());
  it('waits for the card latency model estimate before answering', async () => {
    vi.useFakeTimers();
    const card = VirtualCard.create({ latency: latencyModel(106) });
    const t = new InProcessTransport(card, { latency: true });
    let done = false;
    const p = t.transmit(bytes('9060000000')).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(card.lastLatencyMs).toBeGreaterThan(0.5);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(Math.ceil(card.lastLatencyMs) + 1);
    await p;
    expect(done).toBe(true);
  });
  it('is off by default', async () => {
    vi.useFakeTimers();
    const card = VirtualCard.create({ latency: latencyModel(106) });
    const t = new InProcessTransport(card);
    let done = false;
    const p = t.transmit(bytes('9060000000')).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(0);
    await p;
    expect(done).toBe(true);
  });
});

// The real PC/SC path: pcscd with vsmartcard's vpcd driver, the virtual card attached by a spawned
// `desfire-cms card serve`, the host library talking through pcsclite, and pcsc-tools' pcsc_scan
// and scriptor seeing reader and card. Skips with a reason when pcscd/vpcd are absent (fails
// under CI=true). Uses vpcd slot 1 (port 35963 + 1, reader "Virtual PCD 00 01") so slot 0 stays
// free for a developer's own `card serve`.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadImageSync, saveImageAtomicSync } from '../../src/card/image-file.js';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { DesfireClient } from '../../src/core/client/index.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { PcscContext, type PcscTransport } from '../../src/transport/pcsc.js';
import { type Availability, VPCD, fileExists, requireComponent, tcpReachable } from '../helpers/system.js';
import { bytes, hex } from './fake-card.js';
import { AID, FILE_DATA, KEY1, personalise, readBack } from './personalise.js';

const run = promisify(execFile);
const [VHOST, VPORT0] = [VPCD.split(':')[0] || '127.0.0.1', Number(VPCD.split(':')[1] || 35963)];
const PORT = VPORT0 + 1;
const READER = 'Virtual PCD 00 01';
const UID = bytes('04DE5F1E000C11');

/**
 * Is something listening on PORT? On Linux read /proc/net/tcp rather than connect: a connection
 * to vpcd looks like a card being inserted.
 */
async function listening(port: number): Promise<Availability> {
  if (!existsSync('/proc/net/tcp')) return tcpReachable(VHOST, port);
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const re = new RegExp(`^\\s*\\d+: [0-9A-F]{8}:${hexPort} [0-9A-F]{8}:0000 0A `, 'im');
  return re.test(readFileSync('/proc/net/tcp', 'utf8')) ? { ok: true, reason: '' } : { ok: false, reason: `nothing listens on TCP port ${port} (pcscd without the vpcd driver?)` };
}

async function available(): Promise<boolean> {
  const sock = fileExists('/run/pcscd/pcscd.comm', 'pcscd socket');
  if (!requireComponent('pcscd', sock)) return false;
  if (!requireComponent('vpcd (slot 1)', await listening(PORT))) return false;
  if (!requireComponent('pcsc-tools', fileExists('/usr/bin/pcsc_scan', 'pcsc_scan'))) return false;
  return true;
}

const ok = await available();

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
}

describe.skipIf(!ok)('real PC/SC: pcscd + vpcd + card serve + pcsclite', () => {
  let dir: string;
  let image: string;
  let serve: ChildProcess;
  let out = '';
  let ctx: PcscContext;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'desfire-pcsc-'));
    image = join(dir, 'card.json');
    // Personalise in-process first, then hand the image to `card serve`.
    const card = VirtualCard.create({ uid: UID, profile: 'ev2' });
    await personalise(new InProcessTransport(card));
    saveImageAtomicSync(image, card.toImage());
    serve = spawn(process.execPath, ['--import', 'tsx', 'src/cli/dev.ts', 'card', 'serve', '--vpcd', `${VHOST}:${PORT}`, '--image', image], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    serve.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    serve.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => /attached to vpcd/.test(out) || serve.exitCode !== null, 30_000);
    if (!/attached to vpcd/.test(out)) throw new Error(`card serve did not attach: ${out}`);
    if (!/quick-ACK on/.test(out)) throw new Error(`card serve runs without TCP quick-ACK: ${out}`);
    ctx = await PcscContext.open();
  }, 60_000);

  afterAll(async () => {
    await ctx?.close();
    if (serve && serve.exitCode === null) serve.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pcscd shows the reader with the card in it, with the contactless DESFire ATR', async () => {
    const st = await ctx.waitForCard(READER, 20_000);
    expect(st.name).toBe(READER);
    expect(hex(st.atr!)).toBe('3B8180018080');
  }, 30_000);

  it('the host library over pcsclite: GET DATA UID, GetVersion, EV2 authenticate, full-mode read, write persisted', async () => {
    await ctx.waitForCard(READER, 20_000);
    const t: PcscTransport = await ctx.connect(READER, { protocol: 'T1' });
    try {
      expect(hex(t.atr)).toBe('3B8180018080');
      expect(hex(await t.transmit(bytes('FFCA000000')))).toBe(hex(UID) + '9000');
      const c = new DesfireClient(t);
      const v = await c.getVersion();
      expect(hex(v.uid)).toBe(hex(UID));
      expect(hex(await readBack(c))).toBe(hex(FILE_DATA));
      // A write through PC/SC is in the image file by the time its answer arrives.
      const fresh = Uint8Array.from(FILE_DATA, (b) => b ^ 0x5a);
      await c.writeData(1, 0, fresh, { comm: 'full' });
      const saved = loadImageSync(image);
      const app = saved.apps.find((a) => a.aid === AID.toString(16).toUpperCase().padStart(6, '0'));
      expect(app?.files.find((f) => f.fileNo === 1)?.data?.toUpperCase()).toBe(hex(fresh));
      // A wrong key is refused by the card (status AE through the whole PC/SC path).
      await c.selectApplication(AID);
      await expect(c.authenticate(1, KEY1.map((b) => b ^ 1), { method: 'ev2' })).rejects.toBeDefined();
    } finally {
      await t.close('reset');
    }
  }, 60_000);

  it('connects with protocol "any" (exclusive): pcscd negotiates T=1 for the contactless card', async () => {
    await ctx.waitForCard(READER, 20_000);
    const t = await ctx.connect(READER, { protocol: 'any', share: 'exclusive' });
    try {
      expect(t.protocol).toBe(2); // SCARD_PROTOCOL_T1
      expect(hex(await t.transmit(bytes('FFCA000000')))).toBe(hex(UID) + '9000');
    } finally {
      await t.close('leave');
    }
    await expect(t.transmit(bytes('FFCA000000'))).rejects.toMatchObject({ code: 'ERR_TRANSPORT_CLOSED' });
  }, 30_000);

  it('pcsc_scan lists the reader and sees the card and its ATR', async () => {
    const readers = await run('pcsc_scan', ['-r'], { timeout: 20_000 });
    expect(readers.stdout).toContain(READER);
    const cards = await run('pcsc_scan', ['-c', '-n', '-t', '2'], { timeout: 30_000 }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    const section = cards.stdout.slice(cards.stdout.lastIndexOf(READER));
    expect(section).toMatch(/Card inserted/);
    expect(section).toMatch(/3B 81 80 01 80 80/);
  }, 60_000);

  it('scriptor sends APDUs through pcscd to the card', async () => {
    const p = execFile('scriptor', ['-r', READER], { timeout: 30_000 });
    p.stdin!.end('ff ca 00 00 00\n90 60 00 00 00\n');
    let stdout = '';
    p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((r) => p.on('close', r));
    expect(code).toBe(0);
    const uidSpaced = hex(UID).match(/../g)!.join(' ');
    expect(stdout.toUpperCase()).toContain(`< ${uidSpaced} 90 00`);
    // GetVersion's first frame: hardware info, then 91 AF (more frames).
    expect(stdout.toUpperCase()).toMatch(/< 04 01 .* 91 AF/);
  }, 60_000);

  it('card serve stops cleanly on SIGTERM and the card leaves the reader', async () => {
    serve.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => (serve.exitCode !== null ? r(serve.exitCode) : serve.once('exit', (c) => r(c))));
    expect(code).toBe(0);
    expect(out).toMatch(/stopped; image saved/);
    await ctx.waitForRemoval(READER, 20_000);
    expect(ctx.listReaders().find((r) => r.name === READER)?.present ?? false).toBe(false);
  }, 60_000);
});

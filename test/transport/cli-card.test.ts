// `desfire-cms card create|show|list|serve`, run in-process through main() (serve against a fake
// vpcd, stopped through its AbortSignal).
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadImageSync, saveImageAtomicSync } from '../../src/card/image-file.js';
import { VirtualCard } from '../../src/card/virtual-card.js';
import { serve } from '../../src/cli/commands/card.js';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { CardServer, lockImage } from '../../src/transport/card-server.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { bytes, hex } from './fake-card.js';
import { FakeVpcd } from './fake-vpcd.js';
import { KEY1, personalise } from './personalise.js';

function capture(cwd: string): CliIO & { outs: string[]; errs: string[] } {
  const outs: string[] = [];
  const errs: string[] = [];
  return { out: (l) => outs.push(l), err: (l) => errs.push(l), env: {}, cwd, outs, errs };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'desfire-cli-card-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('card create / show / list', () => {
  it('creates a factory-fresh image (mode 0600) and refuses to overwrite it without --force', async () => {
    const io = capture(dir);
    expect(await main(['card', 'create', '--image', 'a.json', '--uid', '04 A1 B2 C3 D4 E5 F6', '--profile', 'ev3'], io)).toBe(0);
    const img = loadImageSync(join(dir, 'a.json'));
    expect(img.uid).toBe('04A1B2C3D4E5F6');
    expect(img.profile).toBe('ev3');
    expect(img.apps).toHaveLength(0);
    expect(statSync(join(dir, 'a.json')).mode & 0o777).toBe(0o600);
    expect(await main(['card', 'create', '--image', 'a.json'], io)).toBe(1);
    expect(io.errs.join('\n')).toMatch(/exists/);
    expect(await main(['card', 'create', '--image', 'a.json', '--force'], io)).toBe(0);
    expect(loadImageSync(join(dir, 'a.json')).uid).not.toBe('04A1B2C3D4E5F6');
  });

  it('bad arguments exit 2 with a line naming the argument', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['card', 'create'], /--image is required/],
      [['card', 'create', '--image', 'x.json', '--uid', '0411'], /--uid/],
      [['card', 'create', '--image', 'x.json', '--profile', 'ev4'], /--profile/],
      [['card', 'create', '--image'], /--image needs a value/],
      [['card', 'show', '--image', 'x.json', '--bogus'], /unknown option --bogus/],
      [['card', 'serve', '--image', 'x.json', '--vpcd', 'h:70000'], /--vpcd/],
      [['card', 'serve', '--image', 'x.json', '--latency', '100'], /--latency/],
      [['card', 'frobnicate'], /unknown subcommand/],
      [['card'], /missing subcommand/],
    ];
    for (const [argv, re] of cases) {
      const io = capture(dir);
      expect(await main(argv, io), argv.join(' ')).toBe(2);
      expect(io.errs.join('\n'), argv.join(' ')).toMatch(re);
    }
  });

  it('show summarises apps, files and key versions but never prints a key value', async () => {
    const card = VirtualCard.create({ uid: bytes('04000000000077') });
    await personalise(new InProcessTransport(card));
    saveImageAtomicSync(join(dir, 'p.json'), card.toImage());
    const io = capture(dir);
    expect(await main(['card', 'show', '--image', 'p.json'], io)).toBe(0);
    const text = io.outs.join('\n');
    expect(text).toMatch(/uid\s+04000000000077/);
    expect(text).toMatch(/app 0CA4D1 .*2 aes keys \(versions 0,1\)/);
    expect(text).toMatch(/file 01\s+std\s+comm full\s+access 1011\s+size 32/);
    const json = capture(dir);
    expect(await main(['card', 'show', '--image', 'p.json', '--json'], json)).toBe(0);
    const parsed = JSON.parse(json.outs.join('\n')) as { apps: Array<{ keyVersions: number[] }> };
    expect(parsed.apps[0]!.keyVersions).toEqual([0, 1]);
    for (const t of [text, json.outs.join('\n')]) {
      expect(t.toUpperCase()).not.toContain(hex(KEY1));
      expect(t).not.toMatch(/"key"/);
    }
  });

  it('show fails (exit 1) on a file that is not a card image', async () => {
    writeFileSync(join(dir, 'bad.json'), '{"format":"nope"}');
    const io = capture(dir);
    expect(await main(['card', 'show', '--image', 'bad.json'], io)).toBe(1);
    expect(io.errs.join('\n')).toMatch(/ERR_CARD_IMAGE/);
  });

  it('list shows every card image in a directory and reports the others', async () => {
    const io = capture(dir);
    await main(['card', 'create', '--image', 'one.json', '--uid', '04000000000001'], io);
    await main(['card', 'create', '--image', 'two.json', '--uid', '04000000000002', '--profile', 'ev1'], io);
    writeFileSync(join(dir, 'junk.json'), '[]');
    writeFileSync(join(dir, 'notes.txt'), 'ignored');
    const l = capture(dir);
    expect(await main(['card', 'list', '--dir', '.'], l)).toBe(0);
    expect(l.outs).toEqual(['one.json  04000000000001  ev2  0 apps', 'two.json  04000000000002  ev1  0 apps', `2 cards in ${dir}`]);
    expect(l.errs.join('\n')).toMatch(/junk\.json: not a card image/);
  });
});

describe('card serve (against a fake vpcd)', () => {
  it('creates the image if missing, answers vpcd, saves each state change before answering, stops on abort', async () => {
    const vpcd = new FakeVpcd();
    await vpcd.listen();
    const io = capture(dir);
    const ac = new AbortController();
    const done = serve(['--vpcd', `127.0.0.1:${vpcd.port}`, '--image', 'served.json', '--uid', '04111111111111', '--verbose', '--latency', '848'], io, ac.signal);
    try {
      await vpcd.accepted();
      expect(hex(await vpcd.exchange(bytes('04')))).toBe('3B8180018080');
      expect(hex(await vpcd.exchange(bytes('FFCA000000')))).toBe('041111111111119000');
      // CreateApplication needs no authentication under the factory key settings 0x0F.
      expect(hex(await vpcd.exchange(bytes('90CA0000052211330F0100')))).toBe('9100');
      expect(loadImageSync(join(dir, 'served.json')).apps.map((a) => a.aid)).toEqual(['331122']);
      // A failing command changes nothing and is not saved.
      expect(hex(await vpcd.exchange(bytes('90CA0000052211330F0100')))).toBe('91DE');
    } finally {
      ac.abort();
      expect(await done).toBe(0);
      await vpcd.close();
    }
    const text = io.outs.join('\n');
    expect(text).toMatch(/created .*served\.json/);
    expect(text).toMatch(/attached to vpcd at 127\.0\.0\.1:\d+ \(TCP quick-ACK (on|off)\)/);
    expect(text).toMatch(/apdu CA -> 9100/);
    expect(text).toMatch(/saved .*served\.json/);
    expect(text).toMatch(/stopped; image saved/);
  });

  it('refuses an existing image whose UID differs from --uid', async () => {
    const io = capture(dir);
    await main(['card', 'create', '--image', 'c.json', '--uid', '04000000000003'], io);
    const e = capture(dir);
    expect(await main(['card', 'serve', '--image', 'c.json', '--uid', '04000000000004', '--vpcd', '127.0.0.1:1'], e)).toBe(1);
    expect(e.errs.join('\n')).toMatch(/ERR_CARD_IMAGE_MISMATCH/);
  });
});

describe('image lock', () => {
  it('one card serve per image: a live holder refuses a second, a stale lock is taken over, stop releases', async () => {
    const image = join(dir, 'locked.json');
    const vpcd = new FakeVpcd();
    await vpcd.listen();
    const s1 = await CardServer.start({ image, port: vpcd.port });
    try {
      await expect(CardServer.start({ image, port: vpcd.port })).rejects.toMatchObject({ code: 'ERR_CARD_IMAGE_LOCKED' });
    } finally {
      await s1.stop();
      await vpcd.close();
    }
    // Released on stop: the lock can be taken again.
    const release = lockImage(image);
    release();
    // A lock left by a process that no longer exists is stale.
    writeFileSync(`${image}.lock`, '2147483646\n');
    const again = lockImage(image);
    again();
  });
});

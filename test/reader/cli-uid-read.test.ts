// `desfire-cms reader run --uid-read KEYNO` end to end (the CLI in process, the whole CMS over
// HTTPS + mTLS, station jobs): a campus card issued with random UID answers a fresh random ID
// (08 xx xx xx) at every activation; with the access application's uid-read key the reader runs
// GetCardUID, asks the CMS for its role key by the real UID and decides. Without the flag, or
// without the reader's 'offline-master' role on that key, the card is refused; bad values are
// usage errors that touch nothing.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadImage, saveImageAtomicSync } from '../../src/card/image-file.js';
import { VirtualCard } from '../../src/card/virtual-card.js';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { isRandomId, readUid } from '../../src/reader/transactions.js';
import { InProcessTransport } from '../../src/transport/in-process.js';
import { type StationCms, startStationCms } from './e2e-helpers.js';

// examples/campus.yaml (random UID at the PICC) with a uid-read key in the access application
const WRITE_KEY = '          - { no: 2, role: write, description: badge office writes the credential }\n';
const campus = readFileSync('examples/campus.yaml', 'utf8');
const LAYOUT = campus.replace(WRITE_KEY, `${WRITE_KEY}          - { no: 3, role: uid-read, description: GetCardUID of random-UID cards }\n`);

let s: StationCms;
beforeAll(async () => {
  expect(LAYOUT).not.toBe(campus);
  s = await startStationCms({ layout: LAYOUT });
}, 60_000);
afterAll(async () => s?.close());

function io(): CliIO & { o: string[]; e: string[] } {
  const o: string[] = [];
  const e: string[] = [];
  return { out: (l) => o.push(l), err: (l) => e.push(l), env: {}, cwd: process.cwd(), o, e };
}

const baton = async (reader: string) =>
  (await s.cms.deps.domain!.db.selectFrom('reader_baton').select(['seq', 'op', 'result', 'card_uid']).where('reader_id', '=', reader).orderBy('seq').execute()).map((b) => [Number(b.seq), b.op, b.result, b.card_uid]);

describe('desfire-cms reader run --uid-read (random-UID cards)', () => {
  it('the real UID through the uid-read key: granted / denied by it; without the flag or the role: refused', async () => {
    const { card, uid } = await s.personalisedCard({ randomUid: true });
    const image = join(mkdtempSync(join(tmpdir(), 'uid-read-card-')), 'card.json');
    saveImageAtomicSync(image, card.toImage());
    // the image is a random-UID card: a fresh random ID at every activation, never the real UID
    const rf = await readUid(new InProcessTransport(VirtualCard.fromImage(await loadImage(image))));
    expect(isRandomId(rf)).toBe(true);
    expect(rf).not.toBe(uid);

    const door = await s.enrolled('uid-door', [
      { tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver'] },
      { tenantId: 'access', aid: 'A1C001', keyNo: 3, operations: ['offline-master'] },
    ]);
    const base = ['reader', 'run', '--dir', door.dir, '--cms', s.url, '--servername', 'localhost', '--passphrase-file', door.passFile, '--image', image, '--tx', 'access'];

    // without --uid-read: the random ID is no card's identity; refused before any key is asked for
    const a = io();
    expect(await main([...base, '--zone', '1'], a)).toBe(1);
    expect(a.o).toEqual([]);
    expect(a.e).toEqual([expect.stringMatching(/^refused: ERR_READER_CARD: the card answers a random ID and no uid-read key is configured for AID A1C001/)]);

    const b = io();
    expect(await main([...base, '--zone', '1', '--uid-read', '3'], b)).toBe(0);
    expect(b.e).toEqual([]);
    expect(b.o).toEqual([expect.stringMatching(new RegExp(`^access-check card ${uid}: granted \\(online, baton #\\d+\\)$`))]);
    const c = io();
    expect(await main([...base, '--zone=2', '--uid-read=3', '--json'], c)).toBe(1);
    expect(JSON.parse(c.o[0]!)).toMatchObject({ uid, op: 'access-check', result: 'denied:zone', ok: false, mode: 'online' });
    // the baton at the CMS: the uid-read master received (each run holds it in memory only), the
    // transactions by the real UID, never the random ID
    const entries = await baton('uid-door');
    expect(entries.filter(([, op]) => op !== 'master-received').map(([, op, result, cardUid]) => [op, result, cardUid])).toEqual([
      ['access-check', 'granted', uid],
      ['access-check', 'denied:zone', uid],
    ]);
    expect(entries.filter(([, op]) => op === 'master-received')).toContainEqual([expect.any(Number), 'master-received', 'ok', '']);

    // a reader without the 'offline-master' role on the uid-read key cannot read the UID
    const other = await s.enrolled('uid-door-2', [{ tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver'] }]);
    const d = io();
    expect(await main(['reader', 'run', '--dir', other.dir, '--cms', s.url, '--servername', 'localhost', '--passphrase-file', other.passFile, '--image', image, '--tx', 'access', '--uid-read', '3'], d)).toBe(1);
    expect(d.o).toEqual([]);
    expect(d.e).toEqual([expect.stringMatching(/^refused: ERR_READER_NO_ROLE: /)]);
    expect(d.e.join('\n')).not.toContain(uid);
    expect(await baton('uid-door-2')).toEqual([]);

    // bad values: usage errors (exit 2) that name the flag, before the keystore is opened
    for (const [args, re] of [
      [['--uid-read', '14'], /--uid-read must be a key number in 0\.\.13/],
      [['--uid-read', 'x'], /--uid-read must be a key number in 0\.\.13 .*got 'x'/],
      [['--uid-read', '-1'], /--uid-read must be a key number in 0\.\.13/],
      [['--uid-read', '1'], /--uid-read 1 is a key of the --tx access transaction itself \(key 1 of AID A1C001\)/],
      [['--tx', 'purse', '--amount', '5', '--uid-read', '1'], /--uid-read 1 is a key of the --tx purse transaction itself \(key 1 of AID CAFE01\)/],
      [['--tx', 'loan', '--item', 'BOOK0001', '--uid-read', '2'], /--uid-read 2 is a key of the --tx loan transaction itself \(keys 1, 2 of AID 11B001\)/],
    ] as const) {
      const u = io();
      expect(await main([...base, ...args], u)).toBe(2);
      expect(u.e).toEqual([expect.stringMatching(re)]);
    }
    const e = io();
    expect(await main([...base, '--uid-read'], e)).toBe(2);
    expect(e.e).toEqual(['desfire-cms reader: --uid-read needs a value']);
    expect(await baton('uid-door')).toEqual(entries);
  }, 180_000);
});

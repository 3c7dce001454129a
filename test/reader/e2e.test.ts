// End to end with the real CMS (station jobs and online key delivery attached) over HTTPS + mTLS:
// a card personalised through station jobs, then `desfire-cms reader run` (the CLI, in-process)
// performs the access-control transaction with the key the CMS delivers online; the baton reaches
// the CMS; a transaction outside the reader's role is refused before the card is touched.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveImageAtomicSync } from '../../src/card/image-file.js';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { type StationCms, startStationCms } from './e2e-helpers.js';

let s: StationCms;
beforeAll(async () => {
  s = await startStationCms();
}, 60_000);
afterAll(async () => s?.close());

describe('reader agent end to end (station jobs + online delivery + CLI)', () => {
  it('`desfire-cms reader run --image --tx access`: granted / denied online, baton at the CMS, no role → refused', async () => {
    const { card, uid } = await s.personalisedCard();
    const image = join(mkdtempSync(join(tmpdir(), 'e2e-card-')), 'card.json');
    saveImageAtomicSync(image, card.toImage());
    const door = await s.enrolled('door-1', [{ tenantId: 'access', aid: 'A1C001', keyNo: 1, operations: ['deliver', 'offline'] }]);
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env: {}, cwd: process.cwd() };
    const base = ['reader', 'run', '--dir', door.dir, '--cms', s.url, '--servername', 'localhost', '--passphrase-file', door.passFile, '--image', image];
    expect(await main([...base, '--tx', 'access', '--zone', '1'], io)).toBe(0);
    expect(err).toEqual([]);
    expect(out[0]).toBe(`access-check card ${uid}: granted (online, baton #1)`);
    expect(await main([...base, '--tx', 'access', '--zone', '2'], io)).toBe(1);
    expect([out[1], err]).toEqual([`access-check card ${uid}: denied:zone (online, baton #2)`, []]);
    const baton = await s.cms.deps.domain!.db.selectFrom('reader_baton').select(['seq', 'op', 'result', 'card_uid']).where('reader_id', '=', 'door-1').orderBy('seq').execute();
    expect(baton.map((b) => [Number(b.seq), b.op, b.result, b.card_uid])).toEqual([
      [1, 'access-check', 'granted', uid],
      [2, 'access-check', 'denied:zone', uid],
    ]);
    expect(await main([...base, '--tx', 'purse', '--amount', '1'], io)).toBe(1);
    expect(err.at(-1)).toMatch(/ERR_READER_NO_ROLE/);
  }, 120_000);
});

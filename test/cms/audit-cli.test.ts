// `desfire-cms audit ...` in-process: export, verify a file and the live database (naming the
// first bad entry), tenant export, checkpoint, prune, alerts, usage errors.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/io.js';
import { openDatabase } from '../../src/cms/storage/index.js';
import { openAudit } from '../../src/cms/audit/index.js';
import { sampleEntry } from './audit-fixture.js';

function io(cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  const x: CliIO = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: {}, cwd };
  return { io: x, out, err };
}

describe('desfire-cms audit', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'desfire-audit-cli-'));
    const h = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'cms.sqlite') });
    const a = await openAudit({ handle: h, keyDir: dir, origin: 'cli.test/audit' });
    for (let i = 0; i < 30; i++) await a.log.record({ ...sampleEntry(i), time: Date.now() - (30 - i) * 86_400_000 });
    await a.log.checkpoint();
    for (let i = 0; i < 6; i++) await a.log.record({ time: Date.now(), readerId: 'reader-x', cardUid: '04A1B2C3D4E5F6', operation: 'card.authenticate', result: 'error' });
    await a.close();
    await h.close();
  }, 30_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exports, and the export verifies with the pinned key; a changed line is named', async () => {
    const file = path.join(dir, 'full.jsonl');
    const x = io(dir);
    expect(await main(['audit', 'export', '--data-dir', '.', '--out', 'full.jsonl'], x.io)).toBe(0);
    expect(x.out[0]).toMatch(/exported 36 entries/);
    const v = io(dir);
    expect(await main(['audit', 'verify', '--file', file, '--key-file', 'audit-checkpoint.vkey', '--origin', 'cli.test/audit'], v.io)).toBe(0);
    expect(v.out[0]).toMatch(/^OK full: 36 entries/);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const i = lines.findIndex((l) => l.includes('"index":7,'));
    lines[i] = lines[i]!.replace('"result":"ok"', '"result":"denied"');
    writeFileSync(path.join(dir, 'bad.jsonl'), lines.join('\n') + '\n');
    const b = io(dir);
    expect(await main(['audit', 'verify', '--file', 'bad.jsonl', '--key-file', 'audit-checkpoint.vkey'], b.io)).toBe(1);
    expect(b.out[0]).toMatch(/^FAIL: entry 7: .*changed.*\(line \d+\)/);
    // another key does not verify it
    const k = io(dir);
    const vkey = readFileSync(path.join(dir, 'audit-checkpoint.vkey'), 'utf8').trim();
    const other = vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+');
    expect(await main(['audit', 'verify', '--file', file, '--key', other], k.io)).toBe(2); // malformed key → usage
  });

  it('verifies the live database, and names a changed row', async () => {
    const v = io(dir);
    expect(await main(['audit', 'verify', '--data-dir', '.'], v.io)).toBe(0);
    expect(v.out[0]).toMatch(/^OK full/);
    expect(v.err.join('\n')).toMatch(/pin it with --key/);
    const h = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'cms.sqlite') });
    await h.db.updateTable('audit_entries').set({ card_uid: '04FFFFFFFFFFFF' }).where('idx', '=', 12).execute();
    await h.close();
    const b = io(dir);
    expect(await main(['audit', 'verify', '--data-dir', '.'], b.io)).toBe(1);
    expect(b.out[0]).toMatch(/^FAIL: entry 12:/);
    const h2 = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'cms.sqlite') });
    const orig = sampleEntry(12).cardUid!;
    await h2.db.updateTable('audit_entries').set({ card_uid: orig }).where('idx', '=', 12).execute();
    await h2.close();
    expect(await main(['audit', 'verify', '--data-dir', '.'], io(dir).io)).toBe(0);
  });

  it("a tenant export holds only that tenant's entries and verifies as a view", async () => {
    const x = io(dir);
    expect(await main(['audit', 'export', '--data-dir', '.', '--tenant', 'tenant-b', '--out', 'b.jsonl'], x.io)).toBe(0);
    const text = readFileSync(path.join(dir, 'b.jsonl'), 'utf8');
    expect(text).not.toMatch(/tenant-a/);
    const v = io(dir);
    expect(await main(['audit', 'verify', '--file', 'b.jsonl', '--key-file', 'audit-checkpoint.vkey'], v.io)).toBe(0);
    expect(v.out[0]).toMatch(/^OK view: 10 entries/);
  });

  it('checkpoint prints a signed note; alerts lists what the rules raised', async () => {
    const c = io(dir);
    expect(await main(['audit', 'checkpoint', '--data-dir', '.'], c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(/^cli\.test\/audit\n\d+\n[A-Za-z0-9+/=]+\n\n\u2014 /);
    const a = io(dir);
    expect(await main(['audit', 'alerts', '--data-dir', '.'], a.io)).toBe(0);
    expect(a.out.join('\n')).toMatch(/failed-auth-card/);
  });

  it('prune exports first, keeps leaf hashes, and the database still verifies', async () => {
    const p = io(dir);
    expect(await main(['audit', 'prune', '--data-dir', '.', '--older-than-days', '20', '--out', 'archive.jsonl'], p.io)).toBe(0);
    expect(p.out[0]).toMatch(/pruned 1\d entry bodies/);
    const v = io(dir);
    expect(await main(['audit', 'verify', '--data-dir', '.'], v.io)).toBe(0);
    expect(v.out[0]).toMatch(/pruned leaves/);
    expect(await main(['audit', 'verify', '--file', 'archive.jsonl', '--key-file', 'audit-checkpoint.vkey'], io(dir).io)).toBe(0);
  });

  it('bad arguments exit 2 with a one-line message', async () => {
    for (const argv of [
      ['audit'],
      ['audit', 'nope'],
      ['audit', 'verify'],
      ['audit', 'verify', '--file', 'missing.jsonl', '--key', 'x'],
      ['audit', 'export', '--data-dir', '.'],
      ['audit', 'export', '--data-dir', '.', '--out', 'full.jsonl'], // exists
      ['audit', 'export', '--db', 'mysql://x', '--out', 'y'],
      ['audit', 'prune', '--data-dir', '.', '--older-than-days', '0', '--out', 'z'],
      ['audit', 'verify', '--data-dir', '/nonexistent-dir'],
      ['audit', 'verify', '--bogus', '1'],
    ]) {
      const x = io(dir);
      expect(await main(argv, x.io), argv.join(' ')).toBe(2);
    }
  });
});

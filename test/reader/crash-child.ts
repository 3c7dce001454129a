// Child process for the kill -9 test: appends operations to a baton (printing "DONE <seq>" only
// after each entry is fsync'd, i.e. when the operation is reported done), then syncs with the CMS
// and prints "STORED <acked>" when the CMS has answered — and waits before recording the
// acknowledgement, so the parent's SIGKILL lands between the CMS storing the batch and the ack.
// argv: <batonDir> <credsDir> <url> <count> <mode: append|sync>
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditBaton } from '../../src/reader/baton.js';
import { CmsClient } from '../../src/reader/cms-client.js';

const [dir, creds, url, countS, mode] = process.argv.slice(2) as [string, string, string, string, string];
const baton = AuditBaton.open(dir);
const count = Number(countS);
for (let i = 0; i < count; i++) {
  const e = baton.append({ time: Date.now(), readerId: 'crash-1', cardUid: '04AABBCCDDEEFF', aid: 'CAFE01', keyNo: 1, keyVersion: 1, op: 'purse-debit', result: `ok:1:${i}` });
  process.stdout.write(`DONE ${e.seq}\n`);
}
if (mode === 'sync') {
  const cms = new CmsClient({ url, ca: readFileSync(join(creds, 'ca.pem'), 'utf8'), servername: 'localhost' }, { key: readFileSync(join(creds, 'key.pem'), 'utf8'), cert: readFileSync(join(creds, 'cert.pem'), 'utf8') });
  const ans = await cms.call<{ acked: number }>('POST', '/v1/readers/self/baton', { entries: baton.pending() });
  process.stdout.write(`STORED ${ans.acked}\n`);
  await new Promise((r) => setTimeout(r, 60_000)); // killed here, before baton.acknowledge()
  baton.acknowledge(ans.acked);
}
process.stdout.write('END\n');
await new Promise((r) => setTimeout(r, 60_000));

// Child process for the kill -9 tests: runs (or resumes) a rotation campaign over virtual cards
// whose images live in files, or a KEK rewrap run, against a SQLite CMS database and a SQLite
// vault, printing progress lines. Every ChangeKey that reaches a card is appended to a journal
// (O_APPEND) so the parent can prove none was repeated.
//   campaign <db> <vault> <cardsDir> <campaignId>
//   rewrap   <db> <vault> <runId>
import { appendFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { VirtualCard, loadImageSync, saveImageAtomicSync } from '../../src/card/index.js';
import { ApprovalService } from '../../src/cms/approvals/service.js';
import { KekService } from '../../src/cms/kek/rewrap.js';
import { CampaignService } from '../../src/cms/rotation/campaigns.js';
import { NO_AUDIT } from '../../src/cms/rotation/audit.js';
import { CampaignRunner } from '../../src/cms/rotation/runner.js';
import { openDatabase } from '../../src/cms/storage/index.js';
import { DesfireClient } from '../../src/core/client/index.js';
import type { Transport } from '../../src/core/transport.js';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { SqliteVaultStore } from '../../src/custody/store-sqlite.js';
import { rotateOneCard } from '../../src/reader/station/rotate.js';
import { divInput } from './rotation-fixture.js';

export const PASSPHRASE = 'correct horse battery staple';
const CTX = { actor: 'worker', purpose: 'crash test', correlationId: 'w' };

const [mode, dbFile, vaultFile, a3, a4] = process.argv.slice(2);
const handle = await openDatabase({ kind: 'sqlite', file: dbFile! });
const vault = await EmbeddedVault.open(await SqliteVaultStore.open(vaultFile!));
await vault.unsealWithPassphrase(PASSPHRASE);
const custody = vault.custody(new MemoryAuditSink());
const approvals = new ApprovalService({ db: handle.db, audit: NO_AUDIT });

if (mode === 'campaign') {
  const dir = a3!;
  const journal = path.join(dir, 'changekeys.log');
  const cards = new Map<string, VirtualCard>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.json'))) {
    const uid = f.slice(0, -5);
    const card = VirtualCard.fromImage(loadImageSync(path.join(dir, f)));
    card.onChange = (c) => saveImageAtomicSync(path.join(dir, f), c.toImage());
    cards.set(uid, card);
  }
  const transport = (uid: string): Transport => ({
    transmit: async (apdu) => {
      const card = cards.get(uid)!;
      const r = card.process(apdu);
      if (apdu[1] === 0xc4 && r[r.length - 1] === 0x00) appendFileSync(journal, uid + '\n');
      return r;
    },
  });
  const campaigns = new CampaignService({ db: handle.db, audit: NO_AUDIT, approvals });
  const runner = new CampaignRunner(
    campaigns,
    {
      rotate: (req) =>
        rotateOneCard(
          {
            present: async (uid) => (cards.has(uid) ? transport(uid) : undefined),
            key: (job, version) => custody.exportForCard(CTX, { kind: 'diversified', master: 'acme.A1B2C3.0', masterVersion: version, input: divInput(job.uid), binding: { tenant: job.tenantId, aid: job.aid, uid: job.uid, keyNo: job.keyNo, version } }),
            client: (t) => new DesfireClient(t),
          },
          req,
        ),
    },
    NO_AUDIT,
  );
  const r = await runner.run(a4!, { commitEvery: 5, onProgress: (p) => process.stdout.write(`progress ${p.processed}\n`) });
  process.stdout.write(`result ${r}\n`);
} else if (mode === 'rewrap') {
  const kek = new KekService({ db: handle.db, custody, audit: NO_AUDIT, approvals });
  const r = await kek.runRewrap(CTX, a3!, { pageSize: 100, onProgress: (p) => process.stdout.write(`progress ${p.rewrapped}\n`) });
  process.stdout.write(`result ${r.state} ${r.rewrapped}\n`);
}
await custody.close();
await handle.close();

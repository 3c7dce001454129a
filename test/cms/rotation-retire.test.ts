// Retiring a key version disables it in custody (issue #7): completion retires the old version,
// cancel and the end of a rollback the new one; custody then refuses to derive it
// (ERR_CUSTODY_VERSION), so no reader can get it, while the version in use still derives. Over
// the embedded vault, PKCS#11 (SoftHSM2) and Vault Transit (the local Transit emulation; a real
// Vault when VAULT_ADDR/VAULT_TOKEN are set). A custody failure answers ERR_ROTATION_RETIRE and
// calling the operation again retries the custody step.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_APPROVAL_POLICY } from '../../src/cms/approvals/policy.js';
import { ApprovalService } from '../../src/cms/approvals/service.js';
import { CampaignService } from '../../src/cms/rotation/campaigns.js';
import { acceptedVersions, disableRetiredVersion } from '../../src/cms/rotation/versions.js';
import { openDatabase, type DatabaseHandle } from '../../src/cms/storage/index.js';
import type { KeyCustody } from '../../src/custody/types.js';
import { requireComponent } from '../helpers/system.js';
import { type BackendFactory, embeddedFactory } from '../custody/backends.js';
import { pkcs11Factory } from '../custody/pkcs11-factory.js';
import { fakeTransitFactory, vaultFactory } from '../custody/vault-factory.js';
import { MemoryRecorder } from './rotation-fixture.js';

const TENANT = 'acme';
const AID = 'A1B2C3';
const MASTER = 'acme.A1B2C3.0';
const CTX = { actor: 'test', purpose: 'retire test', correlationId: 'c-retire' };
const UIDS = ['04A1000000A0B0', '04A2000000A0B0'];
const KEY = { tenantId: TENANT, aid: AID, keyNo: 0 };
const input = Uint8Array.from([0x04, 0xa1, 0, 0, 0, 0xa0, 0xb0, 0xc3, 0xb2, 0xa1]);
const binding = (version: number) => ({ tenant: TENANT, aid: AID, uid: UIDS[0]!, keyNo: 0, version });

const derive = (c: KeyCustody, version: number) => c.exportForCard(CTX, { kind: 'diversified', master: MASTER, masterVersion: version, input, binding: binding(version) });

async function database(): Promise<{ h: DatabaseHandle; dir: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'desfire-retire-'));
  const h = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'cms.sqlite') });
  await h.db.insertInto('tenants').values({ id: TENANT, name: 'Acme', created_at: 1 }).execute();
  await h.db.insertInto('applications').values({ aid: AID, tenant_id: TENANT, name: 'doors', key_type: 'aes', key_count: 1, layout_name: 't', definition: '{}', created_at: 1 }).execute();
  for (const uid of UIDS) {
    await h.db.insertInto('cards').values({ uid, state: 'active', random_uid: 0, picc_key_version: 1, created_at: 1, updated_at: 1 }).execute();
    await h.db.insertInto('card_applications').values({ uid, aid: AID, installed_at: 1 }).execute();
    await h.db.insertInto('card_keys').values({ uid, aid: AID, key_no: 0, key_version: 1, updated_at: 1 }).execute();
  }
  return { h, dir };
}

function service(h: DatabaseHandle, custody: KeyCustody, retire = disableRetiredVersion(custody, async () => MASTER)) {
  const audit = new MemoryRecorder();
  const approvals = new ApprovalService({ db: h.db, audit, policy: { ...DEFAULT_APPROVAL_POLICY, campaignCardThreshold: 1000 } });
  const campaigns = new CampaignService({ db: h.db, audit, approvals, newVersion: async () => (await custody.rotateKey(CTX, MASTER)).latestVersion, retireVersion: retire });
  return { campaigns, audit };
}

const factories: BackendFactory[] = [embeddedFactory, pkcs11Factory, fakeTransitFactory, vaultFactory];

for (const f of factories) {
  const avail = await f.available();
  const run = f.component ? requireComponent(f.component, avail) : avail.ok;
  if (!run && !f.component) process.stderr.write(`[skip] ${f.name}: ${avail.reason}\n`);
  describe.skipIf(!run)(`retired versions are disabled in custody: ${f.name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterAll(async () => {
      for (const c of cleanups.reverse()) await c();
    });

    it('complete retires the old version, cancel and rollback the new one; the version in use still derives', async () => {
      const b = await f.make();
      const { h, dir } = await database();
      cleanups.push(async () => (await b.cleanup(), await h.close(), rmSync(dir, { recursive: true, force: true })));
      await b.custody.createKey(CTX, MASTER, { purpose: 'diversify', alg: 'aes128' });
      const { campaigns, audit } = service(h, b.custody);
      const v1 = await derive(b.custody, 1);

      // 1 -> 2, completed: version 1 is retired and custody refuses it
      const c1 = await campaigns.create({ ...KEY, fromVersion: 1, target: { kind: 'all' } }, 'alice');
      expect(c1.toVersion).toBe(2);
      await campaigns.start(c1.id, 'alice');
      await h.db.updateTable('rotation_items').set({ state: 'done', card_version: 2 }).where('campaign_id', '=', c1.id).execute();
      expect(await derive(b.custody, 1)).toEqual(v1); // still usable during the campaign
      await campaigns.complete(c1.id, 'alice');
      await expect(derive(b.custody, 1)).rejects.toMatchObject({ code: 'ERR_CUSTODY_VERSION' });
      const v2 = await derive(b.custody, 2);
      expect(v2).not.toEqual(v1);
      expect(await acceptedVersions(h.db, KEY)).toEqual([2]);

      // 2 -> 3, cancelled before the start: version 3 (the latest in custody) is disabled
      const c2 = await campaigns.create({ ...KEY, target: { kind: 'all' } }, 'alice');
      expect(c2).toMatchObject({ fromVersion: 2, toVersion: 3 });
      await campaigns.cancel(c2.id, 'alice');
      await expect(derive(b.custody, 3)).rejects.toMatchObject({ code: 'ERR_CUSTODY_VERSION' });
      expect(await derive(b.custody, 2)).toEqual(v2);

      // 2 -> 4, started and rolled back: version 4 is disabled at the end of the rollback
      const c3 = await campaigns.create({ ...KEY, target: { kind: 'all' } }, 'alice');
      expect(c3.toVersion).toBe(4);
      await campaigns.start(c3.id, 'alice');
      expect(await acceptedVersions(h.db, KEY)).toEqual([4, 2]);
      await derive(b.custody, 4);
      await campaigns.rollback(c3.id, 'alice');
      expect(await derive(b.custody, 4)).toBeInstanceOf(Uint8Array); // still accepted while cards change back
      expect((await campaigns.complete(c3.id, 'alice')).state).toBe('rolled_back');
      await expect(derive(b.custody, 4)).rejects.toMatchObject({ code: 'ERR_CUSTODY_VERSION' });
      expect(await derive(b.custody, 2)).toEqual(v2);
      expect(await acceptedVersions(h.db, KEY)).toEqual([2]);

      const states = (await b.custody.getKey(CTX, MASTER)).versions.map((v) => [v.version, v.state]);
      expect(states).toEqual([
        [1, 'disabled'],
        [2, 'active'],
        [3, 'disabled'],
        [4, 'disabled'],
      ]);
      expect(audit.entries.filter((e) => e.operation === 'rotation.retire').map((e) => [e.keyVersion, e.result])).toEqual([
        [1, 'ok'],
        [3, 'ok'],
        [4, 'ok'],
      ]);
      // custody's own audit has the disable events
      expect(b.audit.events.filter((e) => e.op === 'disable_version' && e.outcome === 'ok').map((e) => e.keyVersion)).toEqual([1, 3, 4]);
    }, 120_000);
  });
}

describe('retirement when custody fails', () => {
  it('answers ERR_ROTATION_RETIRE, keeps the CMS state, and a second call retries the custody step', async () => {
    const b = await embeddedFactory.make();
    const { h, dir } = await database();
    try {
      await b.custody.createKey(CTX, MASTER, { purpose: 'diversify', alg: 'aes128' });
      let down = true;
      const inner = disableRetiredVersion(b.custody, async () => MASTER);
      const { campaigns, audit } = service(h, b.custody, async (k, v, who) => {
        if (down) throw Object.assign(new Error('custody unavailable'), { code: 'ERR_CUSTODY_BACKEND' });
        return inner(k, v, who);
      });
      const c = await campaigns.create({ ...KEY, fromVersion: 1, target: { kind: 'all' } }, 'alice');
      await campaigns.start(c.id, 'alice');
      await h.db.updateTable('rotation_items').set({ state: 'done', card_version: 2 }).where('campaign_id', '=', c.id).execute();
      await expect(campaigns.complete(c.id, 'alice')).rejects.toMatchObject({ code: 'ERR_ROTATION_RETIRE' });
      expect((await campaigns.require(c.id)).state).toBe('completed');
      expect(await acceptedVersions(h.db, KEY)).toEqual([2]); // the CMS no longer accepts version 1
      expect(await derive(b.custody, 1)).toBeInstanceOf(Uint8Array); // custody still does: not yet disabled
      down = false;
      expect((await campaigns.complete(c.id, 'alice')).state).toBe('completed');
      await expect(derive(b.custody, 1)).rejects.toMatchObject({ code: 'ERR_CUSTODY_VERSION' });
      expect((await campaigns.complete(c.id, 'alice')).state).toBe('completed'); // idempotent
      expect(audit.entries.filter((e) => e.operation === 'rotation.retire').map((e) => e.result)).toEqual(['error', 'ok', 'ok']);
    } finally {
      await b.cleanup();
      await h.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

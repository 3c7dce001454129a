// Where each per-card key comes from, for station jobs, key delivery and remote mode alike.
//
// - CMK (PICC master key, AID 000000 key 0): random AES-128 per card, generated inside custody
//   under the issuer KEK and stored only wrapped, bound to (issuer, 000000, UID, 0, version).
// - Application keys with `derivation: diversified`: AN10922 inside custody from the master named
//   by the layout (`<tenant>/<AID>/<keyNo>` by default; '/' becomes '.' in the custody key name),
//   input = the layout's list among UID (as read) || AID (3 bytes, LSB first as sent) ||
//   system identifier || key number (1 byte). Card key version = master version.
// - Application keys with `derivation: random`: random per card, generated inside custody under the
//   tenant's KEK, stored wrapped bound to (tenant, AID, UID, keyNo, version).
// Nothing here ever holds key bytes: it builds KeySource descriptions custody resolves.
import type { Kysely } from 'kysely';
import { concat, fromHex } from '../../core/crypto/bytes.js';
import type { CallerContext, CardKeyAlg, GenerateItem, KeyBinding, KeyCustody, KeySource } from '../../custody/types.js';
import { type Application, ISSUER_TENANT } from '../domain/index.js';
import type { Derivation } from '../layout/index.js';
import type { Database } from '../storage/index.js';
import { JobError } from './errors.js';

export const PICC_AID = '000000';

export interface KeyNaming {
  /** KEK wrapping CMKs (default 'kek.issuer'). */
  issuerKek: string;
  /** KEK wrapping a tenant's random keys (default 'kek.<tenant>'). */
  tenantKek(tenant: string): string;
}

export const DEFAULT_NAMING: KeyNaming = { issuerKek: 'kek.issuer', tenantKek: (t) => `kek.${t}` };

/** Labels seen -> custody names (a layout has a few; bounded): no new string per delivery. */
const masterNames = new Map<string, string>();

/** The custody key name of a layout's diversification master label. */
export function masterKeyName(label: string): string {
  let name = masterNames.get(label);
  if (name === undefined) {
    name = label.replace(/\//g, '.');
    if (masterNames.size >= 4096) masterNames.clear();
    masterNames.set(label, name);
  }
  return name;
}

const aidBytesLsbFirst = (aid: string): Uint8Array => fromHex(aid).reverse();

/**
 * Per application definition object: its AID (LSB first) and system identifier as bytes, each
 * decoded on first use and again only if the definition's string changed.
 */
interface AppInputParts {
  aid?: string;
  aidBytes?: Uint8Array;
  system?: string;
  systemBytes?: Uint8Array;
}
const appInputParts = new WeakMap<object, AppInputParts>();

function aidPart(p: AppInputParts, aid: string): Uint8Array {
  if (p.aidBytes === undefined || p.aid !== aid) {
    p.aidBytes = aidBytesLsbFirst(aid);
    p.aid = aid;
  }
  return p.aidBytes;
}

function systemPart(p: AppInputParts, system: string): Uint8Array {
  if (p.systemBytes === undefined || p.system !== system) {
    p.systemBytes = fromHex(system);
    p.system = system;
  }
  return p.systemBytes;
}

/**
 * The AN10922 input of a diversified key: the layout's list among UID (as read) || AID (3 bytes,
 * LSB first as sent) || system identifier || key number (1 byte). The application's parts are
 * decoded once per definition object.
 */
export function diversificationInput(d: Extract<Derivation, { method: 'diversified' }>, app: { aid: string; systemIdentifier: string }, uid: string, keyNo: number): Uint8Array {
  let p = appInputParts.get(app);
  if (!p) appInputParts.set(app, (p = {}));
  const part = (i: (typeof d.input)[number]) => (i === 'uid' ? fromHex(uid) : i === 'aid' ? aidPart(p, app.aid) : i === 'system' ? systemPart(p, app.systemIdentifier) : Uint8Array.of(keyNo));
  return concat(...d.input.map(part));
}

export const cardKeyAlg = (keyType: string): CardKeyAlg => (keyType === '3k3des' ? '3k3des' : 'aes128');

export interface PlannedKey {
  keyNo: number;
  version: number;
  method: 'diversified' | 'random';
}

type Db = Kysely<Database>;
export type BlobRow = Database['card_key_blobs'];

export class CardKeys {
  private readonly ensured = new Set<string>();

  constructor(
    private readonly custody: KeyCustody,
    readonly naming: KeyNaming = DEFAULT_NAMING,
  ) {}

  cmkBinding(uid: string, version: number): KeyBinding {
    return { tenant: ISSUER_TENANT, aid: PICC_AID, uid, keyNo: 0, version };
  }

  appBinding(app: Application, uid: string, keyNo: number, version: number): KeyBinding {
    return { tenant: app.tenantId, aid: app.aid, uid, keyNo, version };
  }

  /** Create a key in custody on first use (KEKs, diversification masters). */
  async ensure(ctx: CallerContext, name: string, spec: { purpose: 'wrap' } | { purpose: 'diversify'; alg: CardKeyAlg }): Promise<number> {
    // a KEK's version does not matter to the caller (custody wraps under its latest): once known
    // to exist it is not asked again; a master's latest version is (it becomes the card key's)
    if (spec.purpose === 'wrap' && this.ensured.has(name)) return 0;
    try {
      const k = await this.custody.getKey(ctx, name);
      this.ensured.add(name);
      return k.latestVersion;
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_CUSTODY_UNKNOWN_KEY') throw e;
    }
    try {
      return (await this.custody.createKey(ctx, name, spec)).latestVersion;
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_CUSTODY_KEY_EXISTS') throw e;
      return (await this.custody.getKey(ctx, name)).latestVersion;
    }
  }

  /**
   * The latest versions of an application's diversification masters in ONE custody call (one
   * audited 'get_keys'), read anew for every plan (a rotation elsewhere is seen at once). Empty
   * when one of them does not exist yet: `ensure` then creates it on first use, one by one.
   */
  private async masterVersions(ctx: CallerContext, ...apps: Application[]): Promise<Map<string, number>> {
    const names = [...new Set(apps.flatMap((app) => app.definition.keys.flatMap((k) => (k.derivation.method === 'diversified' ? [masterKeyName(k.derivation.master)] : []))))];
    if (!names.length) return new Map();
    try {
      return new Map((await this.custody.getKeys(ctx, names)).map((k) => [k.name, k.latestVersion]));
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_CUSTODY_UNKNOWN_KEY') throw e;
      return new Map();
    }
  }

  private derivation(app: Application, keyNo: number): Derivation {
    const k = app.definition.keys.find((x) => x.no === keyNo);
    if (!k) throw new JobError('ERR_JOB_BAD_INPUT', `application ${app.aid} has no key ${keyNo}`);
    if (k.derivation.method === 'static') throw new JobError('ERR_JOB_UNSUPPORTED', `key ${keyNo} of ${app.aid} is static: refused by the isolation rules`);
    return k.derivation;
  }

  /**
   * Plan the keys of a new installation: diversified keys take their master's latest version
   * (all masters read in one audited call; created on first use); random keys are generated now (version 1), returned as
   * rows to store 'pending' for `jobId`. Custody is called here, never inside a DB transaction
   * (its audit sink may write to the same database).
   */
  async planInstall(ctx: CallerContext, app: Application, uid: string, jobId: string, now: number, known?: Map<string, number>): Promise<{ keys: PlannedKey[]; blobs: BlobRow[] }> {
    const latest = known ?? (await this.masterVersions(ctx, app));
    // in parallel: each custody call is audited, and concurrent events share one audit commit
    const planned = await Promise.all(
      app.definition.keys.map(async (k): Promise<{ key: PlannedKey; blob?: BlobRow }> => {
        const d = this.derivation(app, k.no);
        if (d.method === 'diversified') {
          const name = masterKeyName(d.master);
          const version = latest.get(name) ?? (await this.ensure(ctx, name, { purpose: 'diversify', alg: cardKeyAlg(app.keyType) }));
          if (version > 255) throw new JobError('ERR_JOB_UNSUPPORTED', `master of key ${k.no} of ${app.aid} is past version 255`);
          return { key: { keyNo: k.no, version, method: 'diversified' } };
        }
        const kek = this.naming.tenantKek(app.tenantId);
        await this.ensure(ctx, kek, { purpose: 'wrap' });
        const version = 1;
        const w = await this.custody.generateKey(ctx, kek, cardKeyAlg(app.keyType), this.appBinding(app, uid, k.no, version));
        return {
          key: { keyNo: k.no, version, method: 'random' },
          blob: { uid, aid: app.aid, key_no: k.no, key_version: version, kek, blob: w.blob, state: 'pending', job_id: jobId, created_at: now },
        };
      }),
    );
    return { keys: planned.map((p) => p.key), blobs: planned.flatMap((p) => (p.blob ? [p.blob] : [])) };
  }

  /**
   * Plan a personalise job's keys: the CMK and every application's keys as planInstall plans each
   * (every diversification master read in ONE audited 'get_keys'; refused, ISO002, when one master
   * would serve two of the AIDs: a key never opens two applications). The card's random keys — the
   * CMK under the issuer KEK, each `derivation: random` key under its tenant's KEK — are generated
   * in ONE custody call (one audited 'generate_batch' naming every binding; all or nothing).
   */
  async planPersonalise(ctx: CallerContext, apps: Application[], uid: string, jobId: string, now: number): Promise<{ cmk: { version: number; blob: BlobRow }; installs: { keys: PlannedKey[]; blobs: BlobRow[] }[] }> {
    CardKeys.checkIsolation(apps);
    const latest = await this.masterVersions(ctx, ...apps);
    const version = 1;
    const items: GenerateItem[] = [{ kek: this.naming.issuerKek, alg: 'aes128', binding: this.cmkBinding(uid, version) }];
    const slots: { app: number; key: number; item: number }[] = [];
    const installs = await Promise.all(
      apps.map(async (app, a) => ({
        keys: await Promise.all(
          app.definition.keys.map(async (k, i): Promise<PlannedKey> => {
            const d = this.derivation(app, k.no);
            if (d.method === 'diversified') {
              const name = masterKeyName(d.master);
              const v = latest.get(name) ?? (await this.ensure(ctx, name, { purpose: 'diversify', alg: cardKeyAlg(app.keyType) }));
              if (v > 255) throw new JobError('ERR_JOB_UNSUPPORTED', `master of key ${k.no} of ${app.aid} is past version 255`);
              return { keyNo: k.no, version: v, method: 'diversified' };
            }
            slots.push({ app: a, key: i, item: items.length });
            items.push({ kek: this.naming.tenantKek(app.tenantId), alg: cardKeyAlg(app.keyType), binding: this.appBinding(app, uid, k.no, version) });
            return { keyNo: k.no, version, method: 'random' };
          }),
        ),
        blobs: [] as BlobRow[],
      })),
    );
    await Promise.all([...new Set(items.map((x) => x.kek))].map((kek) => this.ensure(ctx, kek, { purpose: 'wrap' })));
    const wrapped = await this.custody.generateKeys(ctx, items);
    const row = (x: GenerateItem, blob: string): BlobRow => ({ uid, aid: x.binding.aid, key_no: x.binding.keyNo, key_version: x.binding.version, kek: x.kek, blob, state: 'pending', job_id: jobId, created_at: now });
    // blobs in key order, per application (as planInstall returns them)
    for (const s of [...slots].sort((x, y) => x.app - y.app || x.key - y.key)) installs[s.app]!.blobs.push(row(items[s.item]!, wrapped[s.item]!.blob));
    return { cmk: { version, blob: row(items[0]!, wrapped[0]!.blob) }, installs };
  }

  /**
   * ISO002 for the applications of one job: refused (ERR_JOB_UNSUPPORTED) when one diversification
   * master would serve two of them (a key never opens two applications). Pure: the job checks it
   * before consent and custody, so such a refusal writes nothing.
   */
  static checkIsolation(apps: readonly Application[]): void {
    const owner = new Map<string, string>();
    for (const app of apps)
      for (const k of app.definition.keys) {
        if (k.derivation.method !== 'diversified') continue;
        const name = masterKeyName(k.derivation.master);
        const prev = owner.get(name);
        if (prev !== undefined && prev !== app.aid) throw new JobError('ERR_JOB_UNSUPPORTED', `ISO002: master ${name} serves both ${prev} and ${app.aid}`);
        owner.set(name, app.aid);
      }
  }

  /** A new random CMK for `uid` (version 1): the row to store 'pending' for `jobId`. */
  async planCmk(ctx: CallerContext, uid: string, jobId: string, now: number): Promise<{ version: number; blob: BlobRow }> {
    const kek = this.naming.issuerKek;
    await this.ensure(ctx, kek, { purpose: 'wrap' });
    const version = 1;
    const w = await this.custody.generateKey(ctx, kek, 'aes128', this.cmkBinding(uid, version));
    return { version, blob: { uid, aid: PICC_AID, key_no: 0, key_version: version, kek, blob: w.blob, state: 'pending', job_id: jobId, created_at: now } };
  }

  /** Store planned blobs (inside the caller's transaction). A retry replaces an earlier pending one. */
  static async storeBlobs(tx: Db, blobs: BlobRow[]): Promise<void> {
    for (const b of blobs)
      await tx
        .insertInto('card_key_blobs')
        .values(b)
        .onConflict((oc) => oc.columns(['uid', 'aid', 'key_no', 'key_version']).doUpdateSet({ kek: b.kek, blob: b.blob, state: 'pending', job_id: b.job_id, created_at: b.created_at }))
        .execute();
  }

  private async blob(db: Db, uid: string, aid: string, keyNo: number, version: number, pending?: readonly BlobRow[]): Promise<{ kek: string; blob: string }> {
    // a blob planned by this very job and not stored yet (a job created already claimed)
    const p = pending?.find((b) => b.uid === uid && b.aid === aid && b.key_no === keyNo && b.key_version === version);
    if (p) return p;
    const r = await db
      .selectFrom('card_key_blobs')
      .select(['kek', 'blob'])
      .where('uid', '=', uid)
      .where('aid', '=', aid)
      .where('key_no', '=', keyNo)
      .where('key_version', '=', version)
      .executeTakeFirst();
    if (!r) throw new JobError('ERR_JOB_NOT_FOUND', `no stored key ${keyNo} v${version} of ${aid} for card ${uid}`);
    return r;
  }

  async cmkSource(db: Db, uid: string, version: number, pending?: readonly BlobRow[]): Promise<KeySource> {
    const b = await this.blob(db, uid, PICC_AID, 0, version, pending);
    return { kind: 'wrapped', kek: b.kek, blob: b.blob, binding: this.cmkBinding(uid, version) };
  }

  /** The source of key `keyNo` (at `version`) of `app` on card `uid`. */
  async appSource(db: Db, app: Application, uid: string, keyNo: number, version: number, pending?: readonly BlobRow[]): Promise<KeySource> {
    const d = this.derivation(app, keyNo);
    const binding = this.appBinding(app, uid, keyNo, version);
    if (d.method === 'diversified') {
      return { kind: 'diversified', master: masterKeyName(d.master), masterVersion: version, input: diversificationInput(d, app.definition, uid, keyNo), binding };
    }
    const b = await this.blob(db, uid, app.aid, keyNo, version, pending);
    return { kind: 'wrapped', kek: b.kek, blob: b.blob, binding };
  }
}

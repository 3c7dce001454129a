// Cards: lifecycle (lifecycle.ts) and the CardUID <-> AID <-> key versions mapping.
// State changes are compare-and-set on the current state, so two CMS processes cannot both
// apply conflicting transitions; installations are recorded in one transaction.
import { DomainError } from './errors.js';
import { CARD_INSTALLABLE, checkCardTransition, isCardState, type CardState } from './lifecycle.js';
import { atomic, checkAid, checkInt, checkUid, inserted, updated, type Db } from './db.js';

export interface Card {
  uid: string;
  state: CardState;
  randomUid: boolean;
  piccKeyVersion: number;
  createdAt: number;
  updatedAt: number;
  /** Card profile (e.g. 'staff'): what standing-policy authorisations match; null = none. */
  profile: string | null;
}

export interface KeyVersion {
  keyNo: number;
  version: number;
}

export interface CardApplication {
  aid: string;
  tenantId: string;
  installedAt: number;
  keys: KeyVersion[];
}

/** A card profile name ('*' is not one: in an authorisation it means every card). */
export const CARD_PROFILE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkCardProfile(p: unknown): string {
  if (typeof p !== 'string' || !CARD_PROFILE_RE.test(p)) throw new DomainError('ERR_DOMAIN_BAD_INPUT', 'card profile: 1-64 of A-Z a-z 0-9 . _ - (starting with a letter or digit)');
  return p;
}

type CardRow = { uid: string; state: string; random_uid: number; picc_key_version: number; created_at: number; updated_at: number; profile?: string | null };

function toCard(r: CardRow): Card {
  if (!isCardState(r.state)) throw new DomainError('ERR_DOMAIN_STATE', `card ${r.uid} has an unknown state in storage`);
  return {
    uid: r.uid,
    state: r.state,
    randomUid: Number(r.random_uid) === 1,
    piccKeyVersion: Number(r.picc_key_version),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    profile: r.profile ?? null,
  };
}

export class CardRepository {
  constructor(private readonly db: Db) {}

  /** Register a blank card (factory state) by its UID. */
  async createBlank(uid: string, opts: { randomUid?: boolean; now?: number; profile?: string } = {}): Promise<Card> {
    const u = checkUid(uid);
    const now = opts.now ?? Date.now();
    const row = { uid: u, state: 'blank', random_uid: opts.randomUid ? 1 : 0, picc_key_version: 0, created_at: now, updated_at: now, profile: opts.profile === undefined ? null : checkCardProfile(opts.profile) };
    const r = await this.db.insertInto('cards').values(row).onConflict((oc) => oc.column('uid').doNothing()).executeTakeFirst();
    if (!inserted(r)) throw new DomainError('ERR_DOMAIN_CONFLICT', `card ${u} already exists`);
    return toCard(row);
  }

  /** Set (or clear, null) the card's profile: what standing-policy authorisations match. */
  async setProfile(uid: string, profile: string | null, now = Date.now()): Promise<Card> {
    const u = checkUid(uid);
    const p = profile === null ? null : checkCardProfile(profile);
    const r = await this.db.updateTable('cards').set({ profile: p, updated_at: now }).where('uid', '=', u).executeTakeFirst();
    if (!updated(r)) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `card ${u} not found`);
    return this.require(u);
  }

  async get(uid: string): Promise<Card | undefined> {
    const r = await this.db.selectFrom('cards').selectAll().where('uid', '=', checkUid(uid)).executeTakeFirst();
    return r ? toCard(r) : undefined;
  }

  async require(uid: string): Promise<Card> {
    const c = await this.get(uid);
    if (!c) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `card ${checkUid(uid)} not found`);
    return c;
  }

  /**
   * Move a card to `to` if the lifecycle allows it from its current state. `piccKeyVersion` is
   * recorded with blank → issued (the CMK the station installed).
   */
  async transition(uid: string, to: CardState, opts: { now?: number; piccKeyVersion?: number } = {}): Promise<Card> {
    const u = checkUid(uid);
    const now = opts.now ?? Date.now();
    if (opts.piccKeyVersion !== undefined) checkInt('piccKeyVersion', opts.piccKeyVersion, 0, 255);
    const card = await this.require(u);
    checkCardTransition(card.state, to);
    const set: Partial<CardRow> = { state: to, updated_at: now };
    if (to === 'issued' && opts.piccKeyVersion !== undefined) set.picc_key_version = opts.piccKeyVersion;
    const r = await this.db.updateTable('cards').set(set).where('uid', '=', u).where('state', '=', card.state).executeTakeFirst();
    if (!updated(r)) throw new DomainError('ERR_DOMAIN_CONFLICT', `card ${u} changed state concurrently`);
    return { ...card, state: to, updatedAt: now, piccKeyVersion: set.picc_key_version ?? card.piccKeyVersion };
  }

  /**
   * Record that application `aid` was installed on the card with these key versions (one per key
   * number 0..keyCount-1), after the station's receipt was verified. All or nothing.
   */
  async recordInstallation(uid: string, aid: string, keys: KeyVersion[], now = Date.now()): Promise<CardApplication> {
    const u = checkUid(uid);
    const a = checkAid(aid);
    if (!Array.isArray(keys)) throw new DomainError('ERR_DOMAIN_BAD_INPUT', 'keys must be a list');
    for (const k of keys) {
      checkInt('keyNo', k?.keyNo, 0, 13);
      checkInt('version', k?.version, 0, 255);
    }
    return atomic(this.db, async (tx) => {
      const card = await tx.selectFrom('cards').select(['state']).where('uid', '=', u).executeTakeFirst();
      if (!card) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `card ${u} not found`);
      if (!(CARD_INSTALLABLE as readonly string[]).includes(card.state))
        throw new DomainError('ERR_DOMAIN_STATE', `card ${u} is ${card.state}: applications are installed on issued or active cards`);
      const app = await tx.selectFrom('applications').select(['tenant_id', 'key_count']).where('aid', '=', a).executeTakeFirst();
      if (!app) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `application ${a} not registered`);
      const nos = keys.map((k) => k.keyNo).sort((x, y) => x - y);
      const expected = Array.from({ length: Number(app.key_count) }, (_, i) => i);
      if (nos.join() !== expected.join())
        throw new DomainError('ERR_DOMAIN_BAD_INPUT', `keys must list each key number 0..${Number(app.key_count) - 1} exactly once`);
      const r = await tx
        .insertInto('card_applications')
        .values({ uid: u, aid: a, installed_at: now })
        .onConflict((oc) => oc.columns(['uid', 'aid']).doNothing())
        .executeTakeFirst();
      if (!inserted(r)) throw new DomainError('ERR_DOMAIN_CONFLICT', `application ${a} is already recorded on card ${u}`);
      await tx
        .insertInto('card_keys')
        .values(keys.map((k) => ({ uid: u, aid: a, key_no: k.keyNo, key_version: k.version, updated_at: now })))
        .execute();
      return { aid: a, tenantId: app.tenant_id, installedAt: now, keys: [...keys].sort((x, y) => x.keyNo - y.keyNo) };
    });
  }

  /** Record a key rotation on the card (after its receipt): (uid, aid, keyNo) now has `version`. */
  async setKeyVersion(uid: string, aid: string, keyNo: number, version: number, now = Date.now()): Promise<void> {
    const u = checkUid(uid);
    const a = checkAid(aid);
    checkInt('keyNo', keyNo, 0, 13);
    checkInt('version', version, 0, 255);
    const r = await this.db
      .updateTable('card_keys')
      .set({ key_version: version, updated_at: now })
      .where('uid', '=', u)
      .where('aid', '=', a)
      .where('key_no', '=', keyNo)
      .executeTakeFirst();
    if (!updated(r)) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `key ${keyNo} of ${a} is not recorded on card ${u}`);
  }

  /** Record that the application was deleted from the card. */
  async removeApplication(uid: string, aid: string): Promise<void> {
    const u = checkUid(uid);
    const a = checkAid(aid);
    await atomic(this.db, async (tx) => {
      await tx.deleteFrom('card_keys').where('uid', '=', u).where('aid', '=', a).execute();
      const r = await tx.deleteFrom('card_applications').where('uid', '=', u).where('aid', '=', a).executeTakeFirst();
      if ((r.numDeletedRows ?? 0n) === 0n) throw new DomainError('ERR_DOMAIN_NOT_FOUND', `application ${a} is not recorded on card ${u}`);
    });
  }

  /** The card's applications and key versions. */
  async applications(uid: string): Promise<CardApplication[]> {
    const u = checkUid(uid);
    const apps = await this.db
      .selectFrom('card_applications as ca')
      .innerJoin('applications as a', 'a.aid', 'ca.aid')
      .select(['ca.aid', 'a.tenant_id', 'ca.installed_at'])
      .where('ca.uid', '=', u)
      .orderBy('ca.aid')
      .execute();
    const keys = await this.db.selectFrom('card_keys').selectAll().where('uid', '=', u).orderBy('aid').orderBy('key_no').execute();
    return apps.map((a) => ({
      aid: a.aid,
      tenantId: a.tenant_id,
      installedAt: Number(a.installed_at),
      keys: keys.filter((k) => k.aid === a.aid).map((k) => ({ keyNo: Number(k.key_no), version: Number(k.key_version) })),
    }));
  }

  /** Key versions of one application on one card (empty when not installed). */
  async keyVersions(uid: string, aid: string): Promise<KeyVersion[]> {
    const rows = await this.db
      .selectFrom('card_keys')
      .select(['key_no', 'key_version'])
      .where('uid', '=', checkUid(uid))
      .where('aid', '=', checkAid(aid))
      .orderBy('key_no')
      .execute();
    return rows.map((r) => ({ keyNo: Number(r.key_no), version: Number(r.key_version) }));
  }

  /** Cards holding (aid, keyNo) at `version`: the population of a rotation campaign. */
  async cardsWithKeyVersion(aid: string, keyNo: number, version: number, limit = 1000): Promise<string[]> {
    const rows = await this.db
      .selectFrom('card_keys')
      .select('uid')
      .where('aid', '=', checkAid(aid))
      .where('key_no', '=', checkInt('keyNo', keyNo, 0, 13))
      .where('key_version', '=', checkInt('version', version, 0, 255))
      .orderBy('uid')
      .limit(checkInt('limit', limit, 1, 100_000))
      .execute();
    return rows.map((r) => r.uid);
  }
}

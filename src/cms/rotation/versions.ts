// Key versions per (tenant, AID, keyNo) and the versions readers accept: [current, previous]
// while the previous one is within its grace period. The key-delivery path and the reader use
// acceptedVersions(); campaigns move versions through pending -> current -> previous -> retired.
import type { Kysely } from 'kysely';
import type { CallerContext, KeyCustody } from '../../custody/types.js';
import type { Database } from '../storage/index.js';

type Db = Kysely<Database>;

export type VersionState = 'pending' | 'current' | 'previous' | 'retired';

export interface KeyVersionRow {
  tenantId: string;
  aid: string;
  keyNo: number;
  version: number;
  state: VersionState;
  graceUntil: number | null;
}

export interface KeyRef {
  tenantId: string;
  aid: string;
  keyNo: number;
}

export async function listVersions(db: Db, k: KeyRef): Promise<KeyVersionRow[]> {
  const rows = await db
    .selectFrom('key_versions')
    .selectAll()
    .where('tenant_id', '=', k.tenantId)
    .where('aid', '=', k.aid)
    .where('key_no', '=', k.keyNo)
    .orderBy('version', 'desc')
    .execute();
  return rows.map((r) => ({
    tenantId: r.tenant_id,
    aid: r.aid,
    keyNo: Number(r.key_no),
    version: Number(r.version),
    state: r.state as VersionState,
    graceUntil: r.grace_until === null ? null : Number(r.grace_until),
  }));
}

/**
 * The versions a reader accepts for this key, in the order to try them: the current version,
 * then the previous one while `now` is before its grace end. Empty when the key has no managed
 * versions yet (the caller then uses the card's recorded version as before).
 */
export async function acceptedVersions(db: Db, k: KeyRef, now = Date.now()): Promise<number[]> {
  const rows = await listVersions(db, k);
  const cur = rows.find((r) => r.state === 'current');
  const prev = rows.filter((r) => r.state === 'previous' && (r.graceUntil ?? 0) > now).map((r) => r.version);
  return cur ? [cur.version, ...prev] : prev;
}

/** Set a version's state (insert it when missing). */
export async function setVersionState(db: Db, k: KeyRef, version: number, state: VersionState, graceUntil: number | null, now: number): Promise<void> {
  await db
    .insertInto('key_versions')
    .values({ tenant_id: k.tenantId, aid: k.aid, key_no: k.keyNo, version, state, grace_until: graceUntil, created_at: now, updated_at: now })
    .onConflict((oc) => oc.columns(['tenant_id', 'aid', 'key_no', 'version']).doUpdateSet({ state, grace_until: graceUntil, updated_at: now }))
    .execute();
}

/** The current version, or undefined when unmanaged. */
export async function currentVersion(db: Db, k: KeyRef): Promise<number | undefined> {
  return (await listVersions(db, k)).find((r) => r.state === 'current')?.version;
}

/**
 * The accepted versions of (aid, keyNo) for a reader: only for a key its role covers (else
 * undefined), in the tenant of that role. What the reader agent asks before authenticating.
 */
export async function readerAcceptedVersions(db: Db, readerId: string, aid: string, keyNo: number, now = Date.now()): Promise<{ tenantId: string; versions: number[] } | undefined> {
  const role = await db
    .selectFrom('reader_roles as rr')
    .innerJoin('readers as r', 'r.id', 'rr.reader_id')
    .select(['rr.tenant_id'])
    .where('rr.reader_id', '=', readerId)
    .where('rr.aid', '=', aid)
    .where('rr.key_no', '=', keyNo)
    .where('r.state', '=', 'active')
    .executeTakeFirst();
  if (!role) return undefined;
  return { tenantId: role.tenant_id, versions: await acceptedVersions(db, { tenantId: role.tenant_id, aid, keyNo }, now) };
}

/**
 * CampaignServiceOptions.retireVersion over custody: a retired version of a diversified key is
 * disabled on its master (`masterOf`; undefined = a random key, nothing in custody to disable),
 * so custody refuses to derive it (ERR_CUSTODY_VERSION) and no reader can get it. Idempotent: a
 * version already disabled or destroyed is done.
 */
export function disableRetiredVersion(custody: KeyCustody, masterOf: (k: KeyRef) => Promise<string | undefined>) {
  return async (k: KeyRef, version: number, who: { actor: string; correlationId: string }): Promise<void> => {
    const master = await masterOf(k);
    if (!master) return;
    const ctx: CallerContext = { actor: who.actor, purpose: 'retire a key version at the end of a rotation campaign', correlationId: who.correlationId };
    const v = (await custody.getKey(ctx, master)).versions.find((x) => x.version === version);
    if (v && v.state !== 'active') return;
    await custody.disableVersion(ctx, master, version);
  };
}

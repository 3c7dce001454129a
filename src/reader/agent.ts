// The reader agent's runtime core: for each card operation it gets the card key of its role
// (online: sealed by the CMS for this card, unsealed with the reader key; offline: from the
// expiring in-memory cache), checks the denylist, runs the operation, appends the result to the
// audit baton (written before the operation is reported done; fdatasync'd per the baton's mode,
// always before an upload) and syncs with the CMS on every
// contact (baton up; reader state and denylist down). When the CMS says the reader is no longer
// accepted, the agent wipes its cache and session keys and stops.
import { wipe } from '../core/crypto/bytes.js';
import type { ReaderUnsealer, SealedKey } from '../custody/sealed.js';
import type { KeyBinding } from '../custody/types.js';
import type { AuditBaton, BatonEntry } from './baton.js';
import type { CmsClient } from './cms-client.js';
import { ReaderError } from './errors.js';
import { type CardKeyType, DEFAULT_OFFLINE_TTL_MS, OfflineKeyCache } from './key-cache.js';
import { type MasterSource, OfflineMasters } from './masters.js';

/** A role of this reader: (tenant, AID, keyNo) and what it may do (from GET /v1/readers/self). */
export interface AgentRole {
  tenantId: string;
  aid: string;
  keyNo: number;
  operations: string[];
}

/** One sealed card key as the CMS delivers it. */
export interface KeyDelivery {
  binding: KeyBinding;
  keyType: CardKeyType;
  sealed: SealedKey;
}

/** Where online keys come from (the CMS's delivery endpoint; see http-keys.ts). */
export interface OnlineKeySource {
  fetch(req: { tenant: string; aid: string; uid: string; keyNo: number }): Promise<KeyDelivery>;
}

export interface SyncAnswer {
  readerId: string;
  state: string;
  /** The whole denylist (empty when `denylistDelta` is given). */
  denylist: string[];
  /** The denylist version this answer brings the reader to (absent from a CMS before delta sync). */
  denylistVersion?: string;
  /** Only the changes since the version the reader sent (both empty: unchanged). */
  denylistDelta?: { since: string; add: string[]; remove: string[] };
  serverTime: number;
  acked: number;
  hash: string;
}

export interface AgentOptions {
  readerId: string;
  roles: AgentRole[];
  baton: AuditBaton;
  unsealer: ReaderUnsealer;
  keys: OnlineKeySource;
  /** Baton sync / denylist channel; absent = never syncs (tests of the offline path only). */
  cms?: CmsClient;
  /** Offline TTL (5..15 minutes, default 10). Only roles with the 'offline' operation are cached. */
  offlineTtlMs?: number;
  /** Offline diversification masters (roles granted 'offline-master'); absent = none asked for. */
  masters?: MasterSource;
  /**
   * Background baton sync: the upload starts once no operation has been recorded for this long
   * (default 200 ms: a door reader uploads 200 ms after a card) ...
   */
  syncDelayMs?: number;
  /**
   * ... or at the latest this long after the first entry waiting for it, while operations keep
   * coming (default 1000 ms; >= syncDelayMs). A busy reader thus uploads about once a second
   * instead of every 200 ms: each upload costs the CMS a fixed part (request, audit commit + fsync)
   * and a delivery arriving meanwhile waits behind it (online p99).
   */
  syncMaxDelayMs?: number;
  /**
   * Entries per upload request (1..500, default 500). Each request costs the CMS a fixed part
   * (~2-3 ms of CPU, an audit commit, a store commit) on top of ~0.07 ms per entry, and a key
   * delivery that reaches the CMS during one waits for about half of it: fewer, larger requests
   * delay fewer deliveries (measured: 32-entry requests made ~4x as many deliveries wait).
   */
  syncBatchMax?: number;
  now?: () => number;
}

export interface ObtainedKey {
  key: Uint8Array;
  version: number;
  keyType: CardKeyType;
  mode: 'online' | 'offline';
  tenant: string;
}

export type AgentEvent = { type: 'online' } | { type: 'offline'; reason: string } | { type: 'revoked'; reason: string } | { type: 'synced'; acked: number };

export class ReaderAgent {
  readonly readerId: string;
  readonly cache: OfflineKeyCache;
  /** Masters held in memory for offline derivation (masters.ts). */
  readonly masters: OfflineMasters;
  private roles: AgentRole[];
  private readonly now: () => number;
  private denylist = new Set<string>();
  /** The denylist version held (memory only: a restarted agent holds none and gets the whole list). */
  private denylistVersion: string | undefined;
  private lastContact = -Infinity;
  private stoppedReason: string | undefined;
  private offline = false;
  private syncing: Promise<SyncAnswer | undefined> | undefined;
  private readonly counters = new Map<string, number>();
  private readonly seenTokens = new Map<string, number>();
  private syncTimer: NodeJS.Timeout | undefined;
  /** Wall-clock ms (Date.now, not the injectable clock): last operation, first entry waiting for an upload. */
  private lastOpAt = 0;
  private firstWaitingAt = 0;
  private refreshing: Promise<number> | undefined;
  /** Key deliveries (CMS requests) in flight, and the uploads waiting for none to be. */
  private deliveries = 0;
  private deliveryWaiters: (() => void)[] = [];
  private readonly syncBatchMax: number;
  /** When each master (tenant|AID|keyNo) was last asked for, and which were refused then. */
  private readonly masterAsked = new Map<string, number>();
  private readonly masterRefused = new Set<string>();
  onEvent?: (e: AgentEvent) => void;

  constructor(private readonly o: AgentOptions) {
    this.readerId = o.readerId;
    this.roles = o.roles.map((r) => ({ ...r, aid: r.aid.toUpperCase() }));
    this.now = o.now ?? Date.now;
    this.cache = new OfflineKeyCache(o.offlineTtlMs ?? DEFAULT_OFFLINE_TTL_MS, this.now);
    this.masters = new OfflineMasters(this.cache.ttlMs, this.now);
    this.syncBatchMax = o.syncBatchMax ?? 500;
    if (!Number.isInteger(this.syncBatchMax) || this.syncBatchMax < 1 || this.syncBatchMax > 500) throw new ReaderError('ERR_READER_CONFIG', 'syncBatchMax must be an integer 1..500');
  }

  get stopped(): string | undefined {
    return this.stoppedReason;
  }

  get baton(): AuditBaton {
    return this.o.baton;
  }

  /** Milliseconds since the CMS last answered (Infinity when never). */
  get offlineForMs(): number {
    return this.now() - this.lastContact;
  }

  isDenied(uid: string): boolean {
    return this.denylist.has(uid.toUpperCase());
  }

  setRoles(roles: AgentRole[]): void {
    this.roles = roles.map((r) => ({ ...r, aid: r.aid.toUpperCase() }));
  }

  role(aid: string, keyNo: number): AgentRole {
    const r = this.roles.find((x) => x.aid === aid.toUpperCase() && x.keyNo === keyNo);
    if (!r) throw new ReaderError('ERR_READER_NO_ROLE', `this reader has no role for AID ${aid.toUpperCase()} key ${keyNo}`);
    return r;
  }

  private assertRunning(): void {
    if (this.stoppedReason !== undefined) throw new ReaderError('ERR_READER_STOPPED', `reader agent stopped: ${this.stoppedReason}`);
  }

  /** The CMS no longer accepts this reader: wipe everything secret and stop. */
  revoke(reason: string): void {
    if (this.stoppedReason !== undefined) return;
    this.stoppedReason = reason;
    this.cache.wipe();
    this.masters.wipe();
    this.o.unsealer.clear();
    try {
      this.record({ cardUid: '', aid: '', keyNo: -1, keyVersion: -1, op: 'revoked', result: 'cache-wiped' });
    } catch {
      /* the baton is best effort here: the agent stops regardless */
    }
    this.onEvent?.({ type: 'revoked', reason });
  }

  private contact(): void {
    this.lastContact = this.now();
    if (this.offline) this.onEvent?.({ type: 'online' });
    this.offline = false;
  }

  private wentOffline(reason: string): void {
    if (!this.offline) this.onEvent?.({ type: 'offline', reason });
    this.offline = true;
  }

  private handleCmsError(e: unknown): never {
    if (e instanceof ReaderError && e.code === 'ERR_READER_REVOKED') {
      this.revoke(e.message);
      throw new ReaderError('ERR_READER_REVOKED', `${e.message}; offline cache wiped, agent stopped`);
    }
    throw e;
  }

  /**
   * The key of this reader's role for (AID, keyNo) on card `uid`: online from the CMS (and kept in
   * the offline cache), or, when the CMS is unreachable, from the cache while the TTL allows.
   */
  async obtainKey(uid: string, aid: string, keyNo: number): Promise<ObtainedKey> {
    this.assertRunning();
    const role = this.role(aid, keyNo);
    const U = uid.toUpperCase();
    const A = aid.toUpperCase();
    if (this.isDenied(U)) throw new ReaderError('ERR_READER_DENYLISTED', `card ${U} is on the CMS denylist`);
    let d: KeyDelivery;
    this.deliveries++;
    try {
      d = await this.o.keys.fetch({ tenant: role.tenantId, aid: A, uid: U, keyNo });
    } catch (e) {
      if (e instanceof ReaderError && e.code === 'ERR_READER_CMS_UNREACHABLE') {
        this.wentOffline(e.message);
        return this.offlineKey(role, U, A, keyNo, e.message);
      }
      return this.handleCmsError(e);
    } finally {
      if (--this.deliveries === 0 && this.deliveryWaiters.length) for (const w of this.deliveryWaiters.splice(0)) w();
    }
    this.contact();
    const b = d.binding;
    if (b.tenant !== role.tenantId || b.aid.toUpperCase() !== A || b.uid.toUpperCase() !== U || b.keyNo !== keyNo)
      throw new ReaderError('ERR_READER_CMS', 'the CMS delivered a key for another card, AID or key number');
    const key = await this.o.unsealer.unseal(d.sealed, b);
    // only roles granted 'offline' keep a copy for offline use
    if (role.operations.includes('offline')) this.cache.put({ tenant: role.tenantId, aid: A, uid: U, keyNo }, b.version, d.keyType, key);
    return { key, version: b.version, keyType: d.keyType, mode: 'online', tenant: role.tenantId };
  }

  private offlineKey(role: AgentRole, uid: string, aid: string, keyNo: number, why: string): ObtainedKey {
    const off = this.offlineForMs;
    if (off > this.cache.ttlMs) {
      this.cache.wipe();
      throw new ReaderError(
        'ERR_READER_OFFLINE_EXPIRED',
        Number.isFinite(off)
          ? `offline for ${Math.floor(off / 1000)} s, longer than the offline TTL (${this.cache.ttlMs / 1000} s): refusing until the CMS is reachable (${why})`
          : `the CMS has not been reached since start: no offline keys (${why})`,
      );
    }
    const perCard = role.operations.includes('offline');
    const master = role.operations.includes('offline-master');
    if (!perCard && !master) throw new ReaderError('ERR_READER_OFFLINE_NO_KEY', `offline, and the role for AID ${aid} key ${keyNo} does not allow offline use (${why})`);
    if (perCard) {
      try {
        const c = this.cache.get({ tenant: role.tenantId, aid, uid, keyNo });
        return { key: c.key, version: c.version, keyType: c.keyType, mode: 'offline', tenant: role.tenantId };
      } catch (e) {
        if (!master || !(e instanceof ReaderError) || e.code !== 'ERR_READER_OFFLINE_NO_KEY') throw e;
      }
    }
    // a card not seen online: derive its key from the master held in memory
    const m = this.masters.derive(role.tenantId, aid, uid, keyNo);
    return { key: m.key, version: m.version, keyType: m.keyType, mode: 'offline', tenant: role.tenantId };
  }

  /**
   * Fetch the masters of the roles granted 'offline-master' that are not held or are past half
   * their TTL (called after every successful contact; `force` refetches all). Each receipt is a
   * baton entry ('master-received'). A refusal by the CMS is a baton entry too and drops the held
   * master; unreachable: keeps what is held (it expires on its own). Returns how many were received.
   */
  refreshMasters(force = false): Promise<number> {
    if (!this.o.masters || this.stoppedReason !== undefined) return Promise.resolve(0);
    // one refresh at a time (a sync's background refresh and an explicit one share it)
    this.refreshing ??= this.doRefreshMasters(this.o.masters, force).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefreshMasters(src: MasterSource, force: boolean): Promise<number> {
    this.masters.prune();
    let n = 0;
    for (const r of this.roles) {
      if (!r.operations.includes('offline-master')) continue;
      // asked (received or refused) less than half a TTL ago: not again yet
      const id = `${r.tenantId}|${r.aid}|${r.keyNo}`;
      const last = this.masterAsked.get(id);
      const recent = last !== undefined && this.now() - last < this.masters.ttlMs / 2;
      if (!force && recent && (this.masterRefused.has(id) || this.masters.ageMs(r.tenantId, r.aid, r.keyNo) !== undefined)) continue;
      try {
        const m = await src.fetch({ tenant: r.tenantId, aid: r.aid, keyNo: r.keyNo });
        if (this.stoppedReason !== undefined) {
          wipe(m.material);
          return n;
        }
        this.masters.put(m);
        this.masterAsked.set(id, this.now());
        this.masterRefused.delete(id);
        this.record({ cardUid: '', aid: r.aid, keyNo: r.keyNo, keyVersion: m.version, op: 'master-received', result: 'ok' });
        n++;
      } catch (e) {
        if (e instanceof ReaderError && e.code === 'ERR_READER_CMS_UNREACHABLE') {
          this.wentOffline(e.message);
          return n;
        }
        if (e instanceof ReaderError && e.code === 'ERR_READER_REVOKED') return this.handleCmsError(e);
        const code = (e as { cmsCode?: string; code?: string }).cmsCode ?? (e as { code?: string }).code ?? 'ERR_UNKNOWN';
        this.masterAsked.set(id, this.now());
        this.masterRefused.add(id);
        this.masters.drop(r.tenantId, r.aid, r.keyNo);
        this.record({ cardUid: '', aid: r.aid, keyNo: r.keyNo, keyVersion: -1, op: 'master-received', result: `refused:${code}`.slice(0, 128) });
      }
    }
    return n;
  }

  /** Append an operation to the baton (written; fdatasync'd per the baton's durability mode). */
  record(f: { cardUid: string; aid: string; keyNo: number; keyVersion: number; op: string; result: string }): BatonEntry {
    return this.o.baton.append({ time: this.now(), readerId: this.readerId, ...f, cardUid: f.cardUid.toUpperCase(), aid: f.aid.toUpperCase() });
  }

  /**
   * Clone check on a card-side counter that only grows (e.g. a loan sequence number in the record
   * file): a value below the last one this reader saw for the card means an older copy of it.
   */
  checkCounter(uid: string, aid: string, name: string, value: number): boolean {
    const k = `${uid.toUpperCase()}|${aid.toUpperCase()}|${name}`;
    const last = this.counters.get(k);
    if (last !== undefined && value < last) return false;
    this.counters.set(k, value);
    return true;
  }

  /**
   * Replay defence for operation tokens / nonces: accepted once until `expiresAtMs`; refused when
   * expired or seen before.
   */
  consumeToken(jti: string, expiresAtMs: number): void {
    const t = this.now();
    for (const [k, exp] of this.seenTokens) if (exp <= t) this.seenTokens.delete(k);
    if (!jti || typeof jti !== 'string') throw new ReaderError('ERR_READER_TOKEN', 'operation token has no id');
    if (expiresAtMs <= t) throw new ReaderError('ERR_READER_TOKEN', 'operation token has expired');
    if (this.seenTokens.has(jti)) throw new ReaderError('ERR_READER_REPLAY', 'operation token already used (replay refused)');
    this.seenTokens.set(jti, expiresAtMs);
  }

  /**
   * One contact with the CMS: upload pending baton entries (or just ask for state when none), take
   * the denylist and the reader's state. Concurrent calls share one request. Offline: resolves
   * undefined. Revoked: wipes, stops, throws ERR_READER_REVOKED.
   */
  sync(): Promise<SyncAnswer | undefined> {
    if (!this.o.cms) return Promise.resolve(undefined);
    if (this.syncing) {
      // one upload at a time; entries appended after the one in flight started go in the next
      const head = this.o.baton.length;
      return this.syncing.then((a) => (a && this.o.baton.acknowledged < head ? this.sync() : a));
    }
    this.syncing = this.doSync().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  /**
   * Sync soon in the background (operations close together share one upload): when no operation
   * came for `syncDelayMs`, or `syncMaxDelayMs` after the first waiting entry; never throws.
   */
  scheduleSync(): void {
    if (!this.o.cms || this.stoppedReason !== undefined) return;
    this.lastOpAt = Date.now();
    if (this.syncTimer) return;
    this.firstWaitingAt = this.lastOpAt;
    this.armSync(this.o.syncDelayMs ?? 200);
  }

  private armSync(ms: number): void {
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      const quiet = this.o.syncDelayMs ?? 200;
      const max = Math.max(quiet, this.o.syncMaxDelayMs ?? 1000);
      const wait = Math.min(this.lastOpAt + quiet, this.firstWaitingAt + max) - Date.now();
      if (wait > 0 && this.stoppedReason === undefined) return this.armSync(wait);
      this.sync().catch(() => undefined);
    }, ms);
    this.syncTimer.unref();
  }

  /**
   * Resolves once none of this reader's key deliveries is in flight (at once when none is), or
   * after `maxWaitMs` at the latest (a reader whose deliveries overlap without pause still syncs:
   * the sync brings the denylist and the reader's state).
   */
  private noDeliveryInFlight(maxWaitMs: number): Promise<void> {
    if (this.deliveries === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        const i = this.deliveryWaiters.indexOf(done);
        if (i >= 0) this.deliveryWaiters.splice(i, 1);
        resolve();
      };
      const t = setTimeout(done, maxWaitMs);
      t.unref();
      this.deliveryWaiters.push(done);
    });
  }

  private async doSync(): Promise<SyncAnswer | undefined> {
    const cms = this.o.cms!;
    const baton = this.o.baton;
    const max = this.syncBatchMax;
    let last: SyncAnswer | undefined;
    try {
      for (;;) {
        // group commit: nothing goes to the CMS that a power loss could still take from the
        // reader's log (the CMS would then hold entries the reader's chain no longer has)
        await baton.flush();
        // a key delivery in flight goes first: the upload reaches the CMS after it has been
        // answered, never in front of it (the CMS stores an upload before it serves what came after)
        await this.noDeliveryInFlight(this.o.syncMaxDelayMs ?? 1000);
        // only entries already durable (those appended while waiting go in the next request)
        const pending = baton.pending(Math.min(max, Math.max(0, baton.durable - baton.acknowledged)));
        // uploads on the client's background connection; a plain contact on the delivery one (keeps
        // it warm). The denylist version held: the CMS answers with the changes since it only.
        const q = this.denylistVersion !== undefined ? `?denylist=${encodeURIComponent(this.denylistVersion)}` : '';
        const ans = pending.length ? await cms.call<SyncAnswer>('POST', `/v1/readers/self/baton${q}`, { entries: pending }, { background: true }) : await cms.call<SyncAnswer>('GET', `/v1/readers/self/sync${q}`);
        this.contact();
        this.apply(ans);
        last = ans;
        const before = baton.acknowledged;
        if (ans.acked > baton.acknowledged && ans.acked <= baton.length) baton.acknowledge(ans.acked);
        // a full request went: more may wait (stop if the CMS took none of it: the next sync retries)
        if (pending.length < max || baton.acknowledged === before) break;
      }
      this.onEvent?.({ type: 'synced', acked: this.o.baton.acknowledged });
      // masters due for renewal: fetched in the background after the contact (never delays it)
      if (this.o.masters) void this.refreshMasters().catch(() => undefined);
      return last;
    } catch (e) {
      if (e instanceof ReaderError && e.code === 'ERR_READER_CMS_UNREACHABLE') {
        this.wentOffline(e.message);
        return undefined;
      }
      return this.handleCmsError(e);
    }
  }

  private apply(ans: SyncAnswer): void {
    if (ans.state !== 'active') {
      this.revoke(`the CMS reports this reader ${ans.state}`);
      throw new ReaderError('ERR_READER_REVOKED', `the CMS reports this reader ${ans.state}; offline cache wiped, agent stopped`);
    }
    const d = ans.denylistDelta;
    if (d) {
      if (this.denylistVersion === undefined || d.since !== this.denylistVersion) {
        // changes relative to a version this agent does not hold: not applied; the next contact
        // asks for the whole list (the list held stays as it was until then)
        this.denylistVersion = undefined;
        return;
      }
      for (const u of d.add) this.denylist.add(u.toUpperCase());
      for (const u of d.remove) this.denylist.delete(u.toUpperCase());
    } else this.denylist = new Set(ans.denylist.map((u) => u.toUpperCase()));
    this.denylistVersion = typeof ans.denylistVersion === 'string' ? ans.denylistVersion : undefined;
  }

  /** Stop (e.g. shutdown): wipe secrets; the baton stays on disk for the next start. */
  close(): void {
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    this.cache.wipe();
    this.masters.wipe();
    this.o.unsealer.clear();
    if (this.stoppedReason === undefined) this.stoppedReason = 'closed';
    this.o.baton.close();
  }
}

/** Run `fn` with an obtained key and wipe it afterwards. */
export async function withKey<T>(k: ObtainedKey, fn: (key: Uint8Array) => Promise<T>): Promise<T> {
  try {
    return await fn(k.key);
  } finally {
    wipe(k.key);
  }
}

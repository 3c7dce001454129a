// Online key delivery for runtime readers: a reader (mTLS) asks for the key of its role for the
// card in front of it, by UID (random-UID cards: the UID GetCardUID answered). The CMS checks, in
// order: the reader is active; it holds a role granting 'deliver' on (AID, keyNo) — which also
// pins the tenant; the card is known and usable (active); the application is recorded on the card
// (its key version). Then custody derives (diversified) or unwraps (random) the key and seals it to
// the reader's certificate key, with a short TTL; custody audits the release. Every refusal is a
// 403 with a stable code, audited here.
import type BetterSqlite3 from 'better-sqlite3';
import type { Kysely } from 'kysely';
import type { SealedKey } from '../../custody/sealed.js';
import type { CallerContext, KeyBinding, KeyCustody } from '../../custody/types.js';
import { CARD_USABLE, type Application, type CardState, type ReaderRepository, type TenantRepository } from '../domain/index.js';
import type { Database } from '../storage/index.js';
import type { StationAuditSink } from '../jobs/audit.js';
import { JobError } from '../jobs/errors.js';
import { CardKeys } from '../jobs/keys.js';
import { RecipientCache } from '../jobs/recipient.js';
import { checkAidHex, checkUidHex } from '../jobs/plan.js';
import { type Prepared, prepare, preparedText } from './prepared.js';
import { Coalescer } from './batch.js';
import { dialectOf } from '../storage/dialect.js';
import { READER_NOT_ACTIVE, type ReaderRecheck } from '../api/auth.js';
import { ApiError } from '../api/errors.js';

/** The reader (state, certificate), its role for (aid, keyNo), and the card (state, key version) in one row. */
interface LookupRow {
  state: string;
  cert_pem: string | null;
  tenant_id: string | null;
  operations: string | null;
  /** null: the card is unknown. */
  card_state: string | null;
  key_version: number | string | null;
  /** Non-null: the presented certificate's serial is revoked (read only for a ReaderRecheck). */
  revoked: string | null;
}

/** The lookup's arguments: reader id, AID, key number, card UID, certificate serial to re-check ('' for none). */
type LookupKey = [string, string, number, string, string];

/**
 * The same lookup for N requests in ONE PostgreSQL statement: the arguments as five parallel
 * arrays, numbered by `with ordinality`; each request's row carries its number (`i`, from 1). The
 * joins and conditions are those of the one-request lookup (the constructor's `prepare`) with
 * `q.<column>` for each argument, so each request gets exactly the row it would get alone: the
 * reader by id (inner join: an unknown reader gives no row), its role for (aid, keyNo), the card,
 * the key's version on it, and the revocation of the presented certificate's serial. One
 * statement is one snapshot, taken when it runs — after every request of the batch arrived.
 */
const LOOKUP_MANY_SQL = `select q.i::int as i, r.state, r.cert_pem, rr.tenant_id, rr.operations, c.state as card_state, k.key_version, rc.serial as revoked
from unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[]) with ordinality as q(reader_id, aid, key_no, uid, serial, i)
join readers as r on r.id = q.reader_id
left join reader_roles as rr on rr.reader_id = r.id and rr.aid = q.aid and rr.key_no = q.key_no
left join cards as c on c.uid = q.uid
left join card_keys as k on k.uid = c.uid and k.aid = q.aid and k.key_no = q.key_no
left join revoked_certificates as rc on rc.serial = q.serial`;

export interface DeliveryRequest {
  uid: string;
  aid: string;
  keyNo: number;
}

export interface Delivery {
  uid: string;
  aid: string;
  keyNo: number;
  keyVersion: number;
  binding: KeyBinding;
  sealed: SealedKey;
}

export interface KeyDeliveryOptions {
  db: Kysely<Database>;
  custody: KeyCustody;
  readers: ReaderRepository;
  tenants: TenantRepository;
  audit: StationAuditSink;
  keys?: CardKeys;
  recipients?: RecipientCache;
  /** Delivery lifetime in seconds (default 60). */
  ttlSeconds?: number;
  now?: () => number;
  /** SQLite: the native connection, for statements prepared once (see prepared.ts). */
  sqlite?: BetterSqlite3.Database;
  /**
   * PostgreSQL: the lookups of one event-loop turn in one statement (default true; see batch.ts),
   * at most `maxBatch` (default 128) per statement. A batch of one uses the one-request statement.
   */
  coalesce?: boolean;
  maxBatch?: number;
  /** Told the number of lookups of every coalesced statement (benchmark / tests). */
  onLookupBatch?: (size: number) => void;
}

export class KeyDelivery {
  private readonly keys: CardKeys;
  private readonly recipients: RecipientCache;
  private readonly ttl: number;
  private readonly now: () => number;
  /** Applications change only by layout registration (immutable once registered): cached. */
  private readonly apps = new Map<string, Application>();
  /**
   * ONE lookup (precompiled): the reader's state and certificate, its role for (aid, keyNo), the
   * card's state and the key's version on it. Every join is on a unique key, so at most one row;
   * no row means the reader is unknown. (Before: two lookups — on PostgreSQL a round trip each.)
   */
  private readonly lookup: Prepared<LookupKey, LookupRow>;
  /** PostgreSQL: the lookups of one event-loop turn coalesced (one round trip for all of them). */
  private readonly batched?: Coalescer<LookupKey, LookupRow>;

  constructor(private readonly o: KeyDeliveryOptions) {
    this.keys = o.keys ?? new CardKeys(o.custody);
    this.recipients = o.recipients ?? new RecipientCache(o.readers);
    this.ttl = o.ttlSeconds ?? 60;
    this.now = o.now ?? Date.now;
    const db = o.db;
    this.lookup = prepare<Database, LookupKey, LookupRow>(db, 5, (readerId, aid, keyNo, uid, serial) =>
      db
        .selectFrom('readers as r')
        .leftJoin('reader_roles as rr', (j) => j.onRef('rr.reader_id', '=', 'r.id').on('rr.aid', '=', aid!).on('rr.key_no', '=', keyNo as unknown as number))
        .leftJoin('cards as c', (j) => j.on('c.uid', '=', uid!))
        .leftJoin('card_keys as k', (j) => j.onRef('k.uid', '=', 'c.uid').on('k.aid', '=', aid!).on('k.key_no', '=', keyNo as unknown as number))
        .leftJoin('revoked_certificates as rc', (j) => j.on('rc.serial', '=', serial!))
        .select(['r.state', 'r.cert_pem', 'rr.tenant_id', 'rr.operations', 'c.state as card_state', 'k.key_version', 'rc.serial as revoked'])
        .where('r.id', '=', readerId!),
      o.sqlite,
    );
    if (!o.sqlite && (o.coalesce ?? true) && dialectOf(db) === 'postgres') {
      const many = preparedText<Database, LookupRow & { i: number }>(db, LOOKUP_MANY_SQL);
      const one = this.lookup;
      this.batched = new Coalescer<LookupKey, LookupRow>(
        async (keys) => {
          if (keys.length === 1) return [await one.first(...keys[0]!)];
          const cols: [string[], string[], number[], string[], string[]] = [[], [], [], [], []];
          for (const k of keys) {
            cols[0].push(k[0]);
            cols[1].push(k[1]);
            cols[2].push(k[2]);
            cols[3].push(k[3]);
            cols[4].push(k[4]);
          }
          const out: (LookupRow | undefined)[] = new Array<LookupRow | undefined>(keys.length).fill(undefined);
          for (const row of await many(cols)) {
            const i = row.i - 1; // at most one row per request: every join is on a unique key
            if (!(i >= 0 && i < keys.length) || out[i] !== undefined) throw new Error('batched delivery lookup: unexpected row number');
            out[i] = row;
          }
          return out;
        },
        o.maxBatch ?? 128,
        o.onLookupBatch,
      );
    }
  }

  /**
   * Whether a role's operations (the stored JSON text, read with every request) grant 'deliver'.
   * The answer is a pure function of the text, so it is kept per distinct text (a handful: roles
   * share a few operation sets) instead of parsing the JSON on every delivery; the text itself is
   * still read fresh by every request's lookup.
   */
  private readonly grants = new Map<string, boolean>();
  private grantsDeliver(operations: string): boolean {
    let g = this.grants.get(operations);
    if (g === undefined) {
      const ops = JSON.parse(operations) as unknown;
      g = Array.isArray(ops) && ops.includes('deliver');
      if (this.grants.size >= 1024) this.grants.clear();
      this.grants.set(operations, g);
    }
    return g;
  }

  private async application(aid: string): Promise<Application | undefined> {
    const app = await this.o.tenants.application(aid);
    if (app) this.apps.set(aid, app);
    return app;
  }

  /**
   * `recheck`: the API handed this request's reader re-check (certificate revocation + reader
   * state, src/cms/api/auth.ts ReaderRecheck) to this lookup: it is read in the same query, a
   * refusal is 403 ERR_READER_NOT_ACTIVE (as the API's own re-check answers; audited by the API
   * as a refused request), and `recheck.done` is set once it passed.
   */
  async deliver(ctx: CallerContext, readerId: string, req: DeliveryRequest, recheck?: ReaderRecheck): Promise<Delivery> {
    try {
      return await this.deliverUnchecked(ctx, readerId, req, recheck);
    } catch (e) {
      if (e instanceof ApiError) throw e; // the reader re-check: refused like the API's own check
      // the refusal's identifiers (as presented, bounded), built only for a refusal
      const d = { readerId, uid: String(req?.uid ?? '').slice(0, 20).toUpperCase(), aid: String(req?.aid ?? '').slice(0, 6).toUpperCase(), keyNo: typeof req?.keyNo === 'number' ? req.keyNo : -1 };
      const code = (e as { code?: string }).code ?? 'ERR_INTERNAL';
      await this.o.audit.append({ time: new Date(this.now()).toISOString(), source: 'cms', op: 'key_delivery', outcome: 'refused', actor: ctx.actor, correlationId: ctx.correlationId, ...d, code });
      throw e;
    }
  }

  private async deliverUnchecked(ctx: CallerContext, readerId: string, req: DeliveryRequest, recheck: ReaderRecheck | undefined): Promise<Delivery> {
    const uid = checkUidHex(req?.uid);
    const aid = checkAidHex(req?.aid);
    const keyNo = req?.keyNo;
    if (!Number.isInteger(keyNo) || keyNo < 0 || keyNo > 13) throw new JobError('ERR_JOB_BAD_INPUT', 'keyNo must be an integer in 0..13');
    // one query: the reader's state, its certificate, its role for (aid, keyNo), the card and the key's version
    const key: LookupKey = [readerId, aid, keyNo, uid, recheck?.serial ?? ''];
    const row = await (this.batched ? this.batched.load(key) : this.lookup.first(...key));
    if (recheck) {
      if (!row || row.revoked !== null || row.state !== 'active') throw new ApiError(403, 'ERR_READER_NOT_ACTIVE', READER_NOT_ACTIVE);
      recheck.done = true;
    }
    if (!row || row.state !== 'active') throw new JobError('ERR_DELIVERY_READER_STATE', `reader ${readerId} is ${row?.state ?? 'unknown'}`);
    if (!row.operations || !this.grantsDeliver(row.operations)) throw new JobError('ERR_DELIVERY_FORBIDDEN', `reader ${readerId} has no role to receive key ${keyNo} of ${aid}`);
    // cached applications without a promise turn (most deliveries)
    const app = this.apps.get(aid) ?? (await this.application(aid));
    if (!app || app.tenantId !== row.tenant_id) throw new JobError('ERR_DELIVERY_FORBIDDEN', `application ${aid} is not the role's tenant's`);
    // the card came with the same row (checked in the same order as before: reader, role, tenant, card)
    // a 4-byte 08…: the random ID a random-UID card answers at anticollision, never a card's UID (GetCardUID gives it)
    if (row.card_state === null || row.card_state === undefined) throw new JobError('ERR_DELIVERY_CARD_STATE', /^08[0-9A-F]{6}$/.test(uid) ? `${uid} is a random ID, not a card UID: send the UID GetCardUID answers` : `card ${uid} is unknown`);
    if (!(CARD_USABLE as readonly string[]).includes(row.card_state)) throw new JobError('ERR_DELIVERY_CARD_STATE', `card ${uid} is ${row.card_state as CardState}`);
    if (row.key_version === null || row.key_version === undefined) throw new JobError('ERR_DELIVERY_NOT_INSTALLED', `application ${aid} is not installed on card ${uid}`);
    const version = Number(row.key_version);
    const source = await this.keys.appSource(this.o.db, app, uid, keyNo, version);
    // the certificate PEM came with the reader row: no second lookup
    const { recipient } = this.recipients.fromPem(readerId, row.cert_pem);
    const sealed = await this.o.custody.seal(ctx, source, recipient, { ttlSeconds: this.ttl });
    return { uid, aid, keyNo, keyVersion: version, binding: source.binding, sealed };
  }
}

// Key delivery on PostgreSQL: the delivery lookups of one event-loop turn go out as ONE statement
// (src/cms/delivery/batch.ts, `unnest ... with ordinality`), and every request still gets exactly
// the answer it got alone — same refusal, same order of checks — on a real PostgreSQL. A change
// committed between two batches (a suspension, a certificate revocation) is seen by the next
// batch; a failed statement fails every request of its batch and no other.
import { generateKeyPairSync } from 'node:crypto';
import type PgModule from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Coalescer } from '../../src/cms/delivery/batch.js';
import { type DeliveryRequest, KeyDelivery } from '../../src/cms/delivery/service.js';
import type { Application, ReaderRepository, TenantRepository } from '../../src/cms/domain/index.js';
import type { ReaderRecheck } from '../../src/cms/api/auth.js';
import { MemoryStationAudit } from '../../src/cms/jobs/audit.js';
import type { CardKeys } from '../../src/cms/jobs/keys.js';
import { RecipientCache } from '../../src/cms/jobs/recipient.js';
import { type DatabaseHandle, openDatabase } from '../../src/cms/storage/index.js';
import type { KeyCustody } from '../../src/custody/types.js';
import { testSchema } from '../helpers/pg-schema.js';
import { PG_URL } from '../helpers/system.js';
import { postgresAvailable } from './storage-backends.js';

describe('Coalescer', () => {
  it('collects the loads of one turn into one call, answers each its own entry, in order', async () => {
    const calls: string[][] = [];
    const c = new Coalescer<string, string>(async (keys) => {
      calls.push([...keys]);
      return keys.map((k) => (k === 'none' ? undefined : k.toUpperCase()));
    });
    const a = await Promise.all([c.load('a'), c.load('none'), c.load('b'), c.load('a')]);
    expect(a).toEqual(['A', undefined, 'B', 'A']);
    expect(calls).toEqual([['a', 'none', 'b', 'a']]);
    await c.load('c');
    expect(calls).toEqual([['a', 'none', 'b', 'a'], ['c']]); // a later turn: its own call
  });

  it('splits a turn into calls of at most maxBatch keys', async () => {
    const sizes: number[] = [];
    const c = new Coalescer<number, number>(async (keys) => keys.map((k) => k * 2), 3, (n) => sizes.push(n));
    expect(await Promise.all([1, 2, 3, 4, 5, 6, 7].map((k) => c.load(k)))).toEqual([2, 4, 6, 8, 10, 12, 14]);
    expect(sizes).toEqual([3, 3, 1]);
  });

  it("rejects every waiter of a failed call (thrown, rejected, wrong length) and no other call's", async () => {
    let mode: 'throw' | 'reject' | 'short' | 'ok' = 'throw';
    const c = new Coalescer<number, number>(
      (keys) => {
        if (mode === 'throw') throw new Error('boom');
        if (mode === 'reject') return Promise.reject(new Error('down'));
        return Promise.resolve(mode === 'short' ? keys.slice(1) : keys);
      },
      2,
    );
    const settle = (ps: Promise<unknown>[]) => Promise.allSettled(ps).then((r) => r.map((x) => (x.status === 'fulfilled' ? x.value : (x.reason as Error).message)));
    expect(await settle([c.load(1), c.load(2)])).toEqual(['boom', 'boom']);
    mode = 'reject';
    expect(await settle([c.load(1), c.load(2)])).toEqual(['down', 'down']);
    mode = 'short';
    expect(await settle([c.load(1), c.load(2)])).toEqual([expect.stringContaining('answered 1 entries for 2 keys'), expect.stringContaining('answered 1 entries for 2 keys')]);
    mode = 'ok';
    expect(await settle([c.load(1), c.load(2), c.load(3)])).toEqual([1, 2, 3]);
  });
});

// ---- PostgreSQL --------------------------------------------------------------------------------

const T0 = 1_700_000_000_000;
/** Reader ids that must survive the array binding as data ($1::text[]). */
const ODD_ID = 'we"ird,{id}\\ \'x\' ';
const NULL_ID = 'NULL';

/** Every statement sent to PostgreSQL, by pg's Client.query (the round trips of the CMS). */
const sent: string[] = [];
/** The parameters of every statement, in the same order as `sent`. */
const sentValues: unknown[] = [];
const pg = (await import('pg')).default as typeof PgModule;
const origQuery = pg.Client.prototype.query;
let failNext: ((text: string) => boolean) | undefined;
function textOf(q: unknown): string {
  return typeof q === 'string' ? q : typeof (q as { text?: unknown })?.text === 'string' ? (q as { text: string }).text : '';
}
const isBatch = (t: string) => t.includes('from unnest(');
const isSingle = (t: string) => !isBatch(t) && t.includes('"revoked_certificates"');

describe.skipIf(!(await postgresAvailable()))('key delivery lookups coalesced on PostgreSQL', () => {
  const schema = testSchema('dbatch');
  let h: DatabaseHandle;
  const seals: string[] = [];
  const apps = new Map<string, Application>();

  beforeAll(async () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    (pg.Client.prototype as any).query = function (this: PgModule.Client, ...args: unknown[]) {
      const t = textOf(args[0]);
      sent.push(t);
      sentValues.push(args[1]);
      if (failNext?.(t)) {
        failNext = undefined;
        return Promise.reject(new Error('injected: connection lost'));
      }
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      return (origQuery as any).apply(this, args);
    };
    h = await openDatabase({ kind: 'postgres', url: PG_URL, schema, poolSize: 4 });
    const db = h.db;
    await db.insertInto('tenants').values([
      { id: 't1', name: 'T1', created_at: T0 },
      { id: 't2', name: 'T2', created_at: T0 },
    ]).execute();
    for (const [aid, tenantId] of [['A1C001', 't1'], ['B2C002', 't2']] as const) {
      await db.insertInto('applications').values({ aid, tenant_id: tenantId, name: aid, key_type: 'AES', key_count: 3, layout_name: 'l', definition: '{}', created_at: T0 }).execute();
      apps.set(aid, { aid, tenantId, name: aid, keyType: 'AES', keyCount: 3, layoutName: 'l', definition: {} as Application['definition'], createdAt: T0 });
    }
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const reader = (id: string, state: string, serial: string) => ({ id, name: id, state, cert_serial: serial, cert_pem: pem, cert_not_after: T0 * 2, created_at: T0, updated_at: T0 });
    await db.insertInto('readers').values([
      reader('door1', 'active', 'S1'),
      reader('door2', 'active', 'S2'),
      reader('door3', 'active', 'S3'),
      reader('susp', 'suspended', 'S4'),
      reader('inst', 'active', 'S5'),
      reader(ODD_ID, 'active', 'S6'),
      reader(NULL_ID, 'active', 'S7'),
    ]).execute();
    const role = (reader_id: string, aid: string, key_no: number, tenant_id: string, ops: string[]) => ({ reader_id, aid, key_no, tenant_id, operations: JSON.stringify(ops), created_at: T0 });
    await db.insertInto('reader_roles').values([
      role('door1', 'A1C001', 1, 't1', ['deliver']),
      role('door2', 'A1C001', 1, 't1', ['deliver']),
      role('door3', 'A1C001', 1, 't1', ['deliver']),
      role('door1', 'B2C002', 1, 't1', ['deliver']), // the role's tenant is not the application's
      role('susp', 'A1C001', 1, 't1', ['deliver']),
      role('inst', 'A1C001', 1, 't1', ['install', 'issue']),
      role(ODD_ID, 'A1C001', 1, 't1', ['deliver']),
      role(NULL_ID, 'A1C001', 1, 't1', ['deliver']),
    ]).execute();
    const card = (uid: string, state: string) => ({ uid, state, random_uid: 1, picc_key_version: 1, created_at: T0, updated_at: T0 });
    await db.insertInto('cards').values([card('04AA000000000001', 'active'), card('04AA000000000002', 'suspended'), card('04AA000000000003', 'active')]).execute();
    await db.insertInto('card_applications').values([
      { uid: '04AA000000000001', aid: 'A1C001', installed_at: T0 },
      { uid: '04AA000000000002', aid: 'A1C001', installed_at: T0 },
    ]).execute();
    await db.insertInto('card_keys').values([
      { uid: '04AA000000000001', aid: 'A1C001', key_no: 1, key_version: 3, updated_at: T0 },
      { uid: '04AA000000000002', aid: 'A1C001', key_no: 1, key_version: 4, updated_at: T0 },
    ]).execute();
  });

  afterAll(async () => {
    pg.Client.prototype.query = origQuery;
    await h?.close(); // the schema goes in the global teardown (test/helpers/pg-schema.ts)
  });
  afterEach(() => {
    failNext = undefined;
  });

  function service(opts: { coalesce?: boolean; maxBatch?: number; sizes?: number[] } = {}) {
    const audit = new MemoryStationAudit();
    const custody = {
      seal: async (_ctx: unknown, source: { binding: { uid: string } }) => {
        seals.push(source.binding.uid);
        return { sealed: true } as unknown;
      },
    } as unknown as KeyCustody;
    const keys = {
      appSource: async (_db: unknown, app: Application, uid: string, keyNo: number, version: number) => ({ kind: 'test', binding: { tenantId: app.tenantId, aid: app.aid, uid, keyNo, version } }),
    } as unknown as CardKeys;
    const tenants = { application: async (aid: string) => apps.get(aid) } as unknown as TenantRepository;
    const d = new KeyDelivery({
      db: h.db,
      custody,
      readers: {} as ReaderRepository,
      tenants,
      audit,
      keys,
      recipients: new RecipientCache({} as ReaderRepository),
      ...(opts.coalesce !== undefined ? { coalesce: opts.coalesce } : {}),
      ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
      ...(opts.sizes ? { onLookupBatch: (n: number) => opts.sizes!.push(n) } : {}),
    });
    return { d, audit };
  }

  const ctx = { actor: 'reader:test', purpose: 'key delivery', correlationId: 'c1' };
  type Case = [reader: string, req: DeliveryRequest, serial?: string];
  const req = (uid: string, aid = 'A1C001', keyNo = 1): DeliveryRequest => ({ uid, aid, keyNo });
  const CASES: Case[] = [
    ['door1', req('04AA000000000001')], // delivered, version 3
    ['nobody', req('04AA000000000001')], // unknown reader
    ['susp', req('04AA000000000001')], // suspended reader
    ['door1', req('04AA000000000001', 'A1C001', 2)], // no role for key 2
    ['inst', req('04AA000000000001')], // a role without 'deliver'
    ['door1', req('04AA000000000001', 'B2C002')], // the application is not the role's tenant's
    ['door1', req('04BB000000000009')], // unknown card
    ['door1', req('08A1B2C3')], // a random ID, not a UID
    ['door1', req('04AA000000000002')], // card suspended
    ['door1', req('04AA000000000003')], // application not on the card
    ['door2', req('04AA000000000001'), 'S2'], // re-check passes
    ['door3', req('04AA000000000001'), 'REVOKED3'], // re-check: certificate revoked
    ['susp', req('04AA000000000001'), 'S4'], // re-check: reader suspended
    ['nobody', req('04AA000000000001'), 'S9'], // re-check: reader unknown
    [ODD_ID, req('04AA000000000001')], // odd characters in the id survive the array binding
    [NULL_ID, req('04AA000000000001')], // the string 'NULL' is not a null
    ['door1', req('04AA000000000001')], // the same request twice in a batch
  ];

  /** One delivery's outcome: the key version, or the refusal's code + message + whether the re-check was marked done. */
  async function outcome(p: Promise<{ keyVersion: number }>, recheck?: ReaderRecheck): Promise<string> {
    try {
      const r = await p;
      return `ok v${r.keyVersion}${recheck ? ` done=${recheck.done}` : ''}`;
    } catch (e) {
      const x = e as { code?: string; message: string };
      return `${x.code} ${x.message}${recheck ? ` done=${recheck.done}` : ''}`;
    }
  }
  const run = (d: KeyDelivery, c: Case) => {
    const recheck = c[2] !== undefined ? { serial: c[2], done: false } : undefined;
    return outcome(d.deliver(ctx, c[0], c[1], recheck), recheck);
  };

  it('one statement for the lookups of one turn; each request answered exactly as alone', async () => {
    await h.db.insertInto('revoked_certificates').values({ serial: 'REVOKED3', reason: 'key compromise', revoked_at: T0 }).execute();
    // alone: each request in its own turn (the one-request statement), and without coalescing
    const alone = service();
    const sequential: string[] = [];
    for (const c of CASES) sequential.push(await run(alone.d, c));
    const plain = service({ coalesce: false });
    const uncoalesced: string[] = [];
    for (const c of CASES) uncoalesced.push(await run(plain.d, c));
    expect(uncoalesced).toEqual(sequential);
    expect(sequential).toEqual([
      'ok v3',
      'ERR_DELIVERY_READER_STATE reader nobody is unknown',
      'ERR_DELIVERY_READER_STATE reader susp is suspended',
      'ERR_DELIVERY_FORBIDDEN reader door1 has no role to receive key 2 of A1C001',
      'ERR_DELIVERY_FORBIDDEN reader inst has no role to receive key 1 of A1C001',
      'ERR_DELIVERY_FORBIDDEN application B2C002 is not the role\'s tenant\'s',
      'ERR_DELIVERY_CARD_STATE card 04BB000000000009 is unknown',
      'ERR_DELIVERY_CARD_STATE 08A1B2C3 is a random ID, not a card UID: send the UID GetCardUID answers',
      'ERR_DELIVERY_CARD_STATE card 04AA000000000002 is suspended',
      'ERR_DELIVERY_NOT_INSTALLED application A1C001 is not installed on card 04AA000000000003',
      'ok v3 done=true',
      'ERR_READER_NOT_ACTIVE the reader certificate is not (or no longer) accepted done=false',
      'ERR_READER_NOT_ACTIVE the reader certificate is not (or no longer) accepted done=false',
      'ERR_READER_NOT_ACTIVE the reader certificate is not (or no longer) accepted done=false',
      'ok v3',
      'ok v3',
      'ok v3',
    ]);
    // together, in one turn: one statement, the same answers
    const sizes: number[] = [];
    const together = service({ sizes });
    sent.length = 0;
    sentValues.length = 0;
    seals.length = 0;
    const batched = await Promise.all(CASES.map((c) => run(together.d, c)));
    expect(batched).toEqual(sequential);
    expect(sizes).toEqual([CASES.length]);
    expect(sent.filter(isBatch)).toHaveLength(1);
    expect(sent.filter(isSingle)).toHaveLength(0);
    expect(seals).toHaveLength(sequential.filter((s) => s.startsWith('ok')).length); // only the delivered keys were sealed
    // the delivery refusals audited as alone (the re-check refusals are the API's to audit)
    expect(together.audit.events.map((e) => e.code)).toEqual(alone.audit.events.map((e) => e.code));
  });

  it('bad input is refused before the lookup and never joins a batch', async () => {
    const sizes: number[] = [];
    const { d } = service({ sizes });
    const out = await Promise.all([
      run(d, ['door1', req('04AA000000000001')]),
      run(d, ['door1', { uid: '04AA000000000001', aid: 'A1C001', keyNo: 14 }]),
      run(d, ['door1', { uid: "04' or 1=1", aid: 'A1C001', keyNo: 1 }]),
      run(d, ['door1', req('04AA000000000001')]),
    ]);
    expect(out[0]).toBe('ok v3');
    expect(out[1]).toMatch(/^ERR_JOB_BAD_INPUT/);
    expect(out[2]).toMatch(/^ERR_JOB_BAD_INPUT/);
    expect(out[3]).toBe('ok v3');
    expect(sizes).toEqual([2]);
  });

  it('a suspension or certificate revocation committed between two batches is seen by the next batch', async () => {
    const sizes: number[] = [];
    const { d } = service({ sizes });
    const batch = (): Case[] => [
      ['door1', req('04AA000000000001')],
      ['door2', req('04AA000000000001'), 'S2'],
      ['door3', req('04AA000000000001'), 'S3'],
    ];
    sent.length = 0;
    sentValues.length = 0;
    expect(await Promise.all(batch().map((c) => run(d, c)))).toEqual(['ok v3', 'ok v3 done=true', 'ok v3 done=true']);
    // another process's changes, committed straight to the database
    await h.db.updateTable('readers').set({ state: 'suspended' }).where('id', '=', 'door1').execute();
    await h.db.insertInto('revoked_certificates').values({ serial: 'S2', reason: 'key compromise', revoked_at: T0 }).execute();
    expect(await Promise.all(batch().map((c) => run(d, c)))).toEqual([
      'ERR_DELIVERY_READER_STATE reader door1 is suspended',
      'ERR_READER_NOT_ACTIVE the reader certificate is not (or no longer) accepted done=false',
      'ok v3 done=true',
    ]);
    // and undone: the next batch sees that too
    await h.db.updateTable('readers').set({ state: 'active' }).where('id', '=', 'door1').execute();
    await h.db.deleteFrom('revoked_certificates').where('serial', '=', 'S2').execute();
    expect(await Promise.all(batch().map((c) => run(d, c)))).toEqual(['ok v3', 'ok v3 done=true', 'ok v3 done=true']);
    expect(sizes).toEqual([3, 3, 3]);
    expect(sent.filter(isBatch)).toHaveLength(3);
  });

  it('a revocation committed while a batch is in flight is seen by every request made after it', async () => {
    const { d } = service();
    for (let round = 0; round < 5; round++) {
      const serial = `S3`;
      // a batch in flight (its answer for door3 may come either way: it raced the commit)
      const inFlight = Promise.all([0, 1, 2, 3].map(() => run(d, ['door3', req('04AA000000000001'), serial])));
      await h.db.insertInto('revoked_certificates').values({ serial, reason: 'key compromise', revoked_at: T0 }).execute();
      // made after the commit: refused, whatever batch is still running
      const after = await Promise.all([0, 1, 2, 3].map(() => run(d, ['door3', req('04AA000000000001'), serial])));
      expect(after).toEqual(Array(4).fill('ERR_READER_NOT_ACTIVE the reader certificate is not (or no longer) accepted done=false'));
      await inFlight;
      await h.db.deleteFrom('revoked_certificates').where('serial', '=', serial).execute();
    }
  });

  it('a failed statement fails every request of its batch (nothing sealed, refusals audited) and not the next batch', async () => {
    const { d, audit } = service();
    seals.length = 0;
    failNext = isBatch;
    const failed = await Promise.all([0, 1, 2].map(() => d.deliver(ctx, 'door1', req('04AA000000000001')).then(() => 'ok', (e: Error) => e.message)));
    expect(failed).toEqual(['injected: connection lost', 'injected: connection lost', 'injected: connection lost']);
    expect(seals).toHaveLength(0);
    expect(audit.events.map((e) => [e.outcome, e.code])).toEqual([
      ['refused', 'ERR_INTERNAL'],
      ['refused', 'ERR_INTERNAL'],
      ['refused', 'ERR_INTERNAL'],
    ]);
    expect(await Promise.all([0, 1, 2].map(() => run(d, ['door1', req('04AA000000000001')])))).toEqual(['ok v3', 'ok v3', 'ok v3']);
    expect(seals).toHaveLength(3);
  });

  it('a turn larger than maxBatch goes out as several statements, each request answered', async () => {
    const sizes: number[] = [];
    const { d } = service({ maxBatch: 4, sizes });
    sent.length = 0;
    sentValues.length = 0;
    const cases = CASES.slice(0, 10);
    const alone = service();
    const expected: string[] = [];
    for (const c of cases) expected.push(await run(alone.d, c));
    sent.length = 0;
    sentValues.length = 0;
    expect(await Promise.all(cases.map((c) => run(d, c)))).toEqual(expected);
    expect(sizes).toEqual([4, 4, 2]);
    expect(sent.filter(isBatch)).toHaveLength(3);
  });
});

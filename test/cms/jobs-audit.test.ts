// Station audit events written together (a personalise job's card-wide entry + one per tenant's
// installation) go to the audit log as ONE all-or-nothing unit (AuditLog.recordAll) through the
// CMS's station sink and the fan-out; a sink without appendAll still gets every event.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../../src/cms/storage/index.js';
import { AuditLogStationSink, MemoryStationAudit, type StationAuditEvent, TeeStationAudit, appendEach } from '../../src/cms/jobs/audit.js';
import { type Backend, sqliteBackend } from './storage-backends.js';
import { SpyStore, openLog } from './audit-fixture.js';

const ev = (i: number, extra: Partial<StationAuditEvent> = {}): StationAuditEvent => ({
  time: new Date(1_760_000_000_000 + i).toISOString(),
  source: 'cms',
  op: 'job_create',
  outcome: 'ok',
  actor: 'station-1',
  correlationId: `c-${i}`,
  readerId: 'station-1',
  jobId: 'job-1',
  uid: '04A1B2C3D4E5F6',
  ...extra,
});
const unit = [ev(0, { aid: '000000', steps: ['issue', 'install:A1C001', 'install:CAFE01'] }), ev(1, { tenant: 'access', aid: 'A1C001' }), ev(2, { tenant: 'cafeteria', aid: 'CAFE01' })];

describe('station audit events as one unit', () => {
  let backend: Backend;
  let h: DatabaseHandle;
  let store: SpyStore;
  let log: Awaited<ReturnType<typeof openLog>>['log'];
  beforeEach(async () => {
    backend = sqliteBackend();
    h = await backend.open();
    store = new SpyStore(h);
    log = (await openLog(h, { store, maxBatch: 2 })).log;
  }, 30_000);
  afterEach(async () => {
    await log?.close();
    await backend?.cleanup();
  }, 30_000);

  it('through the CMS sink and the fan-out: one batch (never split, even past maxBatch), consecutive indexes, each tenant on its own entry', async () => {
    const mem = new MemoryStationAudit(); // a sink without appendAll: gets every event, one by one
    const tee = new TeeStationAudit(new AuditLogStationSink(log), mem);
    await appendEach(tee, unit);
    expect(store.batches).toEqual([['c-0', 'c-1', 'c-2']]);
    const es = await log.entries({ from: 0, limit: 10 });
    expect(es.map((e) => [e.index, e.operation, e.tenant, e.aid])).toEqual([
      [0, 'station.job_create', null, '000000'],
      [1, 'station.job_create', 'access', 'A1C001'],
      [2, 'station.job_create', 'cafeteria', 'CAFE01'],
    ]);
    expect(mem.events).toEqual(unit);
  });

  it('a failing store: the whole unit rejected, nothing of it stored', async () => {
    store.failing = true;
    await expect(appendEach(new TeeStationAudit(new AuditLogStationSink(log)), unit)).rejects.toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
    store.failing = false;
    expect(await log.entries({ from: 0, limit: 10 })).toEqual([]);
  });
});

// Test helper for the audit suites: a log over a storage backend with a fresh signing key.
import type { DatabaseHandle } from '../../src/cms/storage/index.js';
import { AuditLog, type AuditLogOptions } from '../../src/cms/audit/log.js';
import { Ed25519CheckpointSigner, verifierKey } from '../../src/cms/audit/signer.js';
import { SqlAuditStore, type AuditStore } from '../../src/cms/audit/store.js';
import type { AuditInput } from '../../src/cms/audit/entry.js';

/** A store that records each append's entries (by correlation id), fails while `failing`, waits while `gate` is pending. */
export class SpyStore extends SqlAuditStore {
  failing = false;
  gate?: Promise<void>;
  batches: string[][] = [];
  override async append(...a: Parameters<AuditStore['append']>) {
    this.batches.push(a[0].map((e) => e.correlationId ?? ''));
    if (this.gate) await this.gate;
    if (this.failing) throw new Error('injected: disk on fire');
    return super.append(...a);
  }
}

export const ORIGIN = 'test.desfire-cms/audit';

export async function openLog(h: DatabaseHandle, extra: Partial<AuditLogOptions> = {}, signer = Ed25519CheckpointSigner.generate(ORIGIN)) {
  const store: AuditStore = extra.store ?? new SqlAuditStore(h);
  const log = await AuditLog.open({ store, signer, origin: ORIGIN, ...extra });
  return { log, store, signer, key: verifierKey(signer.vkey) };
}

/** A plausible entry: tenants A/B alternate, AIDs per tenant. */
export function sampleEntry(i: number): AuditInput {
  const tenant = i % 3 === 0 ? 'tenant-b' : 'tenant-a';
  return {
    time: 1_760_000_000_000 + i * 1000,
    actor: i % 5 === 0 ? 'operator-1' : null,
    readerId: `reader-${i % 4}`,
    cardUid: '04A1B2C3D4E5' + (i % 100).toString(16).padStart(2, '0').toUpperCase(),
    tenant,
    aid: tenant === 'tenant-a' ? 'F00001' : 'F00002',
    keyNo: i % 3,
    keyVersion: 1,
    operation: i % 2 ? 'key.release' : 'card.authenticate',
    result: 'ok',
    correlationId: `corr-${i}`,
    details: { seq: i, address: '10.0.0.' + (i % 4) },
  };
}

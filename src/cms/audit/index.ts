// Public surface of the audit log, and `openAudit`, the one way the server and the CLI open it.
import type { DatabaseHandle } from '../storage/index.js';
import { getSetting, setSetting } from '../storage/tx.js';
import { AlertEngine } from './alerts/engine.js';
import { type Alert, type AlertConfig, alertConfig } from './alerts/types.js';
import type { AuditEntry } from './entry.js';
import { WebhookNotifier, type WebhookOptions } from './alerts/webhook.js';
import { AuditLog } from './log.js';
import { Ed25519CheckpointSigner, type CheckpointSigner } from './signer.js';
import { SqlAuditStore } from './store.js';

export { AuditLog, type AuditLogOptions, type AuditHealth, type InclusionProof, type RecordOptions, type ViewEntry } from './log.js';
export { AuditError, type AuditErrorCode, type AuditEntry, type AuditInput } from './entry.js';
export { SqlAuditStore, type AppendOptions, type AuditStore, type StoredCheckpoint } from './store.js';
export { Ed25519CheckpointSigner, verifierKey, type CheckpointSigner } from './signer.js';
export { exportLog, type ExportOptions } from './export.js';
export { verifyDatabase } from './db-verify.js';
export { pruneOlderThan } from './retention.js';
export { AlertEngine } from './alerts/engine.js';
export { WebhookNotifier } from './alerts/webhook.js';
export { alertConfig, DEFAULT_ALERT_CONFIG, type Alert, type AlertConfig, type AlertRule } from './alerts/types.js';

export const DEFAULT_ORIGIN = 'desfire-cms/audit';

export interface OpenAuditOptions {
  handle: DatabaseHandle;
  /** Where the checkpoint key lives (audit-checkpoint.key / .vkey); created on first use. */
  keyDir: string;
  /** Or a signer from elsewhere (e.g. custody). */
  signer?: CheckpointSigner;
  /** Log origin; stored in the database on first open and reused after. */
  origin?: string;
  checkpointIntervalMs?: number;
  maxQueue?: number;
  maxBatch?: number;
  alerts?: Partial<{ [K in keyof AlertConfig]: Partial<AlertConfig[K]> }> & { webhook?: WebhookOptions };
  /** Whether clients other than the one appending are active (SqlAuditStoreOptions.othersActive). */
  othersActive?: () => boolean;
  /** Observability hooks (src/cms/ops metrics): committed entries, batch commits, alerts raised. Must not throw. */
  observe?: { committed?(entries: AuditEntry[]): void; batch?(entries: number, ms: number): void; alert?(a: Alert): void };
}

export interface OpenedAudit {
  log: AuditLog;
  store: SqlAuditStore;
  alerts: AlertEngine;
  signer: CheckpointSigner;
  close(): Promise<void>;
}

export async function openAudit(o: OpenAuditOptions): Promise<OpenedAudit> {
  const stored = await getSetting(o.handle.db, 'audit.origin');
  const origin = stored ?? o.origin ?? DEFAULT_ORIGIN;
  if (!stored) await setSetting(o.handle.db, 'audit.origin', origin);
  const signer = o.signer ?? Ed25519CheckpointSigner.loadOrCreate(o.keyDir, origin.replace(/[\s+]/g, '_'));
  const store = new SqlAuditStore(o.handle, o.othersActive ? { othersActive: o.othersActive } : {});
  const { webhook, ...rules } = o.alerts ?? {};
  const alerts = new AlertEngine({
    store,
    config: alertConfig(rules),
    ...(webhook ? { webhook: new WebhookNotifier(webhook) } : {}),
    ...(o.observe?.alert ? { onAlert: o.observe.alert } : {}),
  });
  const log = await AuditLog.open({
    store,
    signer,
    origin,
    onCommitted: (es) => {
      alerts.observe(es);
      o.observe?.committed?.(es);
    },
    ...(o.observe?.batch ? { onBatch: o.observe.batch } : {}),
    ...(o.checkpointIntervalMs !== undefined ? { checkpointIntervalMs: o.checkpointIntervalMs } : {}),
    ...(o.maxQueue !== undefined ? { maxQueue: o.maxQueue } : {}),
    ...(o.maxBatch !== undefined ? { maxBatch: o.maxBatch } : {}),
  });
  return {
    log,
    store,
    alerts,
    signer,
    async close() {
      await log.close();
      await alerts.flush();
    },
  };
}

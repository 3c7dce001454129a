// CMS-side audit events of station jobs, key delivery and remote mode: every refusal and every
// state change (key releases themselves are audited by custody through its own sink). Events name
// readers, cards, AIDs, key numbers and versions, never key bytes.
export type StationAuditOp = 'job_create' | 'job_claim' | 'job_receipt' | 'job_reconcile' | 'key_delivery' | 'remote_session';

export interface StationAuditEvent {
  time: string;
  source: 'cms';
  op: StationAuditOp;
  outcome: 'ok' | 'refused' | 'failed';
  actor: string;
  correlationId: string;
  readerId?: string;
  jobId?: string;
  uid?: string;
  aid?: string;
  keyNo?: number;
  keyVersion?: number;
  code?: string;
  /** The tenant authorisation an install/delete job runs under (src/cms/consent). */
  authorisation?: string;
}

export interface StationAuditSink {
  append(event: StationAuditEvent): Promise<void>;
}

export class MemoryStationAudit implements StationAuditSink {
  readonly events: StationAuditEvent[] = [];
  async append(event: StationAuditEvent): Promise<void> {
    this.events.push(event);
  }
}

/** Structured log lines (until the tamper-evident audit log is wired into the server). */
export class LogStationAudit implements StationAuditSink {
  constructor(private readonly log: { info(obj: object, msg: string): void }) {}
  async append(event: StationAuditEvent): Promise<void> {
    this.log.info({ audit: event }, 'station event');
  }
}

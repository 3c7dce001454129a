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
  /**
   * The tenant whose part of a job the event records (a personalise job's per-installation
   * entries: each tenant's audit view selects by this column and shows only its own part).
   */
  tenant?: string;
  aid?: string;
  keyNo?: number;
  keyVersion?: number;
  code?: string;
  /** The tenant authorisation an install/delete job runs under (src/cms/consent). */
  authorisation?: string;
  /** job_create of a job handed out claimed in the same request (no separate job_claim entry). */
  claimed?: boolean;
  /** personalise: every step of the job in order ('issue', 'install:<AID>', ...). */
  steps?: string[];
  /** personalise: the tenant authorisation of each installation, in the order of `steps`' installs. */
  authorisations?: string[];
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

/** Fan-out: every sink gets the event; the first failure rejects (after all were tried). */
export class TeeStationAudit implements StationAuditSink {
  readonly sinks: StationAuditSink[];
  constructor(...sinks: StationAuditSink[]) {
    this.sinks = sinks;
  }
  add(sink: StationAuditSink): void {
    if (!this.sinks.includes(sink)) this.sinks.push(sink);
  }
  async append(event: StationAuditEvent): Promise<void> {
    const r = await Promise.allSettled(this.sinks.map((s) => s.append(event)));
    const failed = r.find((x) => x.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

/** The part of the CMS audit log (src/cms/audit/log.ts) this module writes to. */
export interface AuditRecorder {
  record(input: {
    time?: number;
    actor?: string | null;
    readerId?: string | null;
    cardUid?: string | null;
    tenant?: string | null;
    aid?: string | null;
    keyNo?: number | null;
    keyVersion?: number | null;
    operation: string;
    result: string;
    correlationId?: string | null;
    details?: Record<string, string | number | boolean | null>;
  }): Promise<unknown>;
}

/** Station events into the tamper-evident audit log: operation `station.<op>`, result ok/denied/failed. */
export class AuditLogStationSink implements StationAuditSink {
  constructor(private readonly log: AuditRecorder) {}
  async append(e: StationAuditEvent): Promise<void> {
    const details: Record<string, string | boolean> = {};
    if (e.code) details.code = e.code;
    if (e.jobId) details.jobId = e.jobId;
    if (e.authorisation) details.authorisation = e.authorisation;
    if (e.claimed) details.claimed = true;
    if (e.steps?.length) details.steps = e.steps.join(' ');
    if (e.authorisations?.length) details.authorisations = e.authorisations.join(' ');
    await this.log.record({
      time: Date.parse(e.time),
      actor: e.actor,
      readerId: e.readerId ?? null,
      cardUid: e.uid ?? null,
      tenant: e.tenant ?? null,
      aid: e.aid && /^[0-9A-F]{6}$/.test(e.aid) ? e.aid : null,
      keyNo: e.keyNo !== undefined && e.keyNo >= 0 && e.keyNo <= 13 ? e.keyNo : null,
      keyVersion: e.keyVersion ?? null,
      operation: `station.${e.op}`,
      result: e.outcome === 'refused' ? 'denied' : e.outcome,
      correlationId: e.correlationId,
      details,
    });
  }
}

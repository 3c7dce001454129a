// CMS-side audit events of station jobs, key delivery and remote mode: every refusal and every
// state change (key releases themselves are audited by custody through its own sink). Events name
// readers, cards, AIDs, key numbers and versions, never key bytes.
import type { AuditInput } from '../audit/entry.js';

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
  /** Several events as ONE unit, all durable or none (optional: otherwise one append each). */
  appendAll?(events: StationAuditEvent[]): Promise<void>;
}

/** Every event into `sink`: as one all-or-nothing unit when it can, else one append each (all awaited). */
export async function appendEach(sink: StationAuditSink, events: StationAuditEvent[]): Promise<void> {
  if (sink.appendAll) await sink.appendAll(events);
  else await Promise.all(events.map((e) => sink.append(e)));
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
  append(event: StationAuditEvent): Promise<void> {
    return this.each((s) => s.append(event));
  }
  appendAll(events: StationAuditEvent[]): Promise<void> {
    return this.each((s) => appendEach(s, events));
  }
  private async each(fn: (s: StationAuditSink) => Promise<void>): Promise<void> {
    const r = await Promise.allSettled(this.sinks.map(fn));
    const failed = r.find((x) => x.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

/** What this module records (the audit log's own input type). */
export type AuditRecord = AuditInput;

/** The part of the CMS audit log (src/cms/audit/log.ts) this module writes to. */
export interface AuditRecorder {
  record(input: AuditRecord): Promise<unknown>;
  /** Several entries committed together or not at all (AuditLog.recordAll). */
  recordAll?(inputs: AuditRecord[]): Promise<unknown>;
}

/** Station events into the tamper-evident audit log: operation `station.<op>`, result ok/denied/failed. */
export class AuditLogStationSink implements StationAuditSink {
  constructor(private readonly log: AuditRecorder) {}
  async append(e: StationAuditEvent): Promise<void> {
    await this.log.record(toRecord(e));
  }
  async appendAll(events: StationAuditEvent[]): Promise<void> {
    if (this.log.recordAll) await this.log.recordAll(events.map(toRecord));
    else await Promise.all(events.map((e) => this.log.record(toRecord(e))));
  }
}

function toRecord(e: StationAuditEvent): AuditRecord {
  const details: Record<string, string | boolean> = {};
  if (e.code) details.code = e.code;
  if (e.jobId) details.jobId = e.jobId;
  if (e.authorisation) details.authorisation = e.authorisation;
  if (e.claimed) details.claimed = true;
  if (e.steps?.length) details.steps = e.steps.join(' ');
  if (e.authorisations?.length) details.authorisations = e.authorisations.join(' ');
  return {
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
  };
}

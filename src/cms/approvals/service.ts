// M-of-N approvals for critical operations. A request carries the full operation (payload) that
// approvers see; M distinct approvers holding the kind's role must approve before it expires; the
// requester cannot approve; one rejection closes it. The operation then consumes the approval
// once (compare-and-set), so an approval cannot be used twice. Every step is in the audit log.
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Json } from '../audit/entry.js';
import type { AuditRecorder } from '../rotation/audit.js';
import { RotationError } from '../rotation/errors.js';
import type { Database } from '../storage/index.js';
import { checkApprovalPayload } from './guard.js';
import { DEFAULT_APPROVAL_POLICY, isApprovalKind, type ApprovalKind, type ApprovalPolicy } from './policy.js';

type Db = Kysely<Database>;

export type ApprovalState = 'pending' | 'approved' | 'rejected' | 'expired' | 'consumed';

export interface Vote {
  approver: string;
  decision: 'approve' | 'reject';
  at: number;
}

export interface ApprovalRequest {
  id: string;
  kind: ApprovalKind;
  /** The full request, as approvers see it. */
  payload: Record<string, Json>;
  summary: string;
  requestedBy: string;
  required: number;
  role: string;
  state: ApprovalState;
  createdAt: number;
  expiresAt: number;
  votes: Vote[];
}

export interface Approver {
  id: string;
  roles: readonly string[];
}

export interface ApprovalServiceOptions {
  db: Db;
  audit: AuditRecorder;
  policy?: ApprovalPolicy;
  now?: () => number;
}

const ACTOR_RE = /^[A-Za-z0-9._:@-]{1,128}$/;

export class ApprovalService {
  readonly policy: ApprovalPolicy;
  private readonly now: () => number;

  constructor(private readonly o: ApprovalServiceOptions) {
    this.policy = o.policy ?? DEFAULT_APPROVAL_POLICY;
    this.now = o.now ?? Date.now;
  }

  async request(kind: ApprovalKind, payload: Record<string, Json>, requestedBy: string, summary: string): Promise<ApprovalRequest> {
    if (!isApprovalKind(kind)) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'unknown approval kind');
    if (!ACTOR_RE.test(String(requestedBy))) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'requester must be an operator id');
    checkApprovalPayload(kind, payload);
    const p = this.policy.kinds[kind];
    const now = this.now();
    const row = {
      id: randomUUID(),
      kind,
      payload: JSON.stringify(payload),
      summary: String(summary).slice(0, 500),
      requested_by: requestedBy,
      required: p.required,
      role: p.role,
      state: 'pending',
      created_at: now,
      expires_at: now + p.ttlMs,
      updated_at: now,
    };
    await this.o.db.insertInto('approval_requests').values(row).execute();
    await this.o.audit.record({ actor: requestedBy, operation: 'approval.request', result: 'ok', correlationId: row.id, details: { kind, required: p.required, role: p.role, summary: row.summary } });
    return (await this.get(row.id))!;
  }

  async get(id: string): Promise<ApprovalRequest | undefined> {
    if (typeof id !== 'string' || id.length > 64) return undefined;
    const r = await this.o.db.selectFrom('approval_requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) return undefined;
    const votes = await this.o.db.selectFrom('approval_votes').selectAll().where('request_id', '=', id).orderBy('created_at').execute();
    let state = r.state as ApprovalState;
    if ((state === 'pending' || state === 'approved') && Number(r.expires_at) <= this.now()) state = 'expired';
    return {
      id: r.id,
      kind: r.kind as ApprovalKind,
      payload: JSON.parse(r.payload) as Record<string, Json>,
      summary: r.summary,
      requestedBy: r.requested_by,
      required: Number(r.required),
      role: r.role,
      state,
      createdAt: Number(r.created_at),
      expiresAt: Number(r.expires_at),
      votes: votes.map((v) => ({ approver: v.approver, decision: v.decision as Vote['decision'], at: Number(v.created_at) })),
    };
  }

  async require(id: string): Promise<ApprovalRequest> {
    const r = await this.get(id);
    if (!r) throw new RotationError('ERR_APPROVAL_NOT_FOUND', `approval request ${String(id).slice(0, 64)} not found`);
    return r;
  }

  async list(filter: { state?: ApprovalState } = {}): Promise<ApprovalRequest[]> {
    const rows = await this.o.db.selectFrom('approval_requests').select('id').orderBy('created_at', 'desc').limit(500).execute();
    const out: ApprovalRequest[] = [];
    for (const r of rows) {
      const a = await this.get(r.id);
      if (a && (!filter.state || a.state === filter.state)) out.push(a);
    }
    return out;
  }

  /** Vote on a request. Returns the request after the vote (state 'approved' once M approvals are in). */
  async vote(id: string, approver: Approver, decision: 'approve' | 'reject'): Promise<ApprovalRequest> {
    const r = await this.require(id);
    const deny = async (code: ConstructorParameters<typeof RotationError>[0], msg: string): Promise<never> => {
      await this.o.audit.record({ actor: String(approver?.id ?? '?').slice(0, 128), operation: `approval.${decision}`, result: 'denied', correlationId: r.id, details: { kind: r.kind, code } });
      throw new RotationError(code, msg);
    };
    if (decision !== 'approve' && decision !== 'reject') throw new RotationError('ERR_ROTATION_BAD_INPUT', 'decision must be approve or reject');
    if (!approver || !ACTOR_RE.test(String(approver.id))) throw new RotationError('ERR_ROTATION_BAD_INPUT', 'approver must be an operator id');
    if (r.state === 'expired') return deny('ERR_APPROVAL_EXPIRED', `approval request ${r.id} has expired`);
    if (r.state !== 'pending') return deny('ERR_APPROVAL_STATE', `approval request ${r.id} is ${r.state}`);
    if (approver.id === r.requestedBy) return deny('ERR_APPROVAL_SELF', 'the requester cannot approve their own request');
    if (!approver.roles.includes(r.role)) return deny('ERR_APPROVAL_ROLE', `approving needs the role ${r.role}`);
    if (r.votes.some((v) => v.approver === approver.id)) return deny('ERR_APPROVAL_DUPLICATE', `${approver.id} has already voted`);
    const now = this.now();
    await this.o.db.transaction().execute(async (tx) => {
      const ins = await tx
        .insertInto('approval_votes')
        .values({ request_id: r.id, approver: approver.id, decision, created_at: now })
        .onConflict((oc) => oc.columns(['request_id', 'approver']).doNothing())
        .executeTakeFirst();
      if ((ins.numInsertedOrUpdatedRows ?? 0n) === 0n) throw new RotationError('ERR_APPROVAL_DUPLICATE', `${approver.id} has already voted`);
      const approvals = await tx
        .selectFrom('approval_votes')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('request_id', '=', r.id)
        .where('decision', '=', 'approve')
        .executeTakeFirstOrThrow();
      const next = decision === 'reject' ? 'rejected' : Number(approvals.n) >= r.required ? 'approved' : 'pending';
      if (next !== 'pending') {
        await tx.updateTable('approval_requests').set({ state: next, updated_at: now }).where('id', '=', r.id).where('state', '=', 'pending').execute();
      }
    });
    await this.o.audit.record({ actor: approver.id, operation: `approval.${decision}`, result: 'ok', correlationId: r.id, details: { kind: r.kind } });
    return this.require(r.id);
  }

  /**
   * Use an approval for the operation it was granted for: it must be of `kind`, approved, not
   * expired, and `matches(payload)` must hold. Consumed exactly once (compare-and-set).
   */
  async consume(id: string, kind: ApprovalKind, actor: string, matches: (payload: Record<string, Json>) => boolean): Promise<ApprovalRequest> {
    const r = await this.get(id);
    if (!r) throw new RotationError('ERR_APPROVAL_REQUIRED', 'this operation needs an approved request (approval id missing or unknown)');
    if (r.kind !== kind || !matches(r.payload)) throw new RotationError('ERR_APPROVAL_MISMATCH', `approval ${r.id} was granted for another operation`);
    if (r.state === 'expired') throw new RotationError('ERR_APPROVAL_EXPIRED', `approval ${r.id} has expired`);
    if (r.state !== 'approved') {
      throw new RotationError(r.state === 'pending' ? 'ERR_APPROVAL_REQUIRED' : 'ERR_APPROVAL_STATE', `approval ${r.id} is ${r.state} (${r.votes.filter((v) => v.decision === 'approve').length}/${r.required} approvals)`);
    }
    const u = await this.o.db.updateTable('approval_requests').set({ state: 'consumed', updated_at: this.now() }).where('id', '=', r.id).where('state', '=', 'approved').executeTakeFirst();
    if ((u.numUpdatedRows ?? 0n) === 0n) throw new RotationError('ERR_APPROVAL_STATE', `approval ${r.id} was used concurrently`);
    await this.o.audit.record({ actor, operation: 'approval.consume', result: 'ok', correlationId: r.id, details: { kind } });
    return { ...r, state: 'consumed' };
  }
}

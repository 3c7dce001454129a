// The caller context every custody / audit call carries: who (operator token or reader), why
// (the route), and the request id as correlation id (it appears in the log lines of the request).
import type { FastifyRequest } from 'fastify';
import type { CallerContext } from '../../custody/types.js';
import { actorOf } from './auth.js';

export function callerContext(req: FastifyRequest, purpose: string): CallerContext {
  return { actor: actorOf(req), purpose: `api: ${purpose}`, correlationId: String(req.id) };
}

/** What an operator action is, for the audit log (never key material). */
export interface ActionInput {
  operation: string;
  tenant?: string;
  aid?: string;
  readerId?: string;
  cardUid?: string;
  details?: Record<string, string | number | boolean | null | string[]>;
}

/** Minimal view of the audit log the API needs (AuditLog.record). */
export interface ActionRecorder {
  record(input: {
    actor: string;
    operation: string;
    result: string;
    correlationId: string;
    tenant?: string | null;
    aid?: string | null;
    readerId?: string | null;
    cardUid?: string | null;
    details?: Record<string, string | number | boolean | null | string[]>;
  }): Promise<unknown>;
}

/**
 * Run a state-changing operator action under the audit log: 'requested' is made durable first
 * (if the log refuses, nothing happens: fail closed), then the outcome ('ok' or 'error' with the
 * error code). The entry's correlation id is the request id, which every log line of the request
 * carries too.
 */
export async function audited<T>(req: FastifyRequest, rec: ActionRecorder | undefined, a: ActionInput, fn: () => Promise<T>): Promise<T> {
  if (!rec) return fn();
  const base = {
    actor: actorOf(req),
    operation: a.operation,
    correlationId: String(req.id),
    ...(a.tenant ? { tenant: a.tenant } : {}),
    ...(a.aid ? { aid: a.aid.toUpperCase() } : {}),
    ...(a.readerId ? { readerId: a.readerId } : {}),
    ...(a.cardUid ? { cardUid: a.cardUid.toUpperCase() } : {}),
  };
  await rec.record({ ...base, result: 'requested', ...(a.details ? { details: a.details } : {}) });
  try {
    const r = await fn();
    await rec.record({ ...base, result: 'ok' });
    return r;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    await rec.record({ ...base, result: 'error', details: { code: typeof code === 'string' ? code : 'ERR_INTERNAL' } }).catch(() => undefined);
    throw e;
  }
}

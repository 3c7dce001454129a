// The caller context every custody / audit call carries: who (operator token or reader), why
// (the route), and the request id as correlation id (it appears in the log lines of the request).
import type { FastifyRequest } from 'fastify';
import type { CallerContext } from '../../custody/types.js';
import { actorOf } from './auth.js';

export function callerContext(req: FastifyRequest, purpose: string): CallerContext {
  return { actor: actorOf(req), purpose: `api: ${purpose}`, correlationId: String(req.id) };
}

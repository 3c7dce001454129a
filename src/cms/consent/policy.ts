// The policy decision, pure: which authorisation (if any) covers an operation on one card at one
// instant. The service (./service.ts) loads the candidates and audits the decision; this file
// decides. Most specific wins: a card authorisation over a batch over a standing policy; among
// equals the one that expires first, then the smallest id (deterministic).
export const OPERATIONS = ['install', 'rotate', 'delete'] as const;
export type ConsentOperation = (typeof OPERATIONS)[number];
export const SCOPES = ['card', 'batch', 'policy'] as const;
export type AuthorisationScope = (typeof SCOPES)[number];
/** A standing policy with this profile covers every card. */
export const ANY_PROFILE = '*';

export interface Authorisation {
  id: string;
  tenant: string;
  aid: string;
  operation: ConsentOperation;
  scope: AuthorisationScope;
  /** UIDs (scope card/batch). */
  cardUids: string[] | null;
  /** Card profile (scope policy). */
  cardProfile: string | null;
  validFrom: number;
  expiresAt: number;
  grantedBy: string;
  requestId: string | null;
  createdAt: number;
  revokedAt: number | null;
  revokedBy: string | null;
}

export interface AuthorisationQuery {
  tenant: string;
  aid: string;
  operation: ConsentOperation;
  cardUid: string;
  cardProfile?: string;
  /** The instant of the operation (ms since the epoch). */
  at: number;
}

/** Why an authorisation does not cover a query (undefined: it covers it). */
export function mismatch(a: Authorisation, q: AuthorisationQuery): string | undefined {
  if (a.tenant !== q.tenant) return 'tenant';
  if (a.aid !== q.aid.toUpperCase()) return 'aid';
  if (a.operation !== q.operation) return 'operation';
  if (a.revokedAt !== null && a.revokedAt <= q.at) return 'revoked';
  if (q.at < a.validFrom) return 'not yet valid';
  if (q.at >= a.expiresAt) return 'expired';
  if (a.scope === 'policy') {
    if (a.cardProfile === ANY_PROFILE) return undefined;
    return q.cardProfile !== undefined && a.cardProfile === q.cardProfile ? undefined : 'card profile';
  }
  return (a.cardUids ?? []).includes(q.cardUid.toUpperCase()) ? undefined : 'card';
}

const RANK: Record<AuthorisationScope, number> = { card: 0, batch: 1, policy: 2 };

/** The authorisation that covers the query, or undefined. */
export function decide(candidates: readonly Authorisation[], q: AuthorisationQuery): Authorisation | undefined {
  const ok = candidates.filter((a) => mismatch(a, q) === undefined);
  ok.sort((x, y) => RANK[x.scope] - RANK[y.scope] || x.expiresAt - y.expiresAt || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  return ok[0];
}

/** Whether an authorisation is in force at `at` (not revoked, not expired, started). */
export function active(a: Authorisation, at: number): boolean {
  return (a.revokedAt === null || a.revokedAt > at) && a.validFrom <= at && at < a.expiresAt;
}

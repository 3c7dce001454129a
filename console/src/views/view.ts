import type { Me } from '../api.js';

export interface ViewContext {
  me: Me;
  /** Path segments after the view name (#/cards/04A1… → ['04A1…']). */
  args: string[];
  query: URLSearchParams;
  go(hash: string): void;
  /** Register what to stop (timers) when the operator leaves the view. */
  onCleanup(fn: () => void): void;
}

export type View = (ctx: ViewContext) => Promise<HTMLElement>;

export const isGlobal = (me: Me): boolean => me.tenants.includes('*');
export const can = (me: Me, ...roles: Me['roles']): boolean => me.roles.some((r) => roles.includes(r));
/** The audit actor string of this operator (how approvals name requesters and voters). */
export const actorId = (me: Me): string => `operator:${me.id}`;

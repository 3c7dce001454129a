// The console's only way to the CMS: the public HTTP API (/v1) with the operator's bearer token.
// The token lives in sessionStorage (gone when the tab closes), never in a URL or localStorage.
const TOKEN_KEY = 'desfire-cms.token';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The API's error details (e.g. the layout linter's findings). */
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

type Query = Record<string, string | number | boolean | undefined | null>;

function qs(q?: Query): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** Called on 401 (token unknown, expired or revoked): back to sign-in. */
let onUnauthorised: () => void = () => undefined;
export function setUnauthorisedHandler(fn: () => void): void {
  onUnauthorised = fn;
}

export async function call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, o: { query?: Query; body?: unknown; raw?: string; contentType?: string; token?: string } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = o.token ?? session.token;
  if (token) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (o.raw !== undefined) {
    body = o.raw;
    headers['content-type'] = o.contentType ?? 'application/json';
  } else if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers['content-type'] = 'application/json';
  } else if (method === 'POST') {
    body = '{}';
    headers['content-type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(`/v1${path}${qs(o.query)}`, { method, headers, ...(body !== undefined ? { body } : {}), credentials: 'omit', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'ERR_NETWORK', 'the CMS cannot be reached');
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
    if (res.status === 401 && !o.token) onUnauthorised();
    throw new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? res.statusText, err?.details);
  }
  return json as T;
}

export const get = <T>(path: string, query?: Query) => call<T>('GET', path, query ? { query } : {});
export const post = <T>(path: string, body?: unknown) => call<T>('POST', path, body !== undefined ? { body } : {});

// ---- the API's shapes (the subset the console reads) ------------------------------------------

export type Role = 'issuer_admin' | 'tenant_admin' | 'auditor';
export interface Me {
  id: string;
  label: string;
  roles: Role[];
  tenants: string[];
}
export interface Card {
  uid: string;
  state: string;
  randomUid: boolean;
  piccKeyVersion: number;
  createdAt: number;
  updatedAt: number;
}
export interface CardApp {
  aid: string;
  tenantId: string;
  installedAt: number;
  keys: { keyNo: number; version: number }[];
}
export interface Tenant {
  id: string;
  name: string;
  createdAt: number;
}
export interface Application {
  aid: string;
  tenantId: string;
  name: string;
  keyType: string;
  keyCount: number;
  layoutName: string;
  definition: unknown;
  createdAt: number;
}
export interface Reader {
  id: string;
  name: string;
  state: string;
  certSerial: string | null;
  certNotAfter: number | null;
  createdAt: number;
  updatedAt: number;
}
export interface ReaderRole {
  readerId: string;
  tenantId: string;
  aid: string;
  keyNo: number;
  operations: string[];
}
export interface AuditEntry {
  index: number;
  time: number;
  actor: string | null;
  readerId: string | null;
  cardUid: string | null;
  tenant: string | null;
  aid: string | null;
  keyNo: number | null;
  keyVersion: number | null;
  operation: string;
  result: string;
  correlationId: string | null;
  details: unknown;
}
export interface Checkpoint {
  size: number;
  rootHash: string;
  note: string;
  createdAt: number;
}
export interface InclusionProof {
  index: number;
  treeSize: number;
  hashes: string[];
}
export interface Campaign {
  id: string;
  tenantId: string;
  aid: string;
  keyNo: number;
  fromVersion: number;
  toVersion: number;
  state: string;
  cardCount: number;
  batchSize: number;
  approvalId: string | null;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}
export interface BatchProgress {
  batch: number;
  done: number;
  pending: number;
  failed: number;
  reverted: number;
  cancelled: number;
}
export interface Progress {
  campaign: Campaign;
  totals: Omit<BatchProgress, 'batch'>;
  batches: BatchProgress[];
  failures: { uid: string; cardVersion: number | null; error: string | null }[];
}
export interface Approval {
  id: string;
  kind: string;
  payload: Record<string, unknown>;
  summary: string;
  /** `operator:<token id>` */
  requestedBy: string;
  required: number;
  role: string;
  state: string;
  createdAt: number;
  expiresAt: number;
  votes: { approver: string; decision: 'approve' | 'reject'; at: number }[];
}

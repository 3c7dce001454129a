// Operator API tokens: 32 random bytes, shown once as `dcms_<base64url>`, stored only as the
// SHA-256 of that string; scoped to roles and tenants; expiring; revocable.
import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { equalCT } from '../../../core/crypto/bytes.js';
import type { Database } from '../../storage/index.js';
import { ApiError } from '../errors.js';

export const ROLES = ['issuer_admin', 'tenant_admin', 'auditor'] as const;
export type Role = (typeof ROLES)[number];
export const ALL_TENANTS = '*';

export interface OperatorToken {
  id: string;
  label: string;
  roles: Role[];
  /** Tenant ids, or ['*'] for every tenant. */
  tenants: string[];
  createdBy: string | null;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

export interface CreateTokenInput {
  label: string;
  roles: Role[];
  tenants: string[];
  createdBy: string | null;
  /** Lifetime in seconds (none = no expiry). */
  ttlSeconds?: number;
}

const PREFIX = 'dcms_';
const TOKEN_SHAPE = /^dcms_[A-Za-z0-9_-]{43}$/;

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

type Row = Database['api_tokens'];
function fromRow(r: Row): OperatorToken {
  return {
    id: r.id,
    label: r.label,
    roles: JSON.parse(r.roles) as Role[],
    tenants: JSON.parse(r.tenants) as string[],
    createdBy: r.created_by,
    createdAt: Number(r.created_at),
    expiresAt: r.expires_at === null ? null : Number(r.expires_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  };
}

export class OperatorTokens {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Create a token; the returned `token` string is the only time it exists in clear. */
  async create(input: CreateTokenInput): Promise<{ token: string; record: OperatorToken }> {
    validateScope(input.roles, input.tenants);
    const raw = randomBytes(32);
    const token = PREFIX + raw.toString('base64url');
    raw.fill(0);
    const id = 'tok_' + randomBytes(9).toString('base64url');
    const createdAt = this.now();
    const row: Row = {
      id,
      token_hash: hashToken(token),
      label: input.label,
      roles: JSON.stringify([...new Set(input.roles)].sort()),
      tenants: JSON.stringify([...new Set(input.tenants)].sort()),
      created_by: input.createdBy,
      created_at: createdAt,
      expires_at: input.ttlSeconds ? createdAt + input.ttlSeconds * 1000 : null,
      revoked_at: null,
    };
    await this.db.insertInto('api_tokens').values(row).execute();
    return { token, record: fromRow(row) };
  }

  /** The active token for a presented string, or undefined (unknown, malformed, expired, revoked). */
  async verify(token: string): Promise<OperatorToken | undefined> {
    if (!TOKEN_SHAPE.test(token)) return undefined;
    const h = hashToken(token);
    const row = await this.db.selectFrom('api_tokens').selectAll().where('token_hash', '=', h).executeTakeFirst();
    if (!row) return undefined;
    if (!equalCT(Buffer.from(row.token_hash, 'hex'), Buffer.from(h, 'hex'))) return undefined;
    const t = fromRow(row);
    if (t.revokedAt !== null) return undefined;
    if (t.expiresAt !== null && t.expiresAt <= this.now()) return undefined;
    return t;
  }

  async list(filter: { tenant?: string } = {}): Promise<OperatorToken[]> {
    const rows = await this.db.selectFrom('api_tokens').selectAll().orderBy('created_at').orderBy('id').execute();
    const all = rows.map(fromRow);
    return filter.tenant === undefined ? all : all.filter((t) => t.tenants.includes(filter.tenant!));
  }

  async get(id: string): Promise<OperatorToken | undefined> {
    const row = await this.db.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  /** Revoke; idempotent. Returns the updated record or undefined when unknown. */
  async revoke(id: string): Promise<OperatorToken | undefined> {
    await this.db.updateTable('api_tokens').set({ revoked_at: this.now() }).where('id', '=', id).where('revoked_at', 'is', null).execute();
    return this.get(id);
  }

  /** Whether any active issuer_admin token exists (else the server prints a bootstrap token). */
  async hasActiveIssuerAdmin(): Promise<boolean> {
    const now = this.now();
    const rows = await this.db.selectFrom('api_tokens').select(['roles', 'expires_at']).where('revoked_at', 'is', null).execute();
    return rows.some((r) => (JSON.parse(r.roles) as string[]).includes('issuer_admin') && (r.expires_at === null || Number(r.expires_at) > now));
  }
}

export function validateScope(roles: readonly string[], tenants: readonly string[]): void {
  if (roles.length === 0) throw new ApiError(400, 'ERR_TOKEN_SCOPE', 'a token needs at least one role');
  for (const r of roles) if (!(ROLES as readonly string[]).includes(r)) throw new ApiError(400, 'ERR_TOKEN_SCOPE', `unknown role '${r}'`);
  if (roles.includes('issuer_admin') && !(tenants.length === 1 && tenants[0] === ALL_TENANTS)) {
    throw new ApiError(400, 'ERR_TOKEN_SCOPE', "an issuer_admin token covers every tenant: tenants must be ['*']");
  }
  if (roles.includes('tenant_admin') && (tenants.length === 0 || tenants.includes(ALL_TENANTS))) {
    throw new ApiError(400, 'ERR_TOKEN_SCOPE', 'a tenant_admin token must name its tenants');
  }
  if (tenants.length === 0) throw new ApiError(400, 'ERR_TOKEN_SCOPE', 'a token needs tenants (or ["*"])');
}

// Operator API tokens (Kysely table types). Migration: ../migrations/0020_api_tokens.ts.

export interface ApiTokenTable {
  /** Public id (tok_…), shown in lists and logs. */
  id: string;
  /** SHA-256 of the token string, hex. The token itself is never stored. */
  token_hash: string;
  label: string;
  /** JSON array of roles. */
  roles: string;
  /** JSON array of tenant ids, or ["*"] for every tenant. */
  tenants: string;
  created_by: string | null;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

export interface ApiTables {
  api_tokens: ApiTokenTable;
}

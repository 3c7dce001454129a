// The CMS domain's tables (Kysely types). Migration: storage/migrations/0010_domain.ts.
// Times are milliseconds since the epoch; booleans are 0/1 integers (same on SQLite and PostgreSQL).
// No column ever holds key material: only key numbers and versions.

export interface TenantTable {
  id: string;
  name: string;
  created_at: number;
}

export interface ApplicationTable {
  /** 6 upper-case hex digits (as written in layouts). */
  aid: string;
  tenant_id: string;
  name: string;
  key_type: string;
  key_count: number;
  /** The layout the application was registered from (its `name`). */
  layout_name: string;
  /** The normalised application layout (JSON; roles, derivations, files) for station jobs. */
  definition: string;
  created_at: number;
}

export interface CardTable {
  /** Upper-case hex UID (7 bytes for NXP UIDs). */
  uid: string;
  state: string;
  random_uid: number;
  /** Version of the card master key (CMK). */
  picc_key_version: number;
  created_at: number;
  updated_at: number;
  /** Card profile for standing-policy authorisations (migration 0061, src/cms/consent); null = none. */
  profile: string | null;
}

export interface CardApplicationTable {
  uid: string;
  aid: string;
  installed_at: number;
}

export interface CardKeyTable {
  uid: string;
  aid: string;
  key_no: number;
  key_version: number;
  updated_at: number;
}

export interface ReaderTable {
  id: string;
  name: string;
  state: string;
  cert_serial: string | null;
  cert_pem: string | null;
  cert_not_after: number | null;
  created_at: number;
  updated_at: number;
}

export interface ReaderRoleTable {
  reader_id: string;
  tenant_id: string;
  aid: string;
  key_no: number;
  /** JSON array of operation names. */
  operations: string;
  created_at: number;
}

export interface EnrolmentCodeTable {
  code_hash: string;
  reader_id: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface RevokedCertificateTable {
  serial: string;
  reason: string;
  revoked_at: number;
}

/** The CMS's own keys (CA, token signing): public part + wrapped private part. */
export interface CmsKeyTable {
  name: string;
  public_pem: string;
  wrapped_private_key: string;
  created_at: string;
}

export interface DomainTables {
  tenants: TenantTable;
  applications: ApplicationTable;
  cards: CardTable;
  card_applications: CardApplicationTable;
  card_keys: CardKeyTable;
  readers: ReaderTable;
  reader_roles: ReaderRoleTable;
  enrolment_codes: EnrolmentCodeTable;
  revoked_certificates: RevokedCertificateTable;
  cms_keys: CmsKeyTable;
}

// The whole database schema as one Kysely type, assembled from per-area table interfaces.
// Each area declares its tables in its own file and adds ONE `extends` entry here; its
// migrations go in ./migrations (numbers 0001-0009: storage/audit, 0010-0019: CMS domain).
import type { ApiTables } from '../api/tokens/tables.js';
import type { ApprovalTables } from '../approvals/tables.js';
import type { AuditTables } from '../audit/tables.js';
import type { BatonTables } from '../baton/tables.js';
import type { ConsentTables } from '../consent/tables.js';
import type { DomainTables } from '../domain/tables.js';
import type { JobTables } from '../jobs/tables.js';
import type { RotationTables } from '../rotation/tables.js';
import type { MetaTables } from './meta.js';

export interface Database extends MetaTables, AuditTables, ApiTables, DomainTables, JobTables, BatonTables, RotationTables, ConsentTables, ApprovalTables {}

/** Which SQL engine a connection talks to (for the few places where SQL differs). */
export type DialectKind = 'sqlite' | 'postgres';

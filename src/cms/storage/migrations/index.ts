// Every migration, in order, as a static list (one line each). Names are NNNN_name and sort
// in application order. 0001-0009: storage and audit (engineer E); 0010-0019: CMS domain.
// Never edit or renumber a migration that has landed: add a new one.
import type { Migration } from 'kysely';
import * as m0001 from './0001_meta.js';
import * as m0002 from './0002_audit.js';
import * as m0003 from './0003_audit_alerts.js';
import * as m0010 from './0010_domain.js';
import * as m0020 from '../../api/migrations/0020_api_tokens.js';
import * as m0030 from '../../jobs/migrations/0030_station.js';
import * as m0040 from '../../baton/migrations/0040_baton.js';
import * as m0050 from '../../rotation/migrations/0050_rotation.js';
import * as m0051 from '../../rotation/migrations/0051_field_rotation.js';
import * as m0060 from '../../consent/migrations/0060_consent.js';
import * as m0061 from '../../consent/migrations/0061_card_profile.js';
import * as m0070 from '../../approvals/migrations/0070_approvals.js';
import * as m0080 from './0080_audit_drop_time_index.js';
import * as m0081 from './0081_baton_denylist_changes.js';
import * as m0082 from '../../jobs/migrations/0082_station_jobs_order.js';
import * as m0083 from './0083_audit_append_pg.js';

export const MIGRATIONS: Record<string, Migration> = {
  '0001_meta': m0001,
  '0002_audit': m0002,
  '0003_audit_alerts': m0003,
  '0010_domain': m0010, // 0010-0019: CMS domain (engineer F)
  '0020_api_tokens': m0020, // 0020-0029: HTTP API (engineer G)
  '0030_station': m0030, // 0030-0039: station jobs, delivery, remote mode (engineer H)
  '0040_baton': m0040, // 0040-0049: reader baton, card denylist (engineer I)
  '0050_rotation': m0050, // 0050-0059: key rotation, approvals, KEK rewrap, compromise (engineer J)
  '0051_field_rotation': m0051, // field rotations by runtime readers
  '0060_consent': m0060, // 0060-0069: tenant consent and authorisation (engineer K)
  '0061_card_profile': m0061, // card profiles for standing-policy authorisations
  '0070_approvals': m0070, // 0070-0079: operations under approval: tenant deletion (engineer A)
  // after every landed name: Kysely refuses a new migration that sorts before an executed one
  '0080_audit_drop_time_index': m0080, // the audit log's unused time index (engineer C)
  '0081_baton_denylist_changes': m0081, // the card denylist's change log: readers' delta sync (engineer F)
  '0082_station_jobs_order': m0082, // station_jobs (created_at, id): GET /v1/jobs pages by index
  '0083_audit_append_pg': m0083, // PostgreSQL: the audit batch append as one server-side call (one round trip)
};

// Card profiles (engineer K's range 0060-0069): the card record names its profile (e.g. 'staff',
// 'student'), set when the card is issued and changeable by the issuer. Standing-policy
// authorisations (scope 'policy') match it — never a profile the caller claims. NULL = no profile
// (only '*' policies cover the card).
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('cards').addColumn('profile', 'text').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('cards').dropColumn('profile').execute();
}

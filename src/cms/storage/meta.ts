// Storage's own bookkeeping tables (besides Kysely's migration tables).

/** Key/value settings that belong to the installation (e.g. the audit log origin). */
export interface MetaSettingTable {
  name: string;
  value: string;
}

export interface MetaTables {
  meta_settings: MetaSettingTable;
}

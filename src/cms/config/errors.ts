// Configuration errors: every problem found is collected and reported at once, each naming
// where it is (a JSON pointer into the config, an environment variable or the file) and why.

export interface ConfigIssue {
  /** Where: `/http/port`, `env DESFIRE_CMS_HTTP_PORT`, or the file path. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  readonly issues: readonly ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(
      `invalid configuration (${issues.length} problem${issues.length === 1 ? '' : 's'}): ` +
        issues.map((i) => `${i.path}: ${i.message}`).join('; '),
    );
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

// The CLI's view of the outside world. Commands write through `CliIO` so tests can run them
// in-process and capture what they print.
export interface CliIO {
  out(line: string): void;
  err(line: string): void;
  /** Environment (secrets come from here or from files, never from argv). */
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export const processIO: CliIO = {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
  env: process.env,
  cwd: process.cwd(),
};

/** A bad command line: exit code 2 and a one-line message that names the argument. */
export class UsageError extends Error {
  readonly code = 'ERR_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A subcommand module's export; its one-line summary for `desfire-cms help` is in main.ts's table. */
export interface Command {
  run(args: string[], io: CliIO): Promise<number>;
}

// Prints one plain closing line that any CI reads: "tests: N passed, N failed, N skipped".
// It runs after vitest's default reporter (listed after it in vitest.config.ts), so it is the last line.
import type { Reporter } from 'vitest/reporters';

type Task = { type: string; mode?: string; result?: { state?: string }; tasks?: Task[] };

function count(tasks: Task[], acc: { passed: number; failed: number; skipped: number }): void {
  for (const t of tasks) {
    if (t.type === 'test') {
      const s = t.result?.state;
      if (s === 'pass') acc.passed++;
      else if (s === 'fail') acc.failed++;
      else acc.skipped++;
    } else if (t.tasks) {
      count(t.tasks, acc);
      if (t.type === 'suite' && t.result?.state === 'fail' && t.tasks.length === 0) acc.failed++;
    }
  }
}

export default class SummaryReporter implements Reporter {
  onFinished(files: Task[] = [], errors: unknown[] = []): void {
    const acc = { passed: 0, failed: 0, skipped: 0 };
    count(files, acc);
    // A test file that failed to load, or an unhandled error, counts as a failure.
    for (const f of files) if (f.result?.state === 'fail' && (f.tasks ?? []).length === 0) acc.failed++;
    acc.failed += errors.length;
    process.stdout.write(`\ntests: ${acc.passed} passed, ${acc.failed} failed, ${acc.skipped} skipped\n`);
  }
}

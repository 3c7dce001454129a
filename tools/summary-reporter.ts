// Prints one plain closing line that any CI reads: "tests: N passed, N failed, N skipped".
// It runs after vitest's default reporter (listed after it in vitest.config.ts), so it is the last line.
import type { Reporter } from 'vitest/reporters';

type Task = { type: string; mode?: string; result?: { state?: string }; tasks?: Task[] };
type Acc = { passed: number; failed: number; skipped: number };

/** Counts the tests below `tasks`. A file or suite that failed by itself (it did not load, or a
 * beforeAll/afterAll hook threw, so its tests were skipped) counts as one failure. */
function count(tasks: Task[], acc: Acc): void {
  for (const t of tasks) {
    if (t.type === 'test') {
      const s = t.result?.state;
      if (s === 'pass') acc.passed++;
      else if (s === 'fail') acc.failed++;
      else acc.skipped++;
      continue;
    }
    const before = acc.failed;
    count(t.tasks ?? [], acc);
    if (t.result?.state === 'fail' && acc.failed === before) acc.failed++;
  }
}

export default class SummaryReporter implements Reporter {
  onFinished(files: Task[] = [], errors: unknown[] = []): void {
    const acc: Acc = { passed: 0, failed: 0, skipped: 0 };
    count(files, acc);
    acc.failed += errors.length; // unhandled errors
    process.stdout.write(`\ntests: ${acc.passed} passed, ${acc.failed} failed, ${acc.skipped} skipped\n`);
  }
}

// One benchmark figure: every bench/<area>.ts exports `figures(opts)` returning these, and
// bench/run.ts prints them as one table (and writes JSON with stable names).
export interface Figure {
  /** Stable name, e.g. "core.ev2_full_wrap_unwrap". */
  name: string;
  value: number;
  unit: string;
  /** The baseline measured in the same run, if any (same unit). */
  baseline?: { name: string; value: number };
  /** Target, e.g. { op: '>=', value: 100000 }. */
  target?: { op: '>=' | '<='; value: number };
  note?: string;
}

export interface BenchOptions {
  quick: boolean;
}

export type BenchModule = { figures(opts: BenchOptions): Promise<Figure[]> };

/** Run `fn` repeatedly for about `ms` milliseconds; returns operations per second. */
export function opsPerSecond(fn: () => void, ms: number): number {
  for (let i = 0; i < 200; i++) fn();
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
    now = process.hrtime.bigint();
  }
  return (n * 1e9) / Number(now - start);
}

/** Async variant of opsPerSecond. */
export async function opsPerSecondAsync(fn: () => Promise<void>, ms: number): Promise<number> {
  for (let i = 0; i < 50; i++) await fn();
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 20; i++) await fn();
    n += 20;
    now = process.hrtime.bigint();
  }
  return (n * 1e9) / Number(now - start);
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

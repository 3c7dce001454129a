// Progress of the demo on stderr: a redrawn bar per step when stderr is a terminal, plain step
// lines otherwise (CI logs, tests, pipes).
import type { CliIO } from '../io.js';

export interface ProgressSink {
  /** A step begins; `total` units of work (0: no bar). */
  begin(title: string, total: number): void;
  tick(n?: number): void;
  /** The step ended: ok with a one-line result, or failed with the reason. */
  end(ok: boolean, detail: string): void;
  /** A line of its own (e.g. a skipped step). */
  note(line: string): void;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Plain lines through the CLI's stderr. */
export class LineProgress implements ProgressSink {
  private t0 = 0;
  private title = '';
  private n = 0;
  constructor(private readonly io: CliIO) {}
  begin(title: string, total: number): void {
    this.t0 = performance.now();
    this.title = title;
    this.n++;
    this.io.err(`demo: [${this.n}] ${title}${total > 0 ? ` (${total})` : ''} ...`);
  }
  tick(): void {}
  end(ok: boolean, detail: string): void {
    this.io.err(`demo: [${this.n}] ${ok ? 'ok' : 'FAILED'}: ${this.title}: ${detail} (${secs(performance.now() - this.t0)})`);
  }
  note(line: string): void {
    this.io.err(`demo: ${line}`);
  }
}

/** A bar redrawn in place on a TTY (writes to the stream directly, never more than ~20 redraws/s). */
export class BarProgress implements ProgressSink {
  private t0 = 0;
  private title = '';
  private total = 0;
  private done = 0;
  private last = 0;
  private n = 0;
  constructor(private readonly stream: NodeJS.WriteStream) {}
  private draw(force = false): void {
    const now = performance.now();
    if (!force && now - this.last < 50) return;
    this.last = now;
    const width = 28;
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 0;
    const bar = this.total > 0 ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '.')}] ${this.done}/${this.total}` : '...';
    const tail = ` ${bar} ${secs(now - this.t0)}`;
    const head = `  [${this.n}] `;
    // one terminal line, or the carriage return cannot redraw it
    const room = Math.max(10, (this.stream.columns || 100) - head.length - tail.length - 1);
    const title = this.title.length > room ? `${this.title.slice(0, room - 1)}…` : this.title;
    this.stream.write(`\r\x1b[2K${head}${title}${tail}`);
  }
  begin(title: string, total: number): void {
    this.t0 = performance.now();
    this.title = title;
    this.total = total;
    this.done = 0;
    this.n++;
    this.draw(true);
  }
  tick(n = 1): void {
    this.done += n;
    this.draw();
  }
  end(ok: boolean, detail: string): void {
    this.stream.write(`\r\x1b[2K${ok ? '✔' : '✘'} [${this.n}] ${this.title}: ${detail} (${secs(performance.now() - this.t0)})\n`);
  }
  note(line: string): void {
    this.stream.write(`\r\x1b[2K  ${line}\n`);
  }
}

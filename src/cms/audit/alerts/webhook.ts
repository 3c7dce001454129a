// Delivers alerts to a webhook: POST JSON, retried with backoff, in the background. It never
// blocks or fails an append; what could not be delivered stays marked in the database.
import type { Alert } from './types.js';

export interface WebhookOptions {
  url: string;
  /** Attempts per alert (default 5). */
  attempts?: number;
  /** First retry delay; doubles each time (default 500 ms). */
  backoffMs?: number;
  timeoutMs?: number;
  /** Extra headers (e.g. an authorization token). */
  headers?: Record<string, string>;
  fetch?: typeof fetch;
}

export class WebhookNotifier {
  private readonly queue: { alert: Alert; done: (delivered: boolean, attempts: number) => void }[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: WebhookOptions) {
    if (!/^https?:\/\//.test(o.url)) throw new RangeError('webhook url must be http(s)');
  }

  /** Queue an alert; `done` is called with the outcome. Bounded: the oldest is dropped beyond 1,000. */
  send(alert: Alert, done: (delivered: boolean, attempts: number) => void): void {
    if (this.queue.length >= 1000) this.queue.shift()?.done(false, 0);
    this.queue.push({ alert, done });
    if (!this.running) void this.run();
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length) {
        const { alert, done } = this.queue.shift()!;
        const max = this.o.attempts ?? 5;
        let delay = this.o.backoffMs ?? 500;
        let ok = false;
        let n = 0;
        while (n < max && !ok) {
          n++;
          ok = await this.post(alert);
          if (!ok && n < max) {
            await new Promise((r) => setTimeout(r, delay).unref());
            delay *= 2;
          }
        }
        try {
          done(ok, n);
        } catch {
          /* ignore */
        }
      }
    } finally {
      this.running = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async post(alert: Alert): Promise<boolean> {
    const f = this.o.fetch ?? fetch;
    try {
      const res = await f(this.o.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...this.o.headers },
        body: JSON.stringify({ type: 'desfire-cms.alert', alert }),
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 5000),
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.ok;
    } catch {
      return false;
    }
  }

  /** Resolves when the queue is empty. */
  async idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return;
    await new Promise<void>((r) => this.idleWaiters.push(r));
  }
}

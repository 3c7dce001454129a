// Server-side time per route (Fastify's reply.elapsedTime: from request received to response sent),
// summed per route: operational metrics, and what the benchmark reports as server-side time.
export class ServerTimings {
  private readonly totals = new Map<string, { count: number; ms: number }>();

  record(route: string, ms: number): void {
    const t = this.totals.get(route) ?? { count: 0, ms: 0 };
    t.count++;
    t.ms += ms;
    this.totals.set(route, t);
  }

  snapshot(): Record<string, { count: number; ms: number }> {
    return Object.fromEntries([...this.totals].map(([k, v]) => [k, { ...v }]));
  }

  reset(): void {
    this.totals.clear();
  }
}

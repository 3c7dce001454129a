// Graceful shutdown coordination.
//
// BackgroundWork tracks the long-running jobs a CMS process runs on its own (KEK rewrap runs today;
// anything checkpointed that takes an AbortSignal). On stop, every job's signal is aborted: a job
// finishes the page/batch it is in, commits its checkpoint and returns ("parked"); a restart resumes
// it from that checkpoint (resume.ts). A job that does not park within the grace period is left to
// the crash-safety of its checkpoints (a page is one transaction): it is reported, never awaited
// forever.
//
// gracefulStop runs the whole SIGTERM sequence: stop accepting connections and drain in-flight
// requests (Fastify close, 503 to requests arriving meanwhile) while background jobs park; then
// close the metrics listener, commit every queued audit batch and seal the log with a signed
// checkpoint, and close the services.
export interface Job {
  id: string;
  name: string;
  startedAt: number;
}

export type JobOutcome = 'finished' | 'parked' | 'failed' | 'unresponsive';

interface Running extends Job {
  ac: AbortController;
  done: Promise<void>;
  outcome?: JobOutcome;
}

export interface WorkLogger {
  info(o: object, msg: string): void;
  error(o: object, msg: string): void;
}

export class ShutdownError extends Error {
  readonly code = 'ERR_SHUTTING_DOWN';
  constructor() {
    super('the server is shutting down; no new background work is started');
    this.name = 'ShutdownError';
  }
}

export class BackgroundWork {
  private readonly jobs = new Map<string, Running>();
  private stopping = false;
  private seq = 0;

  constructor(private readonly log?: WorkLogger) {}

  get accepting(): boolean {
    return !this.stopping;
  }

  list(): Job[] {
    return [...this.jobs.values()].map(({ id, name, startedAt }) => ({ id, name, startedAt }));
  }

  /**
   * Start `fn` in the background. It must honour `signal`: return (after committing its
   * checkpoint) once it is aborted. Throws ShutdownError once stop() has begun.
   */
  run(name: string, fn: (signal: AbortSignal) => Promise<unknown>, id = `${name}-${++this.seq}`): Job {
    if (this.stopping) throw new ShutdownError();
    const ac = new AbortController();
    const job: Running = { id, name, startedAt: Date.now(), ac, done: Promise.resolve() };
    job.done = (async () => {
      try {
        await fn(ac.signal);
        job.outcome = ac.signal.aborted ? 'parked' : 'finished';
        this.log?.info({ job: id, outcome: job.outcome }, `background job ${job.outcome}`);
      } catch (e) {
        job.outcome = 'failed';
        this.log?.error({ job: id, code: (e as { code?: string }).code ?? 'ERR' }, 'background job failed');
      } finally {
        this.jobs.delete(id);
      }
    })();
    this.jobs.set(id, job);
    return { id, name, startedAt: job.startedAt };
  }

  /** Abort every job and wait (at most graceMs) for each to park. Returns each job's outcome. */
  async stop(graceMs: number): Promise<{ id: string; name: string; outcome: JobOutcome }[]> {
    this.stopping = true;
    const jobs = [...this.jobs.values()];
    for (const j of jobs) j.ac.abort();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => {
      timer = setTimeout(r, graceMs);
      timer.unref();
    });
    await Promise.race([Promise.all(jobs.map((j) => j.done)), timeout]);
    clearTimeout(timer);
    return jobs.map((j) => ({ id: j.id, name: j.name, outcome: j.outcome ?? 'unresponsive' }));
  }
}

export interface StopTargets {
  /** The HTTP server: stop accepting, drain in-flight requests (its own grace period). */
  server?: { close(): Promise<void> };
  work?: BackgroundWork;
  metricsListener?: { close(): Promise<void> };
  /** The audit log: every queued batch is committed, then the log is sealed with a signed checkpoint. */
  audit?: { drain(): Promise<void>; checkpoint(): Promise<{ size: number }> };
  /** The services (audit log drain, custody, database), closed last. */
  services?: { close(): Promise<void> };
  graceMs: number;
  report?: (line: string) => void;
}

/** The SIGTERM sequence. Every step runs even when an earlier one failed. */
export async function gracefulStop(t: StopTargets): Promise<{ jobs: { id: string; name: string; outcome: JobOutcome }[] }> {
  const say = t.report ?? (() => undefined);
  const [, jobs] = await Promise.all([t.server?.close().catch((e: unknown) => say(`http drain: ${(e as Error).message}`)), t.work ? t.work.stop(t.graceMs) : Promise.resolve([])]);
  for (const j of jobs) say(`background job ${j.id}: ${j.outcome}${j.outcome === 'parked' ? ' (checkpoint committed; resumes at the next start)' : ''}`);
  await t.metricsListener?.close().catch(() => undefined);
  if (t.audit) {
    try {
      await t.audit.drain();
      const cp = await t.audit.checkpoint();
      say(`audit log committed and sealed by a signed checkpoint at size ${cp.size}`);
    } catch (e) {
      say(`audit checkpoint at stop failed: ${(e as { code?: string }).code ?? 'error'}`);
    }
  }
  await t.services?.close();
  return { jobs };
}

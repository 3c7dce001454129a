// Station jobs run by the reader agent: ask the CMS for a job (issue / install / delete) already
// claimed by this station (one request), check the job's token id and expiry against the agent's
// replay guard, run it with the station executor (src/reader/station, engineer H's), post the
// signed receipt, and account for it in the audit baton.
import type { Transport } from '../core/transport.js';
import type { ReaderAgent } from './agent.js';
import { ReaderError } from './errors.js';
import { CmsClient as StationHttp, StationExecutor, type StationJob } from './station/index.js';
import type { ReaderKeystore } from './keystore.js';

export type JobSpec = { kind: 'issue'; uid: string; randomUid?: boolean; /** The card's profile (the CMS's standing-policy authorisations match it). */ profile?: string } | { kind: 'install'; uid: string; aid: string } | { kind: 'delete'; uid: string; aid: string };

export interface JobResult {
  jobId: string;
  kind: string;
  ok: boolean;
  recorded: boolean;
  seq: number;
}

export class JobRunner {
  readonly http: StationHttp;
  private readonly executor: StationExecutor;

  constructor(
    private readonly agent: ReaderAgent,
    keystore: ReaderKeystore,
    cms: { url: string; servername?: string },
  ) {
    const u = new URL(cms.url);
    const c = keystore.certificates();
    this.http = new StationHttp({ host: u.hostname, port: Number(u.port || 443), ca: c.ca, cert: c.cert, key: keystore.tlsKeyPem(), ...(cms.servername ? { servername: cms.servername } : {}) });
    this.executor = new StationExecutor({ readerId: agent.readerId, privateKey: keystore.privateKey });
  }

  /**
   * Ask for a job already claimed by this station (one request, `claim: true`: no operation token
   * travels; the job's jti is single-use at the CMS, which takes one receipt per job, and in the
   * agent's replay guard). The job (with keys sealed to this reader) comes back.
   */
  async claim(spec: JobSpec): Promise<{ jobId: string; job: StationJob }> {
    const req = spec.kind === 'issue' ? { kind: 'issue', uid: spec.uid, ...(spec.randomUid !== undefined ? { picc: { randomUid: spec.randomUid } } : {}), ...(spec.profile !== undefined ? { profile: spec.profile } : {}) } : spec;
    const created = (await this.http.ok('POST', '/v1/station/jobs', { ...req, claim: true })) as { jobId: string; job?: StationJob };
    if (!created.job || created.job.jobId !== created.jobId) throw new ReaderError('ERR_READER_CMS', 'the CMS did not answer the claimed job');
    return { jobId: created.jobId, job: created.job };
  }

  /** Execute a claimed job on the card (refused when its token id was seen before or it expired). */
  async execute(jobId: string, job: StationJob, t: Transport): Promise<JobResult> {
    const aid = job.kind === 'install' ? job.application.aid : job.kind === 'delete' ? job.aid : '';
    const op = `job:${job.kind}`;
    try {
      if (job.jobId !== jobId) throw new ReaderError('ERR_READER_TOKEN', 'the job names another job id');
      this.agent.consumeToken(job.jti, job.expiresAt * 1000);
    } catch (e) {
      this.agent.record({ cardUid: job.uid, aid, keyNo: -1, keyVersion: -1, op, result: `refused:${(e as ReaderError).code}` });
      this.agent.scheduleSync();
      throw e;
    }
    const out = await this.executor.run(job, t);
    const r = (await this.http.ok('POST', `/v1/station/jobs/${jobId}/receipt`, { receipt: out.jws })) as { ok?: boolean };
    const e = this.agent.record({ cardUid: job.uid, aid, keyNo: -1, keyVersion: -1, op, result: out.ok ? (r.ok === true ? 'ok' : 'ok:not-recorded') : 'failed' });
    this.agent.scheduleSync();
    return { jobId, kind: job.kind, ok: out.ok, recorded: r.ok === true, seq: e.seq };
  }

  async run(spec: JobSpec, t: Transport): Promise<JobResult> {
    const c = await this.claim(spec);
    return this.execute(c.jobId, c.job, t);
  }

  close(): void {
    this.http.close();
  }
}

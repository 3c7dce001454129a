// The station's HTTP client to the CMS (HTTPS with the reader's certificate: mTLS) and the whole
// personalisation flow: read the UID, ask for ONE 'personalise' job (the issue and every
// installation) already claimed by this station (one request: the keys sealed to it), run it on the
// card in one session, post the one signed receipt. Also the remote-mode relay loop (the reader only relays
// APDUs) for reads and reconciliation. Engineer I's reader agent and the tests share it.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { Http1Pool, jsonBody } from '../http1.js';
import { fromHex, toHex } from '../../core/crypto/bytes.js';
import { Ev2HostSession } from '../../core/sm/ev2.js';
import type { ReaderUnsealer, SealedKey } from '../../custody/sealed.js';
import type { KeyBinding } from '../../custody/types.js';
import type { Transport } from '../../core/transport.js';
import { StationExecutor, type JobOutcome, type StationOptions } from './executor.js';
import type { StationJob } from './protocol.js';

export class CmsCallError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.name = 'CmsCallError';
  }
}

export interface CmsConnection {
  host: string;
  port: number;
  /** PEM of the CMS CA (server and reader certificates). */
  ca: string;
  /** The reader's certificate and private key (PEM). */
  cert: string;
  key: string;
  servername?: string;
  maxSockets?: number;
  /** Per request (default 30,000 ms): a CMS that does not answer is an error, not a hang. */
  timeoutMs?: number;
}

export class CmsClient {
  private readonly pool: Http1Pool;
  constructor(readonly conn: CmsConnection) {
    // the reader's HTTP/1.1 client (src/reader/http1.ts), keep-alive mTLS connections
    const authority = conn.host.includes(':') ? `[${conn.host}]:${conn.port}` : `${conn.host}:${conn.port}`;
    this.pool = new Http1Pool({ host: conn.host, port: conn.port, authority, servername: conn.servername ?? 'localhost', secureContext: createSecureContext({ ca: conn.ca, cert: conn.cert, key: conn.key }), maxSockets: conn.maxSockets ?? 4 });
  }

  /** A network failure or timeout rejects (the error's `code`, e.g. ECONNREFUSED, ERR_READER_TIMEOUT); an answer resolves, whatever its status. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies
  async call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    // only reads are sent again after an idle connection's close: a job creation or a receipt is not repeated blindly
    const r = await this.pool.request({ method, path, headers: payload === undefined ? {} : { 'content-type': 'application/json' }, ...(payload !== undefined ? { body: payload } : {}), timeoutMs: this.conn.timeoutMs ?? 30_000, repeatable: method === 'GET' });
    return { status: r.status, body: jsonBody(r) };
  }

  /** Like call(), but a non-2xx answer throws CmsCallError with the CMS's error code. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies
  async ok(method: string, path: string, body?: unknown): Promise<any> {
    const r = await this.call(method, path, body);
    if (r.status < 200 || r.status > 299) {
      const e = (r.body as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new CmsCallError(r.status, e?.code ?? 'ERR_HTTP', e?.message ?? `HTTP ${r.status}`);
    }
    return r.body;
  }

  close(): void {
    this.pool.destroy();
  }
}

export type JobRequest =
  | { kind: 'issue'; uid: string; picc?: { keySettings?: Record<string, boolean>; randomUid?: boolean }; profile?: string }
  | { kind: 'install'; uid: string; aid: string }
  | { kind: 'delete'; uid: string; aid: string }
  | { kind: 'personalise'; uid: string; aids: string[]; picc?: { keySettings?: Record<string, boolean>; randomUid?: boolean }; profile?: string };

export interface StationRun extends JobOutcome {
  jobId: string;
  recorded: boolean;
  /** Milliseconds of HTTP round trips to the CMS (create with claim, receipt). */
  cmsMs: number;
}

/** One step of a personalise job as the card saw it: done (`ok`), and recorded by the CMS with the whole job. */
export interface PersonaliseStepRun {
  step: 'issue' | 'install';
  /** '000000' for the issue. */
  aid: string;
  /** The card completed the step (the issue: CMK, PICC key settings and, with random UID, SetConfiguration). */
  ok: boolean;
  /** The CMS recorded the job (all steps or none). */
  recorded: boolean;
}

/** A personalise job: its one run (one receipt) and what it means per step (issue, then each AID). */
export interface Personalisation extends StationRun {
  uid: string;
  runs: PersonaliseStepRun[];
}

/** The PC/SC reader's UID of the card in the field (GET DATA FF CA 00 00 00). */
export async function readUid(t: Transport): Promise<string> {
  const r = await t.transmit(Uint8Array.of(0xff, 0xca, 0x00, 0x00, 0x00));
  if (r.length < 3 || r[r.length - 2] !== 0x90 || r[r.length - 1] !== 0x00) throw new CmsCallError(0, 'ERR_STATION_UID', 'the reader did not answer GET DATA (UID)');
  return toHex(r.subarray(0, r.length - 2)).toUpperCase();
}

export class StationClient {
  readonly executor: StationExecutor;
  constructor(
    readonly cms: CmsClient,
    opts: Omit<StationOptions, 'privateKey'> & { privateKey?: KeyObject },
  ) {
    this.executor = new StationExecutor({ ...opts, privateKey: opts.privateKey ?? createPrivateKey(cms.conn.key) });
  }

  /**
   * Ask for a job (claimed by this station in the same request), run it on the card and post the
   * receipt. `separateClaim`: the two-step protocol instead (create → token → claim), as for a job
   * created for another station.
   */
  async run(req: JobRequest, t: Transport, opts: { separateClaim?: boolean } = {}): Promise<StationRun> {
    let cmsMs = 0;
    const timed = async <T>(fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        cmsMs += performance.now() - t0;
      }
    };
    let created: { jobId: string; job?: StationJob; token?: string };
    let job: StationJob;
    if (opts.separateClaim) {
      created = await timed(() => this.cms.ok('POST', '/v1/station/jobs', req));
      ({ job } = (await timed(() => this.cms.ok('POST', `/v1/station/jobs/${created.jobId}/claim`, { token: created.token }))) as { job: StationJob });
    } else {
      created = await timed(() => this.cms.ok('POST', '/v1/station/jobs', { ...req, claim: true }));
      if (!created.job) throw new CmsCallError(0, 'ERR_STATION_PROTOCOL', 'the CMS did not answer the claimed job');
      job = created.job;
    }
    const out = await this.executor.run(job, t);
    const r = await timed(() => this.cms.ok('POST', `/v1/station/jobs/${created.jobId}/receipt`, { receipt: out.jws }));
    return { ...out, jobId: created.jobId, recorded: r.ok === true, cmsMs };
  }

  /**
   * The whole first personalisation of a blank card in ONE job: issue, then each AID in order,
   * random UID (if asked) enabled last; one request for the job, one card session, one receipt.
   * No fallback to separate jobs: a refusal by the CMS throws CmsCallError (its code), a local
   * failure StationError (no receipt: the job is reconciled by probing), a card refusal comes back
   * with `recorded: false` (nothing recorded; the CMS reconciles by probing every step).
   */
  async personalise(t: Transport, aids: string[], picc?: { keySettings?: Record<string, boolean>; randomUid?: boolean }, opts: { profile?: string } = {}): Promise<Personalisation> {
    const uid = await readUid(t);
    const run = await this.run({ kind: 'personalise', uid, aids, ...(picc ? { picc } : {}), ...(opts.profile !== undefined ? { profile: opts.profile } : {}) }, t);
    const res = run.receipt.results;
    const done = (op: string, aid: string) => res.some((x) => x.op === op && x.aid === aid && x.status === 0);
    const randomUid = picc?.randomUid === true;
    const runs: PersonaliseStepRun[] = [
      { step: 'issue', aid: '000000', ok: done('ChangeKeySettings', '000000') && (!randomUid || done('SetConfiguration', '000000')), recorded: run.recorded },
      ...aids.map((aid) => ({ step: 'install' as const, aid: aid.toUpperCase(), ok: done('CommitTransaction', aid.toUpperCase()), recorded: run.recorded })),
    ];
    return { ...run, uid, runs };
  }
}

/** Remote mode, reader side: relay every APDU the CMS sends to the card until the result. */
export async function relayRemote(cms: CmsClient, t: Transport, start: Record<string, unknown>): Promise<{ result: unknown; exchanges: number }> {
  let step = await cms.ok('POST', '/v1/remote/sessions', start);
  let exchanges = 0;
  while (!step.done) {
    const resp = await t.transmit(fromHex(step.apdu as string));
    exchanges++;
    step = await cms.ok('POST', `/v1/remote/sessions/${step.sessionId}/step`, { response: toHex(resp) });
  }
  return { result: step.result, exchanges };
}

/**
 * Remote mode with session key release: the CMS authenticates (EV2First) through this reader, then
 * hands it only the session (SesAuthENC/MAC sealed to the reader, TI, CmdCtr). The returned session
 * is adopted by a DesfireClient on the same card connection for the rest of that transaction.
 */
export async function remoteSession(cms: CmsClient, t: Transport, req: { uid: string; aid: string; keyNo: number }, unsealer: ReaderUnsealer): Promise<Ev2HostSession> {
  const { result } = await relayRemote(cms, t, { op: 'session', ...req });
  const r = result as { keyNo: number; ti: string; cmdCtr: number; binding: KeyBinding; sealed: SealedKey };
  const both = await unsealer.unseal(r.sealed, r.binding);
  try {
    if (both.length !== 32) throw new CmsCallError(0, 'ERR_REMOTE_SESSION', 'released session keys must be 32 bytes');
    return new Ev2HostSession({ keyNo: r.keyNo, ti: fromHex(r.ti), cmdCtr: r.cmdCtr, encKey: both.subarray(0, 16), macKey: both.subarray(16, 32) });
  } finally {
    both.fill(0);
  }
}

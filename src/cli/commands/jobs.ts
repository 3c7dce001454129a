// desfire-cms jobs: station jobs through the CMS API (HTTPS, operator token from DESFIRE_CMS_TOKEN
// or --token-file, never argv): list and show them, and ask a station to reconcile a job whose
// outcome is unknown — the station probes the card when it is in front of it (the CMS decides from
// the probe only, never by guessing; docs/provisioning.md#reconciliation-probe-never-guess).
//
//   jobs list       [--state S] [--uid UID] [--limit N] [--after CURSOR | --all]   (oldest first, paged)
//   jobs show       JOB_ID
//   jobs reconcile  JOB_ID --reader STATION_ID
// Common: --cms https://HOST:PORT --ca FILE [--servername NAME] [--token-file FILE] [--json]
import { type CliIO, type Command, UsageError } from '../io.js';
import { subcommand } from './cards.js';
import { apiClient, intOpt, need, one, show } from './rotation.js';

const USAGE = [
  'usage: desfire-cms jobs <list|show|reconcile> --cms https://HOST:PORT --ca FILE [options]',
  '  jobs list      [--state created|claimed|completed|failed|unknown|reconciled] [--uid UID] [--limit N]',
  '                 [--after CURSOR]   the page after CURSOR (the `next: --after …` of the previous page)',
  '                 [--all]            every page from there on, following `next` (--limit: jobs per request)',
  '  jobs show      JOB_ID',
  '  jobs reconcile JOB_ID --reader STATION_ID     (the station probes the card; see `desfire-cms jobs show`)',
  '  token: DESFIRE_CMS_TOKEN or --token-file FILE',
];

const STATES = ['created', 'claimed', 'completed', 'failed', 'unknown', 'reconciled'];
/** GET /v1/jobs's `next` (opaque base64url; the CMS checks it: 400 ERR_BAD_CURSOR). */
const CURSOR_RE = /^[A-Za-z0-9_-]{1,128}$/;
type Row = Record<string, unknown>;
const jobLine = (j: Row): string => `${String(j.id)}  ${String(j.kind)} ${String(j.aid)}  card ${String(j.uid)}  ${String(j.state)}  reader ${String(j.readerId)}`;

function jobId(pos: string[], what: string): string {
  const v = pos[1];
  if (!v || !/^job_[A-Za-z0-9_-]{1,40}$/.test(v)) throw new UsageError(`${what}: give the job id (job_…)`);
  return v;
}

async function run(args: string[], io: CliIO): Promise<number> {
  const s = subcommand(args, io, USAGE);
  if (typeof s === 'number') return s;
  const { o, sub } = s;
  if (sub === 'list') {
    const q = new URLSearchParams();
    const state = one(o, '--state');
    if (state !== undefined && !STATES.includes(state)) throw new UsageError(`--state must be one of ${STATES.join(', ')}`);
    const uid = one(o, '--uid');
    if (uid !== undefined && !/^([0-9A-Fa-f]{2}){4,10}$/.test(uid)) throw new UsageError('--uid must be a card UID (8-20 hex digits)');
    const limit = intOpt(o, '--limit', 1, 1000);
    const after = one(o, '--after');
    if (after !== undefined && !CURSOR_RE.test(after)) throw new UsageError('--after must be a cursor: the `next` printed by a previous `jobs list`');
    for (const [k, v] of [['state', state], ['uid', uid?.toUpperCase()], ['limit', limit?.toString()], ['after', after]] as const) if (v !== undefined) q.set(k, v);
    const api = apiClient(o, io);
    const page = () => api.call('GET', `/v1/jobs${q.size ? `?${q}` : ''}`);
    if (!o.bools.has('--all')) return show(io, o, await page(), (b) => [...(b.jobs as Row[]).map(jobLine), ...(b.next ? [`next: --after ${String(b.next)}`] : [])]);
    // every page, following `next`: text lines page by page; --json one document at the end
    const json = o.bools.has('--json');
    const jobs: unknown[] = [];
    for (;;) {
      const r = await page();
      const b = r.body as { jobs?: Row[]; next?: string | null };
      if (r.status >= 400) return show(io, o, r);
      if (!Array.isArray(b?.jobs)) {
        io.err('error: GET /v1/jobs answered without a list of jobs');
        return 1;
      }
      if (json) jobs.push(...b.jobs);
      else for (const j of b.jobs) io.out(jobLine(j));
      if (!b.next) break;
      if (b.next === q.get('after')) {
        io.err(`error: GET /v1/jobs answered the same cursor again (${b.next}): stopped`);
        return 1;
      }
      q.set('after', b.next);
    }
    if (json) io.out(JSON.stringify({ jobs, next: null }, null, 2));
    return 0;
  }
  if (sub === 'show') {
    const id = jobId(o.pos, 'jobs show JOB_ID');
    return show(io, o, await apiClient(o, io).call('GET', `/v1/jobs/${id}`), (b) => [jobLine(b), ...(b.outcome ? [`outcome: ${JSON.stringify(b.outcome)}`] : [])]);
  }
  if (sub === 'reconcile') {
    const id = jobId(o.pos, 'jobs reconcile JOB_ID');
    const reader = need(o, '--reader');
    if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(reader)) throw new UsageError('--reader must be a reader id ([a-z0-9][a-z0-9._-]{0,62})');
    const r = await apiClient(o, io).call('POST', `/v1/jobs/${id}/reconcile`, { readerId: reader });
    return show(io, o, r, (b) => [`reconcile of ${String(b.jobId)} (${String(b.kind)} ${String(b.aid)}, card ${String(b.uid)}) requested of station ${String(b.readerId)}: it probes the card when it is presented`]);
  }
  throw new UsageError(`unknown subcommand '${sub}' (expected: list, show, reconcile)`);
}

export const command: Command = { run };

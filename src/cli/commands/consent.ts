// desfire-cms consent: tenant authorisations, the issuer's requests and cardholder consent, through
// the CMS API (HTTPS, operator token). The token comes from the environment (DESFIRE_CMS_TOKEN) or
// a file (--token-file), never from argv.
//
//   consent request    --tenant T --aid AID --op install|rotate|delete (--card UID ... | --profile P) --ttl S --reason TEXT
//   consent pending    [--tenant T]                      pending requests (what a tenant admin decides)
//   consent grant      REQUEST_ID [--ttl S]
//   consent refuse     REQUEST_ID [--reason TEXT]
//   consent authorise  --tenant T --aid AID --op OP (--card UID ... | --profile P) --ttl S
//   consent list       [--tenant T] [--active]
//   consent revoke     AUTHORISATION_ID
//   consent record     --uid UID --aid AID --cardholder REF [--evidence TEXT]
//   consent withdraw   CONSENT_ID
//   consent deletions  [--uid UID]
//   consent profile    UID (--profile NAME | --clear)   the card's profile (issuer): what standing policies match
// Common: --cms https://HOST:PORT --ca FILE [--servername NAME] [--token-file FILE] [--json]
import { type CliIO, type Command, UsageError } from '../io.js';
import { type Opts, apiClient, need, one } from './rotation.js';

const USAGE = [
  'usage: desfire-cms consent <request|pending|grant|refuse|authorise|list|revoke|record|withdraw|deletions|profile> --cms https://HOST:PORT --ca FILE [options]',
  '  token: DESFIRE_CMS_TOKEN or --token-file FILE',
];

const BOOLS = new Set(['--json', '--active', '--clear', '--help']);

function parse(args: string[]): Opts {
  const o: Opts = { pos: [], flags: new Map(), bools: new Set() };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (BOOLS.has(a)) o.bools.add(a);
    else if (a.startsWith('--')) {
      const v = args[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${a} needs a value`);
      o.flags.set(a, [...(o.flags.get(a) ?? []), v]);
    } else o.pos.push(a);
  }
  return o;
}

const int = (o: Opts, f: string, required: boolean): number | undefined => {
  const v = required ? need(o, f) : one(o, f);
  if (v === undefined) return undefined;
  if (!/^[1-9][0-9]{0,9}$/.test(v)) throw new UsageError(`${f} must be a positive integer`);
  return Number(v);
};
const idArg = (o: Opts, what: string, re: RegExp): string => {
  const v = o.pos[1];
  if (!v || !re.test(v)) throw new UsageError(`${what}: give the id (${re.source})`);
  return v;
};

function scope(o: Opts): { cards?: string[]; profile?: string } {
  const cards = o.flags.get('--card');
  const profile = one(o, '--profile');
  if ((cards === undefined) === (profile === undefined)) throw new UsageError('give --card UID (repeatable: a batch) or --profile NAME (standing policy; * = every card)');
  if (cards) {
    for (const c of cards) if (!/^([0-9A-Fa-f]{2}){4,10}$/.test(c)) throw new UsageError(`--card: ${c} is not a UID (4..10 bytes of hex)`);
    return { cards };
  }
  return { profile: profile! };
}

function op(o: Opts): string {
  const v = need(o, '--op');
  if (!['install', 'rotate', 'delete'].includes(v)) throw new UsageError('--op must be install, rotate or delete');
  return v;
}

type Row = Record<string, unknown>;
const summary: Record<string, (r: Row) => string> = {
  request: (r) => `${String(r.id)}  ${String(r.state)}  ${String(r.tenant)} ${String(r.aid)} ${String(r.operation)} ${r.cardUids ? (r.cardUids as string[]).join(',') : `profile ${String(r.cardProfile)}`}  "${String(r.reason)}"`,
  authorisation: (r) =>
    `${String(r.id)}  ${String(r.tenant)} ${String(r.aid)} ${String(r.operation)} ${String(r.scope)} ${r.cardUids ? (r.cardUids as string[]).join(',') : `profile ${String(r.cardProfile)}`}  expires ${new Date(Number(r.expiresAt)).toISOString()}${r.revokedAt ? '  REVOKED' : ''}`,
  consent: (r) => `${String(r.id)}  ${String(r.state)}  ${String(r.uid)} ${String(r.aid)} ${String(r.tenant)} cardholder ${String(r.cardholder)}`,
  deletion: (r) => `${String(r.uid)} ${String(r.aid)} ${String(r.tenant)}  ${String(r.reason)}  under ${String(r.authorisationId)}`,
  profile: (r) => `${String(r.uid)}  profile ${r.profile === null ? '(none)' : String(r.profile)}`,
};

async function run(args: string[], io: CliIO): Promise<number> {
  const o = parse(args);
  const sub = o.pos[0];
  if (!sub || o.bools.has('--help')) {
    for (const l of USAGE) io.out(l);
    return sub ? 0 : 2;
  }
  const calls: Record<string, () => [string, string, unknown, string, string?]> = {
    request: () => ['POST', '/v1/authorisation-requests', { tenant: need(o, '--tenant'), aid: need(o, '--aid'), operation: op(o), ...scope(o), ttlSeconds: int(o, '--ttl', true), reason: need(o, '--reason') }, 'request'],
    pending: () => ['GET', `/v1/authorisation-requests?state=pending${one(o, '--tenant') ? `&tenant=${encodeURIComponent(one(o, '--tenant')!)}` : ''}`, undefined, 'request', 'requests'],
    grant: () => {
      const ttl = int(o, '--ttl', false);
      return ['POST', `/v1/authorisation-requests/${idArg(o, 'grant', /^areq_[A-Za-z0-9_-]{1,40}$/)}/grant`, ttl ? { ttlSeconds: ttl } : {}, 'authorisation', 'authorisation'];
    },
    refuse: () => ['POST', `/v1/authorisation-requests/${idArg(o, 'refuse', /^areq_[A-Za-z0-9_-]{1,40}$/)}/refuse`, one(o, '--reason') ? { reason: one(o, '--reason') } : {}, 'request'],
    authorise: () => ['POST', '/v1/authorisations', { tenant: need(o, '--tenant'), aid: need(o, '--aid'), operation: op(o), ...scope(o), ttlSeconds: int(o, '--ttl', true) }, 'authorisation'],
    list: () => {
      const q = new URLSearchParams();
      if (one(o, '--tenant')) q.set('tenant', one(o, '--tenant')!);
      if (o.bools.has('--active')) q.set('active', 'true');
      return ['GET', `/v1/authorisations${q.size ? `?${q}` : ''}`, undefined, 'authorisation', 'authorisations'];
    },
    revoke: () => ['POST', `/v1/authorisations/${idArg(o, 'revoke', /^auth_[A-Za-z0-9_-]{1,40}$/)}/revoke`, undefined, 'authorisation'],
    record: () => ['POST', '/v1/consents', { uid: need(o, '--uid'), aid: need(o, '--aid'), cardholder: need(o, '--cardholder'), ...(one(o, '--evidence') ? { evidence: one(o, '--evidence') } : {}) }, 'consent'],
    withdraw: () => ['POST', `/v1/consents/${idArg(o, 'withdraw', /^cns_[A-Za-z0-9_-]{1,40}$/)}/withdraw`, undefined, 'consent', 'consent'],
    deletions: () => ['GET', `/v1/pending-deletions${one(o, '--uid') ? `?uid=${encodeURIComponent(one(o, '--uid')!)}` : ''}`, undefined, 'deletion', 'deletions'],
    profile: () => {
      const uid = idArg(o, 'profile', /^([0-9A-Fa-f]{2}){4,10}$/);
      const name = one(o, '--profile');
      if ((name === undefined) === !o.bools.has('--clear')) throw new UsageError('give --profile NAME or --clear');
      if (name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) throw new UsageError('--profile: 1-64 of A-Z a-z 0-9 . _ - (not *: a card has one profile)');
      return ['PUT', `/v1/cards/${uid.toUpperCase()}/profile`, { profile: name ?? null }, 'profile'];
    },
  };
  const build = calls[sub];
  if (!build) throw new UsageError(`unknown subcommand '${sub}' (request, pending, grant, refuse, authorise, list, revoke, record, withdraw, deletions, profile)`);
  const [method, path, body, kind, field] = build();
  const api = apiClient(o, io);
  const r = await api.call(method, path, body);
  if (r.status >= 400) {
    const e = (r.body as { error?: { code?: string; message?: string } })?.error;
    io.err(`desfire-cms consent ${sub}: ${r.status} ${e?.code ?? ''} ${e?.message ?? ''}`.trimEnd());
    return 1;
  }
  if (o.bools.has('--json')) {
    io.out(JSON.stringify(r.body));
    return 0;
  }
  const b = r.body as Row;
  const data = field ? b[field] : b;
  const rows = Array.isArray(data) ? (data as Row[]) : [data as Row];
  for (const row of rows) io.out(summary[kind]!(row));
  if (sub === 'withdraw' && b.deletion) io.out(`deletion scheduled: ${summary.deletion!(b.deletion as Row)}`);
  return 0;
}

export const command: Command = { run };

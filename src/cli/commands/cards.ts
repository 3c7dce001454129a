// desfire-cms cards: the CMS's cards through its API (HTTPS, operator token from DESFIRE_CMS_TOKEN
// or --token-file, never argv): list, show, and move a card along its lifecycle (issued → active
// when handed out; active ⇄ suspended; → revoked → destroyed; keys are delivered only for active
// cards). `card` (singular) is the virtual card image family; this one talks to the CMS.
//
//   cards list   [--state S] [--limit N] [--after UID]
//   cards show   UID
//   cards state  UID --to active|suspended|revoked|destroyed
// Common: --cms https://HOST:PORT --ca FILE [--servername NAME] [--token-file FILE] [--json]
import { type CliIO, type Command, UsageError } from '../io.js';
import { type Opts, apiClient, intOpt, need, one, parseOpts, show } from './rotation.js';

const USAGE = [
  'usage: desfire-cms cards <list|show|state> --cms https://HOST:PORT --ca FILE [options]',
  '  cards list  [--state S] [--limit N] [--after UID]',
  '  cards show  UID',
  '  cards state UID --to active|suspended|revoked|destroyed',
  '  token: DESFIRE_CMS_TOKEN or --token-file FILE',
];

const UID_RE = /^([0-9A-Fa-f]{2}){4,10}$/;
const STATES = ['blank', 'issued', 'active', 'suspended', 'revoked', 'destroyed'];
const TARGETS = ['active', 'suspended', 'revoked', 'destroyed'];

type Row = Record<string, unknown>;
const cardLine = (c: Row): string => `${String(c.uid)}  ${String(c.state)}${c.randomUid ? '  random-uid' : ''}  cmk v${String(c.piccKeyVersion)}${c.profile ? `  profile ${String(c.profile)}` : ''}`;

function uidArg(pos: string[], what: string): string {
  const v = pos[1];
  if (!v || !UID_RE.test(v)) throw new UsageError(`${what}: give the card UID (8-20 hex digits)`);
  return v.toUpperCase();
}

/**
 * The parsed options and subcommand of an API command family, or its exit code after the usage
 * was printed: with --help on stdout (0), without a subcommand on stderr (2).
 */
export function subcommand(args: string[], io: CliIO, usage: string[]): { o: Opts; sub: string } | number {
  const o = parseOpts(args);
  const sub = o.pos[0];
  if (sub && !o.bools.has('--help')) return { o, sub };
  for (const l of usage) (sub ? io.out : io.err)(l);
  return sub ? 0 : 2;
}

async function run(args: string[], io: CliIO): Promise<number> {
  const s = subcommand(args, io, USAGE);
  if (typeof s === 'number') return s;
  const { o, sub } = s;
  switch (sub) {
    case 'list': {
      const q = new URLSearchParams();
      const state = one(o, '--state');
      if (state !== undefined) {
        if (!STATES.includes(state)) throw new UsageError(`--state must be one of ${STATES.join(', ')}`);
        q.set('state', state);
      }
      const limit = intOpt(o, '--limit', 1, 1000);
      if (limit !== undefined) q.set('limit', String(limit));
      const after = one(o, '--after');
      if (after !== undefined) {
        if (!UID_RE.test(after)) throw new UsageError('--after must be a card UID (8-20 hex digits)');
        q.set('after', after.toUpperCase());
      }
      const r = await apiClient(o, io).call('GET', `/v1/cards${q.size ? `?${q}` : ''}`);
      return show(io, o, r, (b) => [...(b.cards as Row[]).map(cardLine), ...(b.next ? [`next: --after ${String(b.next)}`] : [])]);
    }
    case 'show': {
      const uid = uidArg(o.pos, 'cards show UID');
      const r = await apiClient(o, io).call('GET', `/v1/cards/${uid}`);
      return show(io, o, r, (b) => [
        cardLine(b.card as Row),
        ...(b.applications as Row[]).map((a) => `  ${String(a.aid)} (${String(a.tenantId)})  keys ${(a.keys as { keyNo: number; version: number }[]).map((k) => `${k.keyNo}:v${k.version}`).join(' ')}`),
      ]);
    }
    case 'state': {
      const uid = uidArg(o.pos, 'cards state UID');
      const to = need(o, '--to');
      if (!TARGETS.includes(to)) throw new UsageError(`--to must be one of ${TARGETS.join(', ')}`);
      const r = await apiClient(o, io).call('POST', `/v1/cards/${uid}/state`, { state: to });
      return show(io, o, r, (b) => [cardLine(b)]);
    }
    default:
      throw new UsageError(`unknown subcommand '${sub}' (expected: list, show, state)`);
  }
}

export const command: Command = { run };

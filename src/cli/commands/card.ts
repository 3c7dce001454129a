// `desfire-cms card create|show|list|serve`: make and inspect virtual card images, and attach a
// card to pcscd through vsmartcard's vpcd so that every PC/SC application sees it in a reader.
// Images are secret-bearing (they hold the card's keys); nothing here ever prints a key value.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadImage, saveImageAtomic } from '../../card/image-file.js';
import type { CardImage } from '../../card/image.js';
import type { Bitrate } from '../../card/latency.js';
import type { Profile } from '../../card/model.js';
import { VirtualCard } from '../../card/virtual-card.js';
import { CardServer, type CardServerEvent } from '../../transport/card-server.js';
import { parseHostPort } from '../../transport/vpcd-bridge.js';
import { type CliIO, type Command, UsageError } from '../io.js';
import { need, parse } from '../flags.js';

const USAGE = [
  'usage: desfire-cms card create --image FILE [--uid HEX] [--profile ev1|ev2|ev3] [--force]',
  '       desfire-cms card show --image FILE [--json]',
  '       desfire-cms card list --dir DIR',
  '       desfire-cms card serve [--vpcd HOST:PORT] --image FILE [--uid HEX] [--profile ev1|ev2|ev3] [--latency 106|848] [--no-quickack] [--verbose]',
];

export function parseUid(s: string): Uint8Array {
  const h = s.replace(/[\s:]/g, '');
  if (!/^[0-9a-fA-F]{14}$/.test(h)) throw new UsageError(`--uid must be 7 bytes in hex (14 hex digits), got '${s}'`);
  return Uint8Array.from(Buffer.from(h, 'hex'));
}

function parseProfile(s: string | undefined): Profile | undefined {
  if (s === undefined) return undefined;
  if (s !== 'ev1' && s !== 'ev2' && s !== 'ev3') throw new UsageError(`--profile must be ev1, ev2 or ev3, got '${s}'`);
  return s;
}

const hx = (n: number, w = 2) => n.toString(16).toUpperCase().padStart(w, '0');

/** What `card show` prints: everything about the card except key values and file contents. */
export function summarise(img: CardImage): Record<string, unknown> {
  return {
    uid: img.uid,
    profile: img.profile,
    picc: {
      keyType: img.picc.keyType,
      keyVersion: img.picc.key.version,
      keySettings: `0x${hx(img.picc.keySettings)}`,
      randomUid: img.picc.randomUid,
      formatDisabled: img.picc.formatDisabled,
    },
    apps: img.apps.map((a) => ({
      aid: a.aid,
      keySettings: `0x${hx(a.keySettings)}`,
      keyType: a.keyType,
      keyVersions: a.keys.map((k) => k.version),
      ...(a.isoFid !== undefined ? { isoFid: `0x${hx(a.isoFid, 4)}` } : {}),
      ...(a.dfName !== undefined ? { dfName: a.dfName } : {}),
      files: a.files.map((f) => ({
        fileNo: f.fileNo,
        type: f.type,
        comm: f.comm,
        access: f.access,
        ...(f.isoFid !== undefined ? { isoFid: `0x${hx(f.isoFid, 4)}` } : {}),
        ...(f.size !== undefined ? { size: f.size } : {}),
        ...(f.type === 'value' ? { lower: f.lower, upper: f.upper, limitedCredit: f.limitedCreditEnabled, freeGetValue: f.freeGetValue } : {}),
        ...(f.recordSize !== undefined ? { recordSize: f.recordSize, maxRecords: f.maxRecords, records: f.records?.length ?? 0 } : {}),
      })),
    })),
  };
}

async function create(args: string[], io: CliIO): Promise<number> {
  const f = parse(args, ['image', 'uid', 'profile'], ['force']);
  const path = resolve(io.cwd, need(f, 'image'));
  const uid = f.values.uid !== undefined ? parseUid(f.values.uid) : undefined;
  const profile = parseProfile(f.values.profile);
  if (existsSync(path) && !f.bools.has('force')) {
    io.err(`desfire-cms card: ${path} exists (use --force to replace it)`);
    return 1;
  }
  const card = VirtualCard.create({ ...(uid ? { uid } : {}), ...(profile ? { profile } : {}) });
  await saveImageAtomic(path, card.toImage());
  io.out(`created ${path}: card ${Buffer.from(card.uid).toString('hex').toUpperCase()} (${card.profile}), factory state`);
  return 0;
}

async function show(args: string[], io: CliIO): Promise<number> {
  const f = parse(args, ['image'], ['json']);
  const path = resolve(io.cwd, need(f, 'image'));
  const s = summarise(await loadImage(path)) as ReturnType<typeof summarise> & {
    picc: Record<string, unknown>;
    apps: Array<Record<string, unknown> & { files: Array<Record<string, unknown>> }>;
  };
  if (f.bools.has('json')) {
    io.out(JSON.stringify(s, null, 2));
    return 0;
  }
  io.out(`image    ${path}`);
  io.out(`uid      ${String(s.uid)}`);
  io.out(`profile  ${String(s.profile)}`);
  const p = s.picc;
  io.out(`picc     key ${String(p.keyType)} v${String(p.keyVersion)}, key settings ${String(p.keySettings)}, random UID ${p.randomUid ? 'on' : 'off'}, format ${p.formatDisabled ? 'disabled' : 'enabled'}`);
  io.out(`apps     ${s.apps.length}`);
  for (const a of s.apps) {
    const versions = (a.keyVersions as number[]).join(',');
    io.out(`  app ${String(a.aid)}  key settings ${String(a.keySettings)}, ${(a.keyVersions as number[]).length} ${String(a.keyType)} keys (versions ${versions})${a.isoFid ? `, ISO FID ${String(a.isoFid)}` : ''}`);
    for (const file of a.files) {
      const extra = file.size !== undefined ? `size ${String(file.size)}` : file.recordSize !== undefined ? `${String(file.records)}/${String(file.maxRecords)} records of ${String(file.recordSize)}` : `limits ${String(file.lower)}..${String(file.upper)}`;
      io.out(`    file ${hx(file.fileNo as number)}  ${String(file.type).padEnd(6)} comm ${String(file.comm).padEnd(5)} access ${String(file.access)}  ${extra}`);
    }
  }
  return 0;
}

async function list(args: string[], io: CliIO): Promise<number> {
  const f = parse(args, ['dir']);
  const dir = resolve(io.cwd, need(f, 'dir'));
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
  } catch (e) {
    io.err(`desfire-cms card: cannot read ${dir}: ${(e as Error).message}`);
    return 1;
  }
  let n = 0;
  for (const name of names) {
    try {
      const img = await loadImage(join(dir, name));
      io.out(`${name}  ${img.uid}  ${img.profile}  ${img.apps.length} app${img.apps.length === 1 ? '' : 's'}`);
      n++;
    } catch (e) {
      io.err(`${name}: not a card image (${(e as Error).message})`);
    }
  }
  io.out(`${n} card${n === 1 ? '' : 's'} in ${dir}`);
  return 0;
}

/** `card serve`, stoppable through `signal` (the command wires SIGINT/SIGTERM to it). */
export async function serve(args: string[], io: CliIO, signal: AbortSignal): Promise<number> {
  const f = parse(args, ['vpcd', 'image', 'uid', 'profile', 'latency'], ['no-quickack', 'verbose']);
  const lat = f.values.latency;
  if (lat !== undefined && !['106', '212', '424', '848'].includes(lat)) throw new UsageError(`--latency must be 106, 212, 424 or 848 (kbit/s), got '${lat}'`);
  const path = resolve(io.cwd, need(f, 'image'));
  let where;
  try {
    where = parseHostPort(f.values.vpcd ?? '127.0.0.1:35963');
  } catch (e) {
    throw new UsageError(`--vpcd: ${(e as Error).message}`);
  }
  const uid = f.values.uid !== undefined ? parseUid(f.values.uid) : undefined;
  const profile = parseProfile(f.values.profile);
  const verbose = f.bools.has('verbose');
  const onEvent = (e: CardServerEvent) => {
    switch (e.type) {
      case 'created':
        io.out(`created ${e.path} (factory-fresh card)`);
        break;
      case 'connected':
        io.out(`attached to vpcd at ${e.host}:${e.port} (TCP quick-ACK ${e.quickAck ? 'on' : 'off'})`);
        break;
      case 'disconnected':
        io.out(`detached from vpcd (${e.reason}); reconnecting`);
        break;
      case 'connect-failed':
        io.out(`waiting for vpcd at ${where.host}:${where.port} (${e.reason})`);
        break;
      case 'save-failed':
        io.err(`could not save ${path}: ${e.error.message}`);
        break;
      case 'error':
        io.err(e.error.message);
        break;
      case 'apdu':
        // Only the instruction and the status: never payload bytes.
        if (verbose) io.out(`apdu ${hx(e.command[1] ?? 0)} -> ${Buffer.from(e.response.subarray(-2)).toString('hex').toUpperCase()}`);
        break;
      case 'control':
        if (verbose) io.out(`control ${hx(e.code)}`);
        break;
      case 'saved':
        if (verbose) io.out(`saved ${e.path}`);
        break;
    }
  };
  const server = await CardServer.start({
    image: path,
    ...(uid ? { uid } : {}),
    ...(profile ? { profile } : {}),
    host: where.host,
    port: where.port,
    quickAck: !f.bools.has('no-quickack'),
    ...(lat !== undefined ? { latency: Number(lat) as Bitrate } : {}),
    onEvent,
  });
  io.out(`serving card ${Buffer.from(server.card.uid).toString('hex').toUpperCase()} (${server.card.profile}) from ${path}`);
  if (!signal.aborted) await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
  await server.stop();
  io.out('stopped; image saved');
  return 0;
}

export const command: Command = {
  async run(args: string[], io: CliIO): Promise<number> {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'create':
        return create(rest, io);
      case 'show':
        return show(rest, io);
      case 'list':
        return list(rest, io);
      case 'serve': {
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          return await serve(rest, io, ac.signal);
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      }
      case '--help':
      case '-h':
      case 'help':
        for (const l of USAGE) io.out(l);
        return 0;
      default:
        throw new UsageError(sub ? `unknown subcommand '${sub}' (expected: create, show, list, serve)` : 'missing subcommand (expected: create, show, list, serve)');
    }
  },
};

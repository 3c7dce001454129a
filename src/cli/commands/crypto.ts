// `desfire-cms crypto <op>`: the core's crypto for field engineers who debug keys. Hex in, hex out
// (upper case), one result per line; `--json` prints one object instead. Bad hex or a wrong length
// is a UsageError (exit 2) naming the argument.
import { ev1SessionKey, ev2SessionKeys, nonceLength } from '../../core/auth/sessionkeys.js';
import { HexError, fromHex, toHex } from '../../core/crypto/bytes.js';
import { type KeyType, keyLength } from '../../core/crypto/cipher.js';
import { cmac } from '../../core/crypto/cmac.js';
import { crc16A, crc32Desfire } from '../../core/crypto/crc.js';
import { type DiversifyAlg, diversify, maxDiversificationInput } from '../../core/crypto/an10922.js';
import { wipe } from '../../core/crypto/bytes.js';
import { type CliIO, type Command, UsageError } from '../io.js';

interface Op {
  usage: string;
  flags: readonly string[];
  run(v: Record<string, string>): [string, string][];
}

const CMAC_ALGS: readonly KeyType[] = ['aes', '2k3des', '3k3des', 'des'];
const DIV_ALGS: readonly DiversifyAlg[] = ['aes128', '2k3des', '3k3des'];
const EV1_ALGS: readonly KeyType[] = ['des', '2k3des', '3k3des', 'aes'];

function need(v: Record<string, string>, name: string): string {
  const s = v[name];
  if (s === undefined) throw new UsageError(`missing --${name}`);
  return s;
}

function hexArg(v: Record<string, string>, name: string, len?: { exact?: number; max?: number; what?: string }): Uint8Array {
  const raw = need(v, name).replace(/^0x/i, '');
  let b: Uint8Array;
  try {
    b = fromHex(raw);
  } catch (e) {
    if (e instanceof HexError) throw new UsageError(`--${name}: ${e.message}`);
    throw e;
  }
  if (len?.exact !== undefined && b.length !== len.exact) throw new UsageError(`--${name}: ${len.what ?? 'value'} must be ${len.exact} bytes, got ${b.length}`);
  if (len?.max !== undefined && b.length > len.max) throw new UsageError(`--${name}: ${len.what ?? 'value'} must be at most ${len.max} bytes, got ${b.length}`);
  return b;
}

function choice<T extends string>(v: Record<string, string>, name: string, allowed: readonly T[]): T {
  const s = need(v, name).toLowerCase();
  if (!(allowed as readonly string[]).includes(s)) throw new UsageError(`--${name}: must be one of ${allowed.join('|')}, got '${v[name]}'`);
  return s as T;
}

const OPS: Record<string, Op> = {
  cmac: {
    usage: 'crypto cmac --alg aes|2k3des|3k3des|des --key HEX --data HEX',
    flags: ['alg', 'key', 'data'],
    run(v) {
      const alg = choice(v, 'alg', CMAC_ALGS);
      const key = hexArg(v, 'key', { exact: keyLength(alg), what: `${alg} key` });
      const data = hexArg(v, 'data');
      const m = cmac(alg, key, data);
      wipe(key);
      return [['cmac', toHex(m)]];
    },
  },
  diversify: {
    usage: 'crypto diversify --alg aes128|2k3des|3k3des --key HEX --input HEX   (NXP AN10922; DES kinds: raw, parity bits as computed)',
    flags: ['alg', 'key', 'input'],
    run(v) {
      const alg = choice(v, 'alg', DIV_ALGS);
      const kl = alg === '3k3des' ? 24 : 16;
      const key = hexArg(v, 'key', { exact: kl, what: `${alg} master key` });
      const input = hexArg(v, 'input', { max: maxDiversificationInput(alg), what: 'diversification input' });
      const out = diversify(alg, key, input);
      wipe(key);
      return [['key', toHex(out)]];
    },
  },
  'ev1-session-key': {
    usage: 'crypto ev1-session-key --alg des|2k3des|3k3des|aes --rnd-a HEX --rnd-b HEX',
    flags: ['alg', 'rnd-a', 'rnd-b'],
    run(v) {
      const alg = choice(v, 'alg', EV1_ALGS);
      const n = nonceLength(alg);
      const a = hexArg(v, 'rnd-a', { exact: n, what: `${alg} RndA` });
      const b = hexArg(v, 'rnd-b', { exact: n, what: `${alg} RndB` });
      return [['sessionKey', toHex(ev1SessionKey(alg, a, b))]];
    },
  },
  'ev2-session-keys': {
    usage: 'crypto ev2-session-keys --key HEX --rnd-a HEX --rnd-b HEX   (prints SesAuthENCKey, then SesAuthMACKey)',
    flags: ['key', 'rnd-a', 'rnd-b'],
    run(v) {
      const key = hexArg(v, 'key', { exact: 16, what: 'AES key' });
      const a = hexArg(v, 'rnd-a', { exact: 16, what: 'RndA' });
      const b = hexArg(v, 'rnd-b', { exact: 16, what: 'RndB' });
      const k = ev2SessionKeys(key, a, b);
      wipe(key);
      return [
        ['encKey', toHex(k.enc)],
        ['macKey', toHex(k.mac)],
      ];
    },
  },
  crc32: {
    usage: 'crypto crc32 --data HEX   (DESFire CRC32, the 4 bytes as sent, little-endian)',
    flags: ['data'],
    run: (v) => [['crc32', toHex(crc32Desfire(hexArg(v, 'data')))]],
  },
  crc16: {
    usage: 'crypto crc16 --data HEX   (ISO 14443-3 CRC_A, the 2 bytes as sent, little-endian)',
    flags: ['data'],
    run: (v) => [['crc16', toHex(crc16A(hexArg(v, 'data')))]],
  },
};

/** `--name value` / `--name=value`; values may be empty (an empty message). */
function parse(args: string[], flags: readonly string[]): { values: Record<string, string>; json: boolean } {
  const values: Record<string, string> = {};
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') {
      json = true;
      continue;
    }
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (!flags.includes(name)) throw new UsageError(`unknown option --${name}`);
    const v = eq >= 0 ? a.slice(eq + 1) : args[++i];
    if (v === undefined) throw new UsageError(`--${name} needs a value`);
    if (name in values) throw new UsageError(`--${name} given twice`);
    values[name] = v;
  }
  return { values, json };
}

function usage(io: CliIO): void {
  io.out('usage: desfire-cms <op> [options] [--json]');
  for (const op of Object.values(OPS)) io.out(`  desfire-cms ${op.usage}`);
}

export const command: Command = {
  async run(args: string[], io: CliIO): Promise<number> {
    const [name, ...rest] = args;
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      usage(io);
      return name === undefined ? 2 : 0;
    }
    const op = OPS[name];
    if (!op) throw new UsageError(`unknown operation '${name}' (expected: ${Object.keys(OPS).join(', ')})`);
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(`usage: desfire-cms ${op.usage} [--json]`);
      return 0;
    }
    const { values, json } = parse(rest, op.flags);
    const results = op.run(values);
    if (json) io.out(JSON.stringify(Object.fromEntries(results)));
    else for (const [, v] of results) io.out(v);
    return 0;
  },
};

// Logging for the CMS: pino JSON lines with a redaction layer in three parts.
//  1. `redact` paths: headers and fields that carry credentials are replaced by [REDACTED].
//  2. A serializer pass (formatters.log + err serializer) that turns any Buffer/Uint8Array into
//     its length only and masks key-shaped strings inside objects and errors.
//  3. A last line of defence on the output stream: every line is scanned and anything that looks
//     like key material — 32, 48 or 64 hex digits (16/24/32-byte keys) standing alone, or an
//     operator token (dcms_…) — is masked before it reaches the destination. This also covers
//     the message string, bindings and error stacks that the first two layers do not see.
import { Writable } from 'node:stream';
import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/** Hex runs of exactly 16, 24 or 32 bytes (optionally 0x-prefixed), not part of a longer hex run. */
const HEX_KEY = /(?<![0-9A-Fa-f])(?:0x)?(?:[0-9A-Fa-f]{64}|[0-9A-Fa-f]{48}|[0-9A-Fa-f]{32})(?![0-9A-Fa-f])/g;
/** Hex with separators (aa:bb:… or "aa bb …") of 16/24/32 bytes. */
const HEX_KEY_SEP = /(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[:\- ]){15}[0-9A-Fa-f]{2}(?:(?:[:\- ][0-9A-Fa-f]{2}){8}){0,2}(?![0-9A-Fa-f])/g;
/** Operator API tokens. */
const API_TOKEN = /dcms_[A-Za-z0-9_-]{20,}/g;

export const MASK = '[REDACTED]';

/** Mask anything key-shaped in a string. */
export function maskSecrets(s: string): string {
  return s.replace(API_TOKEN, MASK).replace(HEX_KEY_SEP, MASK).replace(HEX_KEY, MASK);
}

/** Paths redacted by pino (fast-redact syntax). */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-token"]',
  'headers.authorization',
  '*.token',
  '*.key',
  '*.keys',
  '*.passphrase',
  '*.password',
  '*.pin',
  '*.secret',
  '*.plaintext',
  'token',
  'key',
  'passphrase',
  'password',
  'pin',
  'secret',
  'plaintext',
];

/** Mask key-shaped strings and byte arrays anywhere in a value (for logs and error details). */
export function scrub(v: unknown, depth = 0): unknown {
  if (depth > 8) return '[depth]';
  if (typeof v === 'string') return maskSecrets(v);
  if (v instanceof Uint8Array) return `[${v.length} bytes]`;
  if (Array.isArray(v)) return v.map((x) => scrub(x, depth + 1));
  if (v instanceof Error) return errSerializer(v);
  if (v && typeof v === 'object') {
    // Only plain objects are walked; other instances (requests, replies) go to their serializers,
    // and the output stream masks whatever they print.
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = scrub(x, depth + 1);
    return out;
  }
  return v;
}

/** Errors: type, code, message and stack, all masked; never the `cause`'s data fields. */
export function errSerializer(e: unknown): unknown {
  if (!(e instanceof Error)) return scrub(e);
  const o: Record<string, unknown> = { type: e.name, message: maskSecrets(e.message) };
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') o.code = code;
  const status = (e as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number') o.statusCode = status;
  if (e.stack) o.stack = maskSecrets(e.stack);
  return o;
}

/** A stream that masks every line before handing it on. */
export function maskingStream(dest: DestinationStream | NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      const line = maskSecrets(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
      try {
        (dest as NodeJS.WritableStream).write(line);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
}

export interface LoggerSettings {
  level: string;
  /** Where lines go (default stdout); everything passes the masking stream first. */
  destination?: DestinationStream | NodeJS.WritableStream;
  base?: Record<string, unknown>;
}

export function createLogger(s: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level: s.level,
    base: s.base ?? { service: 'desfire-cms' },
    redact: { paths: REDACT_PATHS, censor: MASK },
    serializers: { err: errSerializer, error: errSerializer },
    formatters: { log: (o) => scrub(o) as Record<string, unknown> },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? maskSecrets(a) : a)) as Parameters<typeof method>);
      },
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return pino(options, maskingStream(s.destination ?? process.stdout));
}

// A minimal POSIX ustar writer/reader (regular files and directories only) for backup archives,
// gzip-compressed by the caller. Enough for `tar tzf backup.tar.gz` to list and extract them too.
// The reader refuses anything it did not write: other entry types, absolute paths, '..', bad
// checksums, truncated data.

export interface TarEntry {
  name: string;
  data: Buffer;
  mode?: number;
  mtime?: number;
}

export class TarError extends Error {
  readonly code = 'ERR_BACKUP_ARCHIVE';
  constructor(message: string) {
    super(message);
    this.name = 'TarError';
  }
}

const BLOCK = 512;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, size: number, mode: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  let prefix = '';
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new TarError(`path too long for ustar: ${name.slice(0, 80)}…`);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  h.write(base, 0, 100, 'utf8');
  h.write(octal(mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(Math.floor(mtime / 1000), 12), 136, 'ascii');
  h.fill(0x20, 148, 156);
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

export function tarPack(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e.name, e.data.length, e.mode ?? 0o600, e.mtime ?? Date.now()));
    parts.push(e.data);
    const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

function cstr(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const z = s.indexOf(0);
  return s.subarray(0, z < 0 ? len : z).toString('utf8');
}

export function safeName(name: string): boolean {
  return name.length > 0 && !name.startsWith('/') && !name.split('/').some((p) => p === '..' || p === '') && /^[A-Za-z0-9._/-]+$/.test(name);
}

export function tarUnpack(buf: Buffer): TarEntry[] {
  const out: TarEntry[] = [];
  let off = 0;
  while (off + BLOCK <= buf.length) {
    const h = buf.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) return out;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    const stored = Number.parseInt(cstr(h, 148, 8).trim(), 8);
    if (stored !== sum) throw new TarError(`bad header checksum at offset ${off}`);
    if (cstr(h, 257, 6) !== 'ustar') throw new TarError('not a ustar archive');
    const type = String.fromCharCode(h[156]!);
    const prefix = cstr(h, 345, 155);
    const name = (prefix ? prefix + '/' : '') + cstr(h, 0, 100);
    const size = Number.parseInt(cstr(h, 124, 12).trim(), 8);
    const mode = Number.parseInt(cstr(h, 100, 8).trim(), 8);
    if (type !== '0' && type !== '\0') throw new TarError(`entry ${name.slice(0, 80)}: only regular files are allowed`);
    if (!safeName(name)) throw new TarError(`entry name refused: ${name.slice(0, 80)}`);
    if (!Number.isSafeInteger(size) || size < 0) throw new TarError(`entry ${name}: bad size`);
    off += BLOCK;
    if (off + size > buf.length) throw new TarError(`entry ${name}: truncated`);
    out.push({ name, data: Buffer.from(buf.subarray(off, off + size)), mode });
    off += Math.ceil(size / BLOCK) * BLOCK;
  }
  throw new TarError('archive truncated (no end marker)');
}

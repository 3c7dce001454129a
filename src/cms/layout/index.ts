// Application layouts: schema, parser, isolation linter, mapping to DESFire parameters.
import { readFile } from 'node:fs/promises';
import { LayoutError } from './errors.js';
import { MAX_LAYOUT_BYTES, parseLayout } from './parse.js';
import type { Layout } from './types.js';

export * from './schema.js';
export * from './types.js';
export * from './errors.js';
export { parseLayout, MAX_LAYOUT_BYTES, escapePointer } from './parse.js';
export * from './lint.js';
export * from './desfire.js';

/** Read and parse a layout file. Unreadable → LayoutError ERR_LAYOUT_UNREADABLE. */
export async function loadLayoutFile(path: string): Promise<Layout> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'EIO';
    throw new LayoutError('ERR_LAYOUT_UNREADABLE', [{ pointer: '', message: `cannot read file (${code})` }], path);
  }
  if (buf.length > MAX_LAYOUT_BYTES)
    throw new LayoutError('ERR_LAYOUT_TOO_LARGE', [{ pointer: '', message: `layout larger than ${MAX_LAYOUT_BYTES} bytes` }], path);
  return parseLayout(buf.toString('utf8'), path);
}

// Atomic image files. saveImageAtomic writes the JSON to a temporary file in the same directory,
// fsyncs it, renames it over the target (rename is atomic on POSIX file systems) and fsyncs the
// directory, so a crash at any point leaves either the old image or the new one, never a torn file.
// Images are secret-bearing (see image.ts): files are created with mode 0600.
import { constants as fsc } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as fss from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { type CardImage, CardImageError, decodeImage, encodeImage } from './image.js';

/** The file operations saveImageAtomic uses; tests inject failing ones to simulate a crash. */
export interface ImageFs {
  open: typeof fsp.open;
  rename: typeof fsp.rename;
  unlink: typeof fsp.unlink;
}

const NODE_FS: ImageFs = { open: fsp.open, rename: fsp.rename, unlink: fsp.unlink };

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

function serialise(image: CardImage): string {
  // Round-trip through the strict decoder: never write an image this build could not load.
  encodeImage(decodeImage(image));
  return JSON.stringify(image, null, 2) + '\n';
}

export async function saveImageAtomic(path: string, image: CardImage, fs: ImageFs = NODE_FS): Promise<void> {
  const text = serialise(image);
  const tmp = tempName(path);
  let renamed = false;
  try {
    const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path);
    renamed = true;
    try {
      const dh = await fs.open(dirname(path), fsc.O_RDONLY);
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch {
      // Some file systems refuse fsync on a directory; the rename itself is still atomic.
    }
  } finally {
    if (!renamed) await fs.unlink(tmp).catch(() => undefined);
  }
}

/** Synchronous variant (for exit handlers). Same guarantees. */
export function saveImageAtomicSync(path: string, image: CardImage): void {
  const text = serialise(image);
  const tmp = tempName(path);
  let renamed = false;
  try {
    const fd = fss.openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    try {
      fss.writeFileSync(fd, text, 'utf8');
      fss.fsyncSync(fd);
    } finally {
      fss.closeSync(fd);
    }
    fss.renameSync(tmp, path);
    renamed = true;
    try {
      const dfd = fss.openSync(dirname(path), fsc.O_RDONLY);
      try {
        fss.fsyncSync(dfd);
      } finally {
        fss.closeSync(dfd);
      }
    } catch {
      // see saveImageAtomic
    }
  } finally {
    if (!renamed) fss.rmSync(tmp, { force: true });
  }
}

function parse(text: string, path: string): CardImage {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CardImageError(`${path}: not JSON`);
  }
  // Validate strictly, then hand back the canonical form.
  return encodeImage(decodeImage(json));
}

/** Load and validate an image (CardImageError when invalid; fs errors such as ENOENT pass through). */
export async function loadImage(path: string): Promise<CardImage> {
  return parse(await fsp.readFile(path, 'utf8'), path);
}

export function loadImageSync(path: string): CardImage {
  return parse(fss.readFileSync(path, 'utf8'), path);
}

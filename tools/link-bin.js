// Links this package's own binary into node_modules/.bin, so that `npx desfire-cms …` run inside
// the repository finds it locally. Without the link npm exec copies the whole project into its
// cache and builds it again on every call. Run by the `prepare` script after the build.
import { existsSync, lstatSync, mkdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binDir = join(root, 'node_modules', '.bin');
const link = join(binDir, 'desfire-cms');
const target = join(root, 'bin', 'desfire-cms.js');

if (existsSync(join(root, 'node_modules'))) {
  mkdirSync(binDir, { recursive: true });
  try {
    if (lstatSync(link)) unlinkSync(link);
  } catch {
    // no previous link
  }
  symlinkSync(relative(binDir, target), link);
}

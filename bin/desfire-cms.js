#!/usr/bin/env node
// The one binary. The TypeScript sources are compiled to dist/ by `npm ci` (prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('desfire-cms: dist/ is missing; run `npm ci` (or `npm run build`) first\n');
  process.exit(70);
}
// A closed pipe (`desfire-cms help | head`) is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));

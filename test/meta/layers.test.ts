// The layer rule itself: a violation in each direction is reported, allowed imports are not.
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

async function lint(file: string, code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: process.cwd() });
  const [res] = await eslint.lintText(code, { filePath: file });
  return (res?.messages ?? []).filter((m) => m.ruleId === 'desfire/layers').map((m) => m.message);
}

describe('layer boundaries (tools/eslint/layers.js)', () => {
  it('keeps src/core pure', async () => {
    expect(await lint('src/core/x.ts', "import { readFileSync } from 'node:fs';\nexport const a = readFileSync;\n")).toHaveLength(1);
    expect(await lint('src/core/x.ts', "import { createHash } from 'node:crypto';\nexport const a = createHash;\n")).toHaveLength(0);
    expect(await lint('src/core/x.ts', "import { a } from '../cms/y.js';\nexport const b = a;\n")).toHaveLength(1);
    expect(await lint('src/core/x.ts', "import { Kysely } from 'kysely';\nexport const b = Kysely;\n")).toHaveLength(1);
  });
  it('enforces the layer matrix', async () => {
    expect(await lint('src/card/x.ts', "import { a } from '../core/y.js';\nexport const b = a;\n")).toHaveLength(0);
    expect(await lint('src/card/x.ts', "import { a } from '../transport/y.js';\nexport const b = a;\n")).toHaveLength(1);
    expect(await lint('src/custody/x.ts', "import { a } from '../cms/y.js';\nexport const b = a;\n")).toHaveLength(1);
    expect(await lint('src/reader/x.ts', "import { a } from '../cms/y.js';\nexport const b = a;\n")).toHaveLength(1);
    expect(await lint('src/cli/x.ts', "import { a } from '../cms/y.js';\nexport const b = a;\n")).toHaveLength(0);
  });
  it('allows native drivers only through a lazy import', async () => {
    expect(await lint('src/cms/x.ts', "import pg from 'pg';\nexport const a = pg;\n")).toHaveLength(1);
    expect(await lint('src/cms/x.ts', "import type { Pool } from 'pg';\nexport type A = Pool;\n")).toHaveLength(0);
    expect(await lint('src/cms/x.ts', "export const load = () => import('pg');\n")).toHaveLength(0);
  });
});

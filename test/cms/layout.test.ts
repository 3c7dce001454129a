import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LayoutError, loadLayoutFile, parseLayout, publishedSchema } from '../../src/cms/layout/index.js';

const CAMPUS = new URL('../../examples/campus.yaml', import.meta.url).pathname;
const FIX = new URL('./layout-fixtures/', import.meta.url).pathname;

function parseError(text: string): LayoutError {
  try {
    parseLayout(text, 't.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(LayoutError);
    return e as LayoutError;
  }
  throw new Error('expected a LayoutError');
}

const MINIMAL = `version: 1
name: m
tenants:
  - id: t
    name: T
    applications:
      - aid: "F00001"
        name: a
        keys:
          - { no: 0, role: amk }
          - { no: 1, role: read }
        files:
          - { no: 3, type: std, size: 8, access: { read: read } }
`;

describe('layout parser', () => {
  it('reads the campus example with its defaults applied', async () => {
    const l = await loadLayoutFile(CAMPUS);
    expect(l.tenants.map((t) => t.id)).toEqual(['access', 'cafeteria', 'library', 'transit']);
    const purse = l.tenants[1]!.applications[0]!;
    expect(purse.aid).toBe('CAFE01');
    expect(purse.keyType).toBe('aes');
    expect(purse.keyCount).toBe(3);
    expect(purse.keySettings.changeKey).toEqual({ kind: 'amk' });
    expect(purse.keys[1]!.derivation).toEqual({
      method: 'diversified',
      master: 'cafeteria/CAFE01/1',
      masterDeclared: false,
      input: ['uid', 'aid', 'system'],
    });
    expect(purse.files[0]).toMatchObject({ type: 'value', lower: 0, upper: 50000, value: 0, comm: 'full' });
    expect(l.tenants[3]!.applications[0]!.keys[1]!.derivation).toEqual({ method: 'random' });
    expect(l.picc.randomUid).toBe(true);
  });

  it('reads JSON with the same result, and positions for it', () => {
    const y = parseLayout(MINIMAL);
    const j = parseLayout(
      JSON.stringify(
        { version: 1, name: 'm', tenants: [{ id: 't', name: 'T', applications: [{ aid: 'F00001', name: 'a',
          keys: [{ no: 0, role: 'amk' }, { no: 1, role: 'read' }], files: [{ no: 3, type: 'std', size: 8, access: { read: 'read' } }] }] }] },
        null,
        1,
      ),
    );
    const strip = (l: typeof y) => JSON.parse(JSON.stringify(l.tenants, (k, v) => (k === 'pos' ? undefined : v)));
    expect(strip(j)).toEqual(strip(y));
    expect(j.locate('/tenants/0/applications/0/aid').line).toBeGreaterThan(1);
  });

  it('defaults: absent rights are never, comm full, key 0 amk', () => {
    const f = parseLayout(MINIMAL).tenants[0]!.applications[0]!.files[0]!;
    expect(f.access).toEqual({ read: { kind: 'role', role: 'read' }, write: { kind: 'never' }, readWrite: { kind: 'never' }, change: { kind: 'never' } });
    expect(f.comm).toBe('full');
  });

  it('a YAML syntax error is ERR_LAYOUT_SYNTAX with line and column', () => {
    const e = parseError(readFileSync(FIX + 'invalid-syntax.yaml', 'utf8'));
    expect(e.code).toBe('ERR_LAYOUT_SYNTAX');
    expect(e.issues[0]!.line).toBeGreaterThanOrEqual(5);
  });

  it('duplicate YAML keys are a syntax error', () => {
    const e = parseError(MINIMAL.replace('name: m\n', 'name: m\nname: n\n'));
    expect(e.code).toBe('ERR_LAYOUT_SYNTAX');
  });

  it('schema errors name the JSON pointer and the line/column of the offending value', () => {
    const e = parseError(MINIMAL.replace('"F00001"', '"F0001"').replace('role: read }', 'role: boss }'));
    expect(e.code).toBe('ERR_LAYOUT_SCHEMA');
    const aid = e.issues.find((i) => i.pointer === '/tenants/0/applications/0/aid');
    expect(aid).toMatchObject({ line: 7, col: 14 });
    const role = e.issues.find((i) => i.pointer === '/tenants/0/applications/0/keys/1/role');
    expect(role?.message).toMatch(/must be one of: amk, read/);
    expect(role?.line).toBe(11);
    expect(e.message).toMatch(/^t\.yaml:7:14 /);
  });

  it('unknown properties and wrong file shapes are refused with a precise message', () => {
    const e = parseError(MINIMAL.replace('{ no: 3, type: std, size: 8,', '{ no: 3, type: value, size: 8, colour: red,'));
    const msgs = e.issues.map((i) => `${i.pointer} ${i.message}`);
    expect(msgs).toContain("/tenants/0/applications/0/files/0/lower missing required property 'lower'");
    expect(msgs).toContain("/tenants/0/applications/0/files/0/colour unknown property 'colour'");
  });

  it('an unknown role reference is ERR_LAYOUT_INVALID at the access right', () => {
    const e = parseError(readFileSync(FIX + 'invalid-unknown-role.yaml', 'utf8'));
    expect(e.code).toBe('ERR_LAYOUT_INVALID');
    expect(e.issues[0]).toMatchObject({ pointer: '/tenants/1/applications/0/files/0/access/read', line: 37 });
  });

  it.each([
    ['duplicate AID', (s: string) => s + MINIMAL.split('tenants:\n')[1]!.replace('id: t', 'id: u'), /AID F00001 is already declared/],
    ['duplicate tenant', (s: string) => s + MINIMAL.split('tenants:\n')[1]!.replace('F00001', 'F00002'), /duplicate tenant id/],
    ['key 0 not amk', (s: string) => s.replace('{ no: 0, role: amk }', '{ no: 0, role: write }'), /key 0 is the application master key/],
    ['missing key number', (s: string) => s.replace('{ no: 1, role: read }', '{ no: 2, role: read }'), /key 1 is not declared/],
    ['role held twice', (s: string) => s.replace('{ no: 1, role: read }', '{ no: 1, role: read }\n          - { no: 2, role: read }'), /one key per role/],
    ['duplicate file', (s: string) => s.replace(/( {10}- \{ no: 3.*\n)/, '$1$1'), /duplicate file number 3/],
    ['value outside limits', (s: string) => s.replace('type: std, size: 8', 'type: value, lower: 10, upper: 5'), /lower limit 10 is above/],
    ['AID 000000', (s: string) => s.replace('F00001', '000000'), /PICC level/],
    ['unknown changeKey', (s: string) => s.replace('        keys:', '        keySettings: { changeKey: boss }\n        keys:'), /changeKey 'boss'/],
    ['keyCount too small', (s: string) => s.replace('        keys:', '        keyCount: 1\n        keys:'), /keyCount 1 but key 1/],
  ])('semantic error: %s', (_name, edit, re) => {
    const e = parseError(edit(MINIMAL));
    expect(e.code).toBe('ERR_LAYOUT_INVALID');
    expect(e.issues.map((i) => i.message).join('\n')).toMatch(re);
    expect(e.issues.every((i) => i.pointer.startsWith('/'))).toBe(true);
  });

  it('refuses oversized input and alias bombs without hanging', () => {
    expect(parseError('x'.repeat((1 << 20) + 1)).code).toBe('ERR_LAYOUT_TOO_LARGE');
    const bomb = 'a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n';
    expect(parseError(bomb).code).toBe('ERR_LAYOUT_SYNTAX');
  });

  it('an unreadable file is ERR_LAYOUT_UNREADABLE', async () => {
    await expect(loadLayoutFile(FIX + 'does-not-exist.yaml')).rejects.toMatchObject({ code: 'ERR_LAYOUT_UNREADABLE' });
  });

  it('the published schemas/layout.schema.json is exactly the TypeBox schema', () => {
    const file = JSON.parse(readFileSync(new URL('../../schemas/layout.schema.json', import.meta.url), 'utf8'));
    expect(file).toEqual(publishedSchema());
  });

  it('property: any mutation of the example parses or fails with a LayoutError, never anything else', () => {
    const text = readFileSync(CAMPUS, 'utf8');
    fc.assert(
      fc.property(fc.nat(text.length - 1), fc.string({ minLength: 0, maxLength: 4 }), fc.nat(3), (at, ins, del) => {
        const mutated = text.slice(0, at) + ins + text.slice(at + del);
        try {
          parseLayout(mutated);
        } catch (e) {
          expect(e).toBeInstanceOf(LayoutError);
          for (const i of (e as LayoutError).issues) expect(typeof i.message).toBe('string');
        }
      }),
      { numRuns: 100 },
    );
  });

  it('property: arbitrary JSON values are refused with a LayoutError', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        expect(() => parseLayout(JSON.stringify(v) ?? 'null')).toThrow(LayoutError);
      }),
      { numRuns: 200 },
    );
  });
});

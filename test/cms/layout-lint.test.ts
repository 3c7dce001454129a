import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ALLOWED_RIGHTS, KEY_ROLES, RULES, lintLayout, parseLayout, type RuleId } from '../../src/cms/layout/index.js';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/io.js';

const FIX = new URL('./layout-fixtures/', import.meta.url).pathname;
const CAMPUS = new URL('../../examples/campus.yaml', import.meta.url).pathname;
const fixture = (f: string) => parseLayout(readFileSync(FIX + f, 'utf8'), f);

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const cli: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env: {}, cwd: process.cwd() };
  return { cli, out, err };
}

describe('isolation linter', () => {
  it('the campus example and the clean fixture lint clean', async () => {
    expect(lintLayout(parseLayout(readFileSync(CAMPUS, 'utf8')))).toEqual([]);
    expect(lintLayout(fixture('clean.yaml'))).toEqual([]);
  });

  const ruleFixtures = readdirSync(FIX).filter((f) => /^ISO\d{3}-/.test(f));
  it('there is a fixture for every rule', () => {
    const covered = new Set(ruleFixtures.map((f) => f.slice(0, 6)));
    expect([...covered].sort()).toEqual(Object.keys(RULES).sort());
  });

  it.each(ruleFixtures)('%s breaks exactly its rule, with a position', (f) => {
    const findings = lintLayout(fixture(f));
    expect(findings).toHaveLength(1);
    const [x] = findings;
    expect(x!.rule).toBe(f.slice(0, 6));
    expect(x!.severity).toBe(RULES[x!.rule as RuleId].severity);
    expect(x!.pointer).toMatch(/^\/(tenants|picc)\//);
    expect(x!.line).toBeGreaterThan(0);
    expect(x!.col).toBeGreaterThan(0);
    // the line the finding names is the line of the change
    const line = readFileSync(FIX + f, 'utf8').split('\n')[x!.line! - 1]!;
    const clean = readFileSync(FIX + 'clean.yaml', 'utf8').split('\n');
    if (f !== 'ISO009-unused-key.yaml') expect(clean).not.toContain(line);
  });

  const base = readFileSync(FIX + 'clean.yaml', 'utf8');
  it.each([
    ['changeKey self without declaration', base.replace('changeKey: amk, freeCreateDelete: false', 'changeKey: self'), 'ISO004'],
    ['value file: read role may not hold read (it would Debit)', base.replace('- { no: 2, role: write }', '- { no: 2, role: write }\n          - { no: 3, role: debit }').replace(/type: std\n {12}size: 32/, 'type: value\n            lower: 0\n            upper: 10').replace('access: { read: read, write: write, readWrite: never, change: amk }', 'access: { read: read, write: debit, readWrite: never, change: amk }'), 'ISO003'],
    ['amk holding read', base.replace('access: { read: read, change: amk }', 'access: { read: amk, change: amk }'), 'ISO003'],
    ['static key declared twice', base.replace('- { no: 1, role: read }', '- { no: 1, role: read, derivation: { method: static, keyRef: k } }').replace(/(- no: 1\n {12}type: linear)/, '$1').replace(/(entry\n {8}keys:\n {10}- \{ no: 0, role: amk \}\n {10}- \{ no: 1, role: read) \}/, '$1, derivation: { method: static, keyRef: k } }'), 'ISO002'],
  ])('%s', (_n, text, rule) => {
    const rules = lintLayout(parseLayout(text)).map((f) => f.rule);
    expect(rules).toContain(rule);
  });

  it('changeKey self passes when declared, delegation to a change role passes', () => {
    const self = base.replace('changeKey: amk, freeCreateDelete: false', 'changeKey: self, allowSelfChange: true');
    expect(lintLayout(parseLayout(self))).toEqual([]);
    const del = base
      .replace('changeKey: amk, freeCreateDelete: false', 'changeKey: change')
      .replace('- { no: 2, role: write }', '- { no: 2, role: write }\n          - { no: 3, role: change }');
    expect(lintLayout(parseLayout(del))).toEqual([]);
  });

  it('property: a role holding a right is flagged ISO003 exactly when the right is beyond its purpose', () => {
    const rights = ['read', 'write', 'readWrite', 'change'] as const;
    fc.assert(
      fc.property(
        fc.constantFrom(...KEY_ROLES.filter((r) => r !== 'amk')),
        fc.constantFrom(...rights),
        fc.constantFrom('std', 'backup', 'value', 'linear', 'cyclic'),
        (role, right, type) => {
          const shape =
            type === 'value' ? 'lower: 0, upper: 9' : type === 'std' || type === 'backup' ? 'size: 8' : 'recordSize: 4, maxRecords: 3';
          const text = `version: 1
name: p
tenants:
  - id: t
    name: T
    applications:
      - aid: "010203"
        name: a
        keys: [{ no: 0, role: amk }, { no: 1, role: ${role} }]
        files: [{ no: 0, type: ${type}, ${shape}, access: { ${right}: ${role} } }]
`;
          const iso3 = lintLayout(parseLayout(text)).filter((f) => f.rule === 'ISO003');
          const cls = type === 'value' ? 'value' : 'data';
          expect(iso3.length === 0).toBe(ALLOWED_RIGHTS[role][cls].includes(right));
        },
      ),
      { numRuns: 120 },
    );
  });
});

describe('desfire-cms layout lint', () => {
  it('exit 0 and "clean" for the example', async () => {
    const { cli, out } = io();
    expect(await main(['layout', 'lint', CAMPUS], cli)).toBe(0);
    expect(out.join('\n')).toMatch(/clean/);
  });

  it('exit 1 on findings, one line per finding with file:line:col pointer rule', async () => {
    const { cli, out } = io();
    expect(await main(['layout', 'lint', FIX + 'clean.yaml', FIX + 'ISO003-read-role-writes.yaml'], cli)).toBe(1);
    expect(out.some((l) => /ISO003-read-role-writes\.yaml:22:60 \/tenants\/0\/applications\/0\/files\/0\/access\/readWrite: error ISO003: /.test(l))).toBe(true);
  });

  it('exit 2 on invalid or unreadable input (also when other files have findings)', async () => {
    const a = io();
    expect(await main(['layout', 'lint', FIX + 'invalid-syntax.yaml'], a.cli)).toBe(2);
    expect(a.err.join('\n')).toMatch(/ERR_LAYOUT_SYNTAX/);
    const b = io();
    expect(await main(['layout', 'lint', FIX + 'ISO007-picc-free-create-delete.yaml', FIX + 'nope.yaml'], b.cli)).toBe(2);
    const c = io();
    expect(await main(['layout', 'lint'], c.cli)).toBe(2);
    expect(await main(['layout', 'lint', '--bogus', CAMPUS], c.cli)).toBe(2);
  });

  it('--json gives machine-readable findings', async () => {
    const { cli, out } = io();
    expect(await main(['layout', 'lint', '--json', FIX + 'ISO005-free-read-not-public.yaml', FIX + 'invalid-unknown-role.yaml'], cli)).toBe(2);
    const j = JSON.parse(out.join('\n'));
    expect(j.files[0]).toMatchObject({ status: 'findings', findings: [{ rule: 'ISO005', severity: 'error', line: 42 }] });
    expect(j.files[1]).toMatchObject({ status: 'invalid', error: { code: 'ERR_LAYOUT_INVALID' } });
  });

  it('schema and plan subcommands', async () => {
    const a = io();
    expect(await main(['layout', 'schema'], a.cli)).toBe(0);
    expect(JSON.parse(a.out.join('\n')).title).toBe('desfire-cms application layout');
    const b = io();
    expect(await main(['layout', 'plan', CAMPUS], b.cli)).toBe(0);
    const plan = JSON.parse(b.out.join('\n'));
    expect(plan.applications[0].createApplicationData).toBe('01C0A10983');
  });
});

describe("the 'uid-read' key (random-UID cards)", () => {
  const base = readFileSync(FIX + 'clean.yaml', 'utf8');
  const withUidRead = (decl: string, text = base) => text.replace('          - { no: 2, role: write }\n', `          - { no: 2, role: write }\n          - { no: 3, role: uid-read${decl} }\n`);
  const findings = (text: string) => lintLayout(parseLayout(text)).map((f) => `${f.rule} ${f.pointer}`);

  it('by default one key per AID (diversified over aid and system from its own master), holding no right: lints clean', () => {
    const layout = parseLayout(withUidRead(''));
    const k = layout.tenants[0]!.applications[0]!.keys.find((x) => x.role === 'uid-read')!;
    expect(k.derivation).toEqual({ method: 'diversified', master: 'shop/5A0001/3', masterDeclared: false, input: ['aid', 'system'] });
    expect(lintLayout(layout)).toEqual([]);
    expect(ALLOWED_RIGHTS['uid-read']).toEqual({ data: [], value: [], tmac: [] });
  });

  it('random, over uid, without random UIDs, holding a file right, sharing a master, or static: refused', () => {
    const kp = '/tenants/0/applications/0/keys/3';
    expect(findings(withUidRead(', derivation: random'))).toEqual([`ISO010 ${kp}/derivation`]);
    expect(findings(withUidRead(', derivation: { method: diversified, input: [aid, uid] }'))).toEqual([`ISO010 ${kp}/derivation/input`]);
    expect(findings(withUidRead(', derivation: { method: diversified, input: [system] }'))).toEqual([`ISO001 ${kp}/derivation/input`]);
    expect(findings(withUidRead('', base.replace('randomUid: true', 'randomUid: false')))).toEqual([`ISO010 ${kp}`]);
    expect(findings(withUidRead(', derivation: { method: static, keyRef: uidread }'))).toEqual([`ISO001 ${kp}/derivation`]);
    // it may read nothing: GetCardUID is all it is for
    expect(findings(withUidRead('').replace('access: { read: read, write: write,', 'access: { read: uid-read, write: write,'))).toContain('ISO003 /tenants/0/applications/0/files/0/access/read');
    // distinct per AID: the same master for two AIDs' uid-read keys is ISO002
    const two = withUidRead(', derivation: { method: diversified, master: uidm }').replace('          - { no: 1, role: read }\n        files:\n          - no: 1\n            type: linear', '          - { no: 1, role: read }\n          - { no: 2, role: uid-read, derivation: { method: diversified, master: uidm } }\n        files:\n          - no: 1\n            type: linear');
    expect(findings(two)).toEqual(['ISO002 /tenants/1/applications/0/keys/2/derivation/master']);
    // and it may not be given the ChangeKey right
    expect(findings(withUidRead('').replace('changeKey: amk, freeCreateDelete: false', 'changeKey: uid-read, freeCreateDelete: false'))).toContain('ISO006 /tenants/0/applications/0/keySettings/changeKey');
  });
});

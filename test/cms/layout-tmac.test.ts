// The layout's 'tmac' file kind under the isolation linter: which roles may hold which right on a
// Transaction MAC file, the 'tmac' key holding nothing, free TMC read without 'public', free
// CommitReaderID flagged, a tmac key without its file reported unused; and the JSON Schema accepts it.
import { describe, expect, it } from 'vitest';
import { lintLayout, parseLayout } from '../../src/cms/layout/index.js';
import { publishedSchema } from '../../src/cms/layout/schema.js';

function layout(access: string, extraKeys = '', tmacFile = true): string {
  return `version: 1
name: tmac
tenants:
  - id: kiosk
    name: Kiosk
    applications:
      - aid: "7A0001"
        name: purse
        keys:
          - { no: 0, role: amk }
          - { no: 1, role: debit }
          - { no: 2, role: credit }
          - { no: 3, role: tmac }
${extraKeys}        files:
          - { no: 1, type: value, lower: 0, upper: 100, comm: full, access: { read: debit, readWrite: credit, change: amk } }
${tmacFile ? `          - { no: 2, type: tmac, comm: plain, access: ${access} }\n` : ''}`;
}

const rules = (text: string) => lintLayout(parseLayout(text, 't.yaml')).map((f) => `${f.rule}:${f.pointer}`);

describe('layout tmac files and the isolation linter', () => {
  it('a free TMC read, CommitReaderID for the debit role, change by the AMK: clean', () => {
    expect(rules(layout('{ read: free, readWrite: debit, change: amk }'))).toEqual([]);
    expect(rules(layout('{ read: credit, readWrite: credit, change: amk }'))).toEqual([]);
  });

  it('the tmac role holds no right; read-only roles may not CommitReaderID; free CommitReaderID needs public and is still flagged', () => {
    expect(rules(layout('{ read: tmac, change: amk }'))).toEqual(['ISO003:/tenants/0/applications/0/files/1/access/read']);
    expect(rules(layout('{ read: free, readWrite: read, change: amk }', '          - { no: 4, role: read }\n'))).toEqual([
      'ISO003:/tenants/0/applications/0/files/1/access/readWrite',
    ]);
    expect(rules(layout('{ read: free, readWrite: free, change: amk }'))).toEqual(['ISO005:/tenants/0/applications/0/files/1/access/readWrite']);
  });

  it('a tmac key without a tmac file grants nothing (ISO009 warning)', () => {
    expect(rules(layout('', '', false))).toEqual(['ISO009:/tenants/0/applications/0/keys/3']);
  });

  it('the published JSON Schema lists the tmac file and role', () => {
    const s = JSON.stringify(publishedSchema());
    expect(s).toContain('"const":"tmac"');
    expect(s).toContain('Transaction MAC file');
  });
});

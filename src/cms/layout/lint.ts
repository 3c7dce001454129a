// The isolation linter: pure rules over a validated Layout. Each rule has a stable id; a finding
// names the rule, its severity, a message and the place in the file (JSON pointer + line/col).
import type { KeyRole } from './schema.js';
import {
  RIGHT_NAMES,
  type FileType,
  type Layout,
  type LayoutApplication,
  type LayoutFile,
  type LayoutKey,
  type RightName,
  type SourcePos,
} from './types.js';

export type Severity = 'error' | 'warning';

export interface Finding extends SourcePos {
  rule: RuleId;
  severity: Severity;
  message: string;
}

export const RULES = {
  ISO001: { severity: 'error', title: 'keys unique per card and AID (diversify over UID and AID, or random per card)' },
  ISO002: { severity: 'error', title: 'no key that opens two AIDs (no shared master or static key)' },
  ISO003: { severity: 'error', title: "least privilege: a role holds only the rights of its declared purpose" },
  ISO004: { severity: 'error', title: 'application key settings forbid arbitrary key changes and free create/delete' },
  ISO005: { severity: 'error', title: 'no free access unless the file is declared public' },
  ISO006: { severity: 'error', title: 'the ChangeKey right is held by the AMK unless delegated to a declared change role' },
  ISO007: { severity: 'error', title: 'PICC key settings forbid free create/delete' },
  ISO008: { severity: 'error', title: 'a public file is free to read, never free to modify' },
  ISO009: { severity: 'warning', title: 'a declared key that grants nothing (needless key material)' },
  ISO010: { severity: 'error', title: "a 'uid-read' key is one key per AID: diversified over aid, never over uid, and only with random-UID cards" },
} as const satisfies Record<string, { severity: Severity; title: string }>;

export type RuleId = keyof typeof RULES;

type FileClass = 'data' | 'value' | 'tmac';
const classOf = (t: FileType): FileClass => (t === 'value' ? 'value' : t === 'tmac' ? 'tmac' : 'data');

/**
 * What each declared purpose may hold. On value files DESFire couples operations to rights:
 * Read → GetValue, Debit; Write → GetValue, Debit, LimitedCredit; ReadWrite → all incl. Credit.
 * So a read/write role may hold nothing on a value file, a debit role only Read, and so on.
 * On a Transaction MAC file Read reads TMC/TMV and ReadWrite is CommitReaderID: roles that run
 * transactions may hold them. The 'tmac' role's key is only the source of the TMAC key: it holds
 * no right anywhere (and no reader should ever be given it).
 */
const TX_TMAC: readonly RightName[] = ['read', 'readWrite'];
export const ALLOWED_RIGHTS: Record<KeyRole, Record<FileClass, readonly RightName[]>> = {
  amk: { data: ['change'], value: ['change'], tmac: ['change'] },
  change: { data: ['change'], value: ['change'], tmac: ['change'] },
  read: { data: ['read'], value: [], tmac: ['read'] },
  write: { data: ['write'], value: [], tmac: TX_TMAC },
  readwrite: { data: ['read', 'write', 'readWrite'], value: [], tmac: TX_TMAC },
  debit: { data: [], value: ['read'], tmac: TX_TMAC },
  limitedcredit: { data: [], value: ['write'], tmac: TX_TMAC },
  credit: { data: [], value: ['readWrite'], tmac: TX_TMAC },
  tmac: { data: [], value: [], tmac: [] },
  // authenticates only to run GetCardUID on a random-UID card: no right on any file
  'uid-read': { data: [], value: [], tmac: [] },
};

const GRANTS: Record<FileClass, Record<RightName, string>> = {
  data: { read: 'read', write: 'write', readWrite: 'read and write (and clear records)', change: 'change the file settings' },
  value: {
    read: 'GetValue and Debit',
    write: 'GetValue, Debit and LimitedCredit',
    readWrite: 'GetValue, Debit, Credit and LimitedCredit',
    change: 'change the file settings',
  },
  tmac: {
    read: 'read the transaction MAC counter and value',
    write: 'nothing (the card refuses it)',
    readWrite: 'commit a reader ID into the transaction MAC',
    change: 'change the file settings',
  },
};

class Linter {
  readonly findings: Finding[] = [];
  constructor(private readonly layout: Layout) {}

  add(rule: RuleId, pointer: string, message: string): void {
    this.findings.push({ rule, severity: RULES[rule].severity, message, ...this.layout.locate(pointer) });
  }

  run(): Finding[] {
    this.picc();
    const masters = new Map<string, string>();
    const statics = new Map<string, string>();
    for (const [ti, t] of this.layout.tenants.entries()) {
      for (const [ai, app] of t.applications.entries()) {
        const ap = `/tenants/${ti}/applications/${ai}`;
        this.keys(app, ap, masters, statics);
        this.keySettings(app, ap);
        for (const [fi, f] of app.files.entries()) this.file(app, f, `${ap}/files/${fi}`);
        this.unused(app, ap);
      }
    }
    return this.findings.sort(
      (a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0) || a.rule.localeCompare(b.rule),
    );
  }

  picc(): void {
    if (this.layout.picc.keySettings.freeCreateDelete)
      this.add('ISO007', '/picc/keySettings/freeCreateDelete', 'PICC key settings allow creating and deleting applications without the card master key');
  }

  /** Source index of a key in the file (keys are sorted by number after parsing). */
  keyPointer(ap: string, app: LayoutApplication, no: number): string {
    const k = app.keys.find((x) => x.no === no);
    return k ? k.pos.pointer : `${ap}/keys`;
  }

  keys(app: LayoutApplication, ap: string, masters: Map<string, string>, statics: Map<string, string>): void {
    for (const k of app.keys) {
      const kp = this.keyPointer(ap, app, k.no);
      const who = `key ${k.no} (${k.role}) of AID ${app.aid}`;
      const d = k.derivation;
      if (k.role === 'uid-read') this.uidRead(who, kp, d);
      if (d.method === 'static') {
        this.add('ISO001', `${kp}/derivation`, `${who} is one static key for every card; use diversified or random`);
        const prev = statics.get(d.keyRef);
        if (prev) this.add('ISO002', `${kp}/derivation/keyRef`, `${who} uses static key '${d.keyRef}', already used by ${prev}`);
        else statics.set(d.keyRef, who);
      } else if (d.method === 'diversified') {
        const missing = (k.role === 'uid-read' ? (['aid'] as const) : (['uid', 'aid'] as const)).filter((i) => !d.input.includes(i));
        if (missing.length > 0)
          this.add('ISO001', `${kp}/derivation/input`, `${who}: diversification input lacks ${missing.join(' and ')}, so the key is not unique per card and AID`);
        const prev = masters.get(d.master);
        if (prev) {
          this.add('ISO002', d.masterDeclared ? `${kp}/derivation/master` : `${kp}/derivation`,
            `${who} is diversified from master '${d.master}', already the master of ${prev}: one master key per (AID, key number)`);
        } else masters.set(d.master, who);
      }
    }
  }

  /**
   * A 'uid-read' key authenticates a random-UID card before its real UID is known (to run
   * GetCardUID), so it cannot be per card: it is diversified per AID (input without uid), from a
   * master of its own (ISO002). It holds no file right (ISO003) and is needless without random UIDs.
   */
  uidRead(who: string, kp: string, d: LayoutKey['derivation']): void {
    if (d.method === 'random')
      this.add('ISO010', `${kp}/derivation`, `${who} is random per card: a reader could not know it before the card's UID; diversify it over aid (input [aid, system])`);
    else if (d.method === 'diversified' && d.input.includes('uid'))
      this.add('ISO010', `${kp}/derivation/input`, `${who} is diversified over uid: a reader could not derive it before the card's UID; use input [aid, system]`);
    if (!this.layout.picc.randomUid)
      this.add('ISO010', kp, `${who}: the layout does not issue random-UID cards (picc.randomUid), so this key has no use`);
  }

  keySettings(app: LayoutApplication, ap: string): void {
    const ks = app.keySettings;
    const kp = `${ap}/keySettings`;
    if (ks.freeCreateDelete)
      this.add('ISO004', `${kp}/freeCreateDelete`, `AID ${app.aid} allows creating and deleting files without the AMK`);
    if (ks.changeKey.kind === 'self' && !ks.allowSelfChange)
      this.add('ISO004', `${kp}/changeKey`, `AID ${app.aid}: every key may change itself (nibble E) but allowSelfChange is not declared`);
    if (ks.changeKey.kind === 'role' && ks.changeKey.role !== 'change')
      this.add('ISO006', `${kp}/changeKey`, `AID ${app.aid}: the ChangeKey right is given to role '${ks.changeKey.role}'; only the AMK or a declared 'change' role may hold it`);
  }

  file(app: LayoutApplication, f: LayoutFile, fp: string): void {
    const cls = classOf(f.type);
    for (const r of RIGHT_NAMES) {
      const right = f.access[r];
      const rp = `${fp}/access/${r}`;
      const what = `file ${f.no} (${f.name}) of AID ${app.aid}`;
      if (right.kind === 'free') {
        // reading TMC/TMV reveals nothing secret: free read of a TMAC file needs no 'public'
        if (cls === 'tmac' && r === 'read') continue;
        if (!f.public) this.add('ISO005', rp, `${what}: ${r} is free (anyone may ${GRANTS[cls][r]}) but the file is not declared public`);
        else if (r !== 'read' || cls === 'value')
          this.add('ISO008', rp, `${what} is public but ${r} is free: anyone may ${GRANTS[cls][r]}`);
      } else if (right.kind === 'role') {
        const allowed = ALLOWED_RIGHTS[right.role][cls];
        if (!allowed.includes(r)) {
          this.add('ISO003', rp, `${what}: role '${right.role}' holds ${r}, which lets it ${GRANTS[cls][r]}; beyond its purpose (${allowed.length ? `allowed here: ${allowed.join(', ')}` : `no right on a ${cls} file`})`);
        }
      }
    }
  }

  unused(app: LayoutApplication, ap: string): void {
    for (const k of app.keys) {
      if (k.role === 'amk' || k.role === 'uid-read') continue; // uid-read: ISO010
      if (k.role === 'tmac' && app.files.some((f) => f.type === 'tmac')) continue; // the TMAC key's source
      const used =
        (app.keySettings.changeKey.kind === 'role' && app.keySettings.changeKey.role === k.role) ||
        app.files.some((f) => RIGHT_NAMES.some((r) => f.access[r].kind === 'role' && (f.access[r] as { role: KeyRole }).role === k.role));
      if (!used) this.add('ISO009', this.keyPointer(ap, app, k.no), `key ${k.no} (${k.role}) of AID ${app.aid} is granted no right`);
    }
  }
}

/** All findings of the isolation rules for one layout, in file order. Pure. */
export function lintLayout(layout: Layout): Finding[] {
  return new Linter(layout).run();
}

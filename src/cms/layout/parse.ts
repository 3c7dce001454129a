// Layout file -> validated Layout. YAML or JSON (JSON is parsed by the YAML parser, so both get
// line/column positions). Three stages, each all-or-nothing: syntax, schema, semantic consistency.
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import { Value } from '@sinclair/typebox/value';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import type { TSchema } from '@sinclair/typebox';
import {
  DataFileSchema,
  LayoutSchema,
  RecordFileSchema,
  TmacFileSchema,
  ValueFileSchema,
  type AccessDoc,
  type ApplicationDoc,
  type DerivationDoc,
  type FileDoc,
  type LayoutDoc,
  type KeyRole,
} from './schema.js';
import { LayoutError, type LayoutIssue } from './errors.js';
import type {
  AppKeySettings,
  ChangeKeyAccess,
  Derivation,
  DiversificationInput,
  KeySettingsFlags,
  Layout,
  LayoutApplication,
  LayoutFile,
  LayoutKey,
  LayoutTenant,
  Right,
  SourcePos,
} from './types.js';

/** Largest layout file accepted (a layout is a few KiB; this bounds parser work on hostile input). */
export const MAX_LAYOUT_BYTES = 1 << 20;

export function escapePointer(seg: string | number): string {
  return String(seg).replace(/~/g, '~0').replace(/\//g, '~1');
}

function splitPointer(pointer: string): string[] {
  if (pointer === '' || pointer === '/') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Position lookup over a parsed YAML document: nearest existing node for a JSON pointer. */
function makeLocator(doc: Document, lc: LineCounter): (pointer: string) => SourcePos {
  return (pointer: string) => {
    let node: unknown = doc.contents;
    let offset: number | undefined = (doc.contents as Node | null)?.range?.[0];
    for (const seg of splitPointer(pointer)) {
      let next: unknown;
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === seg);
        if (pair) {
          next = pair.value ?? pair.key;
          if (!pair.value && isScalar(pair.key)) offset = pair.key.range?.[0];
        }
      } else if (isSeq(node)) {
        const i = Number(seg);
        if (Number.isInteger(i)) next = node.items[i];
      }
      if (next === undefined || next === null) break;
      node = next;
      const r = (next as Node).range;
      if (r) offset = r[0];
    }
    if (offset === undefined) return { pointer };
    const { line, col } = lc.linePos(offset);
    return { pointer, line, col };
  };
}

// ---------- schema stage ----------

const FILE_SCHEMAS: Record<string, TSchema> = {
  std: DataFileSchema,
  backup: DataFileSchema,
  value: ValueFileSchema,
  linear: RecordFileSchema,
  cyclic: RecordFileSchema,
  tmac: TmacFileSchema,
};

function literalChoices(schema: TSchema): string[] | undefined {
  const anyOf = (schema as { anyOf?: { const?: unknown }[] }).anyOf;
  if (!anyOf || !anyOf.every((s) => typeof s.const === 'string')) return undefined;
  return anyOf.map((s) => String(s.const));
}

function schemaIssues(schema: TSchema, value: unknown, prefix: string, out: { pointer: string; message: string }[]): void {
  for (const e of Value.Errors(schema, value)) {
    if (out.length >= 50) return;
    explain(e, prefix, out);
  }
}

function explain(e: ValueError, prefix: string, out: { pointer: string; message: string }[]): void {
  const pointer = prefix + e.path;
  if (e.type === ValueErrorType.Union) {
    const v = e.value as Record<string, unknown> | undefined;
    const choices = literalChoices(e.schema);
    if (choices) {
      out.push({ pointer, message: `must be one of: ${choices.join(', ')} (got ${JSON.stringify(e.value)})` });
      return;
    }
    if (/\/files\/\d+$/.test(pointer) && v && typeof v === 'object') {
      const t = v.type;
      const specific = typeof t === 'string' ? FILE_SCHEMAS[t] : undefined;
      if (specific) return schemaIssues(specific, v, pointer, out);
      out.push({ pointer: `${pointer}/type`, message: `file type must be one of: ${Object.keys(FILE_SCHEMAS).join(', ')}` });
      return;
    }
    if (/\/derivation$/.test(pointer)) {
      out.push({
        pointer,
        message:
          'derivation must be "diversified", "random", {method: diversified, master?, input?}, {method: random} or {method: static, keyRef}',
      });
      return;
    }
    out.push({ pointer, message: 'does not match any allowed form' });
    return;
  }
  if (e.type === ValueErrorType.ObjectAdditionalProperties) {
    out.push({ pointer, message: `unknown property '${splitPointer(e.path).pop() ?? ''}'` });
    return;
  }
  if (e.type === ValueErrorType.ObjectRequiredProperty) {
    out.push({ pointer, message: `missing required property '${splitPointer(e.path).pop() ?? ''}'` });
    return;
  }
  out.push({ pointer, message: e.message.replace(/^Expected/, 'expected') });
}

// ---------- semantic stage ----------

const FLAG_DEFAULTS: KeySettingsFlags = {
  masterKeyChangeable: true,
  freeDirectoryListing: false,
  freeCreateDelete: false,
  configurationChangeable: true,
};

function flags(doc: Partial<KeySettingsFlags> | undefined): KeySettingsFlags {
  return {
    masterKeyChangeable: doc?.masterKeyChangeable ?? FLAG_DEFAULTS.masterKeyChangeable,
    freeDirectoryListing: doc?.freeDirectoryListing ?? FLAG_DEFAULTS.freeDirectoryListing,
    freeCreateDelete: doc?.freeCreateDelete ?? FLAG_DEFAULTS.freeCreateDelete,
    configurationChangeable: doc?.configurationChangeable ?? FLAG_DEFAULTS.configurationChangeable,
  };
}

class Semantic {
  readonly issues: LayoutIssue[] = [];
  constructor(private readonly locate: (p: string) => SourcePos) {}

  fail(pointer: string, message: string): void {
    this.issues.push({ ...this.locate(pointer), message });
  }

  layout(doc: LayoutDoc): Omit<Layout, 'locate'> {
    const aids = new Map<string, string>();
    const tenantIds = new Set<string>();
    const tenants: LayoutTenant[] = doc.tenants.map((t, ti) => {
      const tp = `/tenants/${ti}`;
      if (tenantIds.has(t.id)) this.fail(`${tp}/id`, `duplicate tenant id '${t.id}'`);
      tenantIds.add(t.id);
      const applications = t.applications.map((a, ai) => {
        const ap = `${tp}/applications/${ai}`;
        const aid = a.aid.toUpperCase();
        if (aid === '000000') this.fail(`${ap}/aid`, 'AID 000000 is the PICC level, not an application');
        const prev = aids.get(aid);
        if (prev) this.fail(`${ap}/aid`, `AID ${aid} is already declared at ${prev}`);
        else aids.set(aid, ap);
        return this.application(t.id, a, ap);
      });
      return { id: t.id, name: t.name, applications, pos: this.locate(tp) };
    });
    return {
      name: doc.name,
      picc: {
        keySettings: flags(doc.picc?.keySettings),
        randomUid: doc.picc?.randomUid ?? false,
        pos: this.locate('/picc'),
      },
      tenants,
    };
  }

  application(tenantId: string, a: ApplicationDoc, ap: string): LayoutApplication {
    const aid = a.aid.toUpperCase();
    const byNo = new Map<number, number>();
    const byRole = new Map<KeyRole, number>();
    const keys: LayoutKey[] = a.keys.map((k, ki) => {
      const kp = `${ap}/keys/${ki}`;
      if (byNo.has(k.no)) this.fail(`${kp}/no`, `duplicate key number ${k.no}`);
      byNo.set(k.no, ki);
      if (byRole.has(k.role))
        this.fail(`${kp}/role`, `role '${k.role}' is already held by key ${String(byRole.get(k.role))}; one key per role`);
      else byRole.set(k.role, k.no);
      if (k.role === 'amk' && k.no !== 0) this.fail(`${kp}/role`, 'the amk role belongs to key 0');
      if (k.no === 0 && k.role !== 'amk') this.fail(`${kp}/role`, 'key 0 is the application master key: its role is amk');
      return { no: k.no, role: k.role, derivation: this.derivation(k.derivation, tenantId, aid, k.no, k.role), pos: this.locate(kp) };
    });
    const maxNo = Math.max(...keys.map((k) => k.no));
    const keyCount = a.keyCount ?? maxNo + 1;
    if (a.keyCount !== undefined && maxNo >= a.keyCount)
      this.fail(`${ap}/keyCount`, `keyCount ${a.keyCount} but key ${maxNo} is declared`);
    for (let n = 0; n < keyCount; n++) {
      if (!byNo.has(n))
        this.fail(`${ap}/keys`, `key ${n} is not declared: every key of the application must get a per-card key and a role`);
    }
    const roleOk = (role: string): role is KeyRole => byRole.has(role as KeyRole);

    const ks = a.keySettings;
    let changeKey: ChangeKeyAccess = { kind: 'amk' };
    const ck = ks?.changeKey;
    if (ck === undefined || ck === 'amk') changeKey = { kind: 'amk' };
    else if (ck === 'self') changeKey = { kind: 'self' };
    else if (ck === 'frozen') changeKey = { kind: 'frozen' };
    else if (roleOk(ck)) changeKey = { kind: 'role', role: ck };
    else this.fail(`${ap}/keySettings/changeKey`, `changeKey '${ck}' is not amk, self, frozen or a role of this application`);
    const keySettings: AppKeySettings = { ...flags(ks), changeKey, allowSelfChange: ks?.allowSelfChange ?? false };

    const fileNos = new Set<number>();
    const files = a.files.map((f, fi) => {
      const fp = `${ap}/files/${fi}`;
      if (fileNos.has(f.no)) this.fail(`${fp}/no`, `duplicate file number ${f.no}`);
      fileNos.add(f.no);
      return this.file(f, fp, roleOk);
    });
    this.tmac(a, ap, files, byRole);
    return {
      tenantId,
      aid,
      name: a.name,
      keyType: a.keyType ?? 'aes',
      keyCount,
      systemIdentifier: (a.systemIdentifier ?? '').toUpperCase(),
      keySettings,
      keys: keys.sort((x, y) => x.no - y.no),
      files,
      pos: this.locate(ap),
    };
  }

  /**
   * Transaction MAC rules the card itself imposes (or that make the file unusable): at most one per
   * application, an AES application, W never; and the TMAC key source — a key with role 'tmac' —
   * declared (a 'tmac' key without the file grants nothing: the linter's ISO009).
   */
  tmac(a: ApplicationDoc, ap: string, files: LayoutFile[], byRole: Map<KeyRole, number>): void {
    const idx = a.files.map((f, i) => (f.type === 'tmac' ? i : -1)).filter((i) => i >= 0);
    for (const i of idx.slice(1)) this.fail(`${ap}/files/${i}/type`, 'a second Transaction MAC file: DESFire allows one per application');
    for (const i of idx) {
      const f = files[i]!;
      if (f.access.write.kind !== 'never') this.fail(`${ap}/files/${i}/access/write`, 'a Transaction MAC file has no write right: write must be never');
      if ((a.keyType ?? 'aes') !== 'aes') this.fail(`${ap}/files/${i}/type`, 'a Transaction MAC file needs an AES application (its key is AES)');
      if (!byRole.has('tmac')) this.fail(`${ap}/files/${i}/type`, "a Transaction MAC file needs a key with role 'tmac' (the source of its AES key)");
    }
  }

  derivation(d: DerivationDoc | undefined, tenantId: string, aid: string, no: number, role: KeyRole): Derivation {
    const dflt = `${tenantId}/${aid}/${no}`;
    // a 'uid-read' key opens a random-UID card before its UID is known: one key per AID, not per card
    const input: DiversificationInput[] = role === 'uid-read' ? ['aid', 'system'] : ['uid', 'aid', 'system'];
    if (d === undefined || d === 'diversified') return { method: 'diversified', master: dflt, masterDeclared: false, input };
    if (d === 'random') return { method: 'random' };
    if (d.method === 'random') return { method: 'random' };
    if (d.method === 'static') return { method: 'static', keyRef: d.keyRef };
    return {
      method: 'diversified',
      master: d.master ?? dflt,
      masterDeclared: d.master !== undefined,
      input: d.input ? [...d.input] : input,
    };
  }

  file(f: FileDoc, fp: string, roleOk: (r: string) => r is KeyRole): LayoutFile {
    const right = (name: keyof AccessDoc): Right => {
      const v = f.access[name];
      if (v === undefined || v === 'never') return { kind: 'never' };
      if (v === 'free') return { kind: 'free' };
      if (roleOk(v)) return { kind: 'role', role: v };
      this.fail(`${fp}/access/${name}`, `'${v}' is not a role of this application (nor free/never)`);
      return { kind: 'never' };
    };
    const base = {
      no: f.no,
      name: f.name ?? `file${f.no}`,
      comm: f.comm ?? 'full',
      access: { read: right('read'), write: right('write'), readWrite: right('readWrite'), change: right('change') },
      public: f.public ?? false,
      pos: this.locate(fp),
    };
    switch (f.type) {
      case 'std':
      case 'backup':
        return { ...base, type: f.type, size: f.size };
      case 'value': {
        if (f.lower > f.upper) this.fail(`${fp}/lower`, `lower limit ${f.lower} is above upper limit ${f.upper}`);
        const value = f.value ?? f.lower;
        if (value < f.lower || value > f.upper) this.fail(`${fp}/value`, `initial value ${value} is outside [${f.lower}, ${f.upper}]`);
        return { ...base, type: 'value', lower: f.lower, upper: f.upper, value, limitedCredit: f.limitedCredit ?? false };
      }
      case 'linear':
      case 'cyclic':
        if (f.type === 'cyclic' && f.maxRecords < 2)
          this.fail(`${fp}/maxRecords`, 'a cyclic record file needs at least 2 records (one is the spare)');
        return { ...base, type: f.type, recordSize: f.recordSize, maxRecords: f.maxRecords };
      case 'tmac':
        return { ...base, type: 'tmac' };
    }
  }
}

/**
 * Parse a layout file's text. `source` names the file in messages. Throws LayoutError with every
 * issue found (up to a bound) and its position; returns a fully validated, normalised Layout.
 */
export function parseLayout(text: string, source?: string): Layout {
  if (Buffer.byteLength(text, 'utf8') > MAX_LAYOUT_BYTES)
    throw new LayoutError('ERR_LAYOUT_TOO_LARGE', [{ pointer: '', message: `layout larger than ${MAX_LAYOUT_BYTES} bytes` }], source);
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, strict: true });
  if (doc.errors.length > 0) {
    throw new LayoutError(
      'ERR_LAYOUT_SYNTAX',
      doc.errors.map((e) => ({ pointer: '', ...lc.linePos(e.pos[0]), message: e.message.split('\n')[0] ?? e.code })),
      source,
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new LayoutError('ERR_LAYOUT_SYNTAX', [{ pointer: '', message: (e as Error).message }], source);
  }
  const locate = makeLocator(doc, lc);
  const found: { pointer: string; message: string }[] = [];
  schemaIssues(LayoutSchema, raw, '', found);
  const seen = new Set<string>();
  const unique = found.filter((i) => !seen.has(i.pointer) && seen.add(i.pointer));
  if (unique.length > 0) {
    throw new LayoutError('ERR_LAYOUT_SCHEMA', unique.map((i) => ({ ...locate(i.pointer), message: i.message })), source);
  }
  const sem = new Semantic(locate);
  const body = sem.layout(raw as LayoutDoc);
  if (sem.issues.length > 0) throw new LayoutError('ERR_LAYOUT_INVALID', sem.issues, source);
  return { ...body, locate };
}

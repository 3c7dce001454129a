// Backup and restore of the embedded deployment's data directory, online.
//
// backup: every SQLite file in the data directory (the CMS database with the audit log and the
// CA's wrapped key, the sealed embedded vault, Vault-Transit metadata) is copied with SQLite's
// online backup API (better-sqlite3 `backup()`): a consistent snapshot while the server keeps
// writing (WAL). The CMS database is copied BEFORE the vault, so every blob in the snapshot was
// wrapped under a KEK version the (later) vault snapshot knows. Other files (the audit checkpoint
// key and its vkey, the CA certificate) are copied as they are. The audit log of the snapshot is
// verified before the archive is written, and its size and root go into the manifest together
// with the SHA-256 of every file. One gzip'd ustar archive: manifest.json first, then data/…
//
// restore: reads the archive, checks that the manifest lists exactly the files present and that
// each digest matches, writes them to a staging directory next to the target, verifies the audit
// log there (and that it is the very log of the backup: same size and root), and only then moves
// the staging directory into place. A non-empty target is refused unless `force`, and even then
// it is kept aside (renamed), never deleted.
//
// The archive holds the vault only sealed (useless without its passphrase or shares), but also the
// audit checkpoint signing key: store it like a secret (it is written 0600).
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, fsyncSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type BetterSqlite3 from 'better-sqlite3';
import { tarPack, tarUnpack, safeName, type TarEntry } from './tar.js';

export const BACKUP_FORMAT = 'desfire-cms-backup/1';

export type BackupErrorCode =
  | 'ERR_BACKUP_INPUT' // bad data dir / archive path
  | 'ERR_BACKUP_ARCHIVE' // not a backup archive, or a malformed one
  | 'ERR_BACKUP_DIGEST' // a file does not match its manifest digest, or files are missing/extra
  | 'ERR_BACKUP_TARGET' // the restore target is not empty (no force) or cannot be written
  | 'ERR_BACKUP_AUDIT'; // the audit log does not verify (in the snapshot, or after restore)

export class BackupError extends Error {
  readonly code: BackupErrorCode;
  constructor(code: BackupErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'BackupError';
  }
}

export interface ManifestFile {
  /** Path inside the data directory (POSIX separators). */
  path: string;
  kind: 'sqlite' | 'file';
  size: number;
  sha256: string;
  mode: number;
}

export interface AuditSummary {
  /** The database file holding the audit log. */
  database: string;
  entries: number;
  checkpoints: number;
  /** Latest signed checkpoint of the snapshot (size 0 / root '' when none). */
  checkpointSize: number;
  checkpointRoot: string;
  vkey: string;
}

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  createdAt: string;
  host: string;
  files: ManifestFile[];
  audit?: AuditSummary;
}

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
const SKIP = /(-wal|-shm|-journal)$/;
const STAGING = /\.(restoring|backup-tmp)-\d+$/;

function isSqlite(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(16);
    return readSync(fd, b, 0, 16, 0) === 16 && b.equals(SQLITE_MAGIC);
  } finally {
    closeSync(fd);
  }
}

function walk(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const d of readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${d.name}` : d.name;
    if (d.isDirectory()) {
      if (!STAGING.test(d.name)) out.push(...walk(root, r));
    } else if (d.isFile() && !SKIP.test(d.name) && !STAGING.test(d.name)) out.push(r);
  }
  return out;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

type SqliteDriver = typeof BetterSqlite3;

async function driver(): Promise<SqliteDriver> {
  return (await import('better-sqlite3')).default as unknown as SqliteDriver;
}

/** The CMS database first (see the header), then the other SQLite files, in a stable order. */
function order(files: string[], sqlite: Set<string>): string[] {
  const rank = (f: string) => {
    if (!sqlite.has(f)) return 3;
    const D = f.toLowerCase();
    if (D.includes('vault')) return 2;
    return 1;
  };
  return [...files].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** Verify the audit log in the SQLite file `dbFile` with the vkey found in `keyDir` (if any). */
export async function verifyAuditIn(dbFile: string, vkey: string): Promise<Omit<AuditSummary, 'database' | 'vkey'>> {
  const { openDatabase } = await import('../storage/index.js');
  const { verifyDatabase } = await import('../audit/db-verify.js');
  const { verifierKey } = await import('../audit/signer.js');
  const h = await openDatabase({ kind: 'sqlite', file: dbFile }, { migrate: false });
  try {
    let key;
    try {
      key = verifierKey(vkey);
    } catch (e) {
      throw new BackupError('ERR_BACKUP_AUDIT', `the audit verifier key is malformed: ${(e as Error).message}`);
    }
    const r = await verifyDatabase(h, key);
    if (!r.ok) throw new BackupError('ERR_BACKUP_AUDIT', `the audit log does not verify: ${r.failure?.index === null ? 'log' : `entry ${r.failure?.index}`}: ${r.failure?.reason}`);
    return { entries: r.entries + r.pruned, checkpoints: r.checkpoints, checkpointSize: r.latest?.size ?? 0, checkpointRoot: r.latest ? Buffer.from(r.latest.root).toString('hex') : '' };
  } finally {
    await h.close();
  }
}

async function checkpointSnapshot(dbFile: string, keyDir: string): Promise<void> {
  const { openDatabase } = await import('../storage/index.js');
  const { openAudit } = await import('../audit/index.js');
  const h = await openDatabase({ kind: 'sqlite', file: dbFile }, { migrate: false });
  try {
    const a = await openAudit({ handle: h, keyDir });
    try {
      await a.log.checkpoint();
    } finally {
      await a.close();
    }
  } finally {
    await h.close();
  }
}

async function hasAuditTables(file: string, Driver: SqliteDriver): Promise<boolean> {
  const db = new Driver(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare("select 1 from sqlite_master where type = 'table' and name = 'audit_leaves'").get() !== undefined;
  } finally {
    db.close();
  }
}

export interface BackupResult {
  manifest: BackupManifest;
  archiveBytes: number;
}

/** Write an archive of `dataDir` to `outFile` (refuses to overwrite an existing file). */
export async function createBackup(dataDir: string, outFile: string, now: () => Date = () => new Date()): Promise<BackupResult> {
  const dir = path.resolve(dataDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new BackupError('ERR_BACKUP_INPUT', `no data directory at ${dir}`);
  if (existsSync(outFile)) throw new BackupError('ERR_BACKUP_INPUT', `${outFile} exists; a backup never overwrites a file`);
  const outAbs = path.resolve(outFile);
  if (outAbs.startsWith(dir + path.sep)) throw new BackupError('ERR_BACKUP_INPUT', 'the archive must not be written inside the data directory');
  const all = walk(dir);
  const sqlite = new Set(all.filter((f) => isSqlite(path.join(dir, f))));
  if (sqlite.size === 0) throw new BackupError('ERR_BACKUP_INPUT', `${dir} holds no SQLite database: not an embedded deployment's data directory`);
  const Driver = await driver();
  const tmp = path.join(dir, `.backup-tmp-${process.pid}`);
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  const entries: TarEntry[] = [];
  const files: ManifestFile[] = [];
  let audit: AuditSummary | undefined;
  try {
    for (const rel of order(all, sqlite)) {
      const src = path.join(dir, rel);
      const mode = statSync(src).mode & 0o777;
      let data: Buffer;
      if (sqlite.has(rel)) {
        const snap = path.join(tmp, rel.replace(/\//g, '__'));
        const db = new Driver(src, { fileMustExist: true });
        try {
          db.pragma('busy_timeout = 10000');
          await db.backup(snap);
        } finally {
          db.close();
        }
        let vkey: string | undefined;
        const keyDir = path.join(dir, 'audit');
        if (!audit && existsSync(path.join(keyDir, 'audit-checkpoint.key')) && (await hasAuditTables(snap, Driver))) {
          // Seal the snapshot's log with a signed checkpoint at its exact size (entries appended
          // after the server's last checkpoint are covered too, and a restore can prove it got
          // this very log back).
          vkey = readFileSync(path.join(keyDir, 'audit-checkpoint.vkey'), 'utf8').trim();
          await checkpointSnapshot(snap, keyDir);
        }
        data = readFileSync(snap); // the bytes archived
        if (vkey !== undefined) audit = { database: rel, vkey, ...(await verifyAuditIn(snap, vkey)) };
      } else data = readFileSync(src);
      files.push({ path: rel, kind: sqlite.has(rel) ? 'sqlite' : 'file', size: data.length, sha256: sha256(data), mode });
      entries.push({ name: `data/${rel}`, data, mode: 0o600 });
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const manifest: BackupManifest = { format: BACKUP_FORMAT, createdAt: now().toISOString(), host: hostname(), files, ...(audit ? { audit } : {}) };
  const archive = gzipSync(tarPack([{ name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest, null, 2) + '\n'), mode: 0o644 }, ...entries]));
  mkdirSync(path.dirname(outAbs), { recursive: true });
  const fd = openSync(outAbs, 'wx', 0o600);
  try {
    writeFileSync(fd, archive);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { manifest, archiveBytes: archive.length };
}

/** Read and check an archive: manifest shape, exactly the listed files, every digest. */
export function readBackup(inFile: string): { manifest: BackupManifest; files: Map<string, Buffer> } {
  let raw: Buffer;
  try {
    raw = readFileSync(inFile);
  } catch (e) {
    throw new BackupError('ERR_BACKUP_INPUT', `cannot read ${inFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let entries: TarEntry[];
  try {
    entries = tarUnpack(gunzipSync(raw));
  } catch (e) {
    throw new BackupError('ERR_BACKUP_ARCHIVE', `not a readable backup archive: ${(e as Error).message}`);
  }
  const first = entries[0];
  if (!first || first.name !== 'manifest.json') throw new BackupError('ERR_BACKUP_ARCHIVE', 'the archive does not start with manifest.json');
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(first.data.toString('utf8')) as BackupManifest;
  } catch {
    throw new BackupError('ERR_BACKUP_ARCHIVE', 'manifest.json is not JSON');
  }
  if (manifest.format !== BACKUP_FORMAT || !Array.isArray(manifest.files)) throw new BackupError('ERR_BACKUP_ARCHIVE', `unknown backup format (expected ${BACKUP_FORMAT})`);
  const files = new Map<string, Buffer>();
  for (const e of entries.slice(1)) {
    if (!e.name.startsWith('data/')) throw new BackupError('ERR_BACKUP_ARCHIVE', `unexpected entry ${e.name.slice(0, 80)}`);
    const rel = e.name.slice(5);
    if (files.has(rel)) throw new BackupError('ERR_BACKUP_ARCHIVE', `duplicate entry ${rel}`);
    files.set(rel, e.data);
  }
  const listed = new Set<string>();
  for (const f of manifest.files) {
    if (typeof f.path !== 'string' || !safeName(f.path) || typeof f.sha256 !== 'string') throw new BackupError('ERR_BACKUP_ARCHIVE', 'manifest entry malformed');
    listed.add(f.path);
    const data = files.get(f.path);
    if (!data) throw new BackupError('ERR_BACKUP_DIGEST', `${f.path} is listed in the manifest but missing from the archive`);
    if (data.length !== f.size || sha256(data) !== f.sha256) throw new BackupError('ERR_BACKUP_DIGEST', `${f.path}: SHA-256 does not match the manifest (corrupted or altered)`);
  }
  for (const rel of files.keys()) if (!listed.has(rel)) throw new BackupError('ERR_BACKUP_DIGEST', `${rel} is in the archive but not in the manifest`);
  return { manifest, files };
}

export interface RestoreResult {
  manifest: BackupManifest;
  /** Where a non-empty target was moved aside (force). */
  previous?: string;
  audit?: Omit<AuditSummary, 'database' | 'vkey'>;
}

/**
 * Restore an archive into `dataDir`. Nothing is written to `dataDir` until every digest and the
 * audit log have been verified in a staging directory. `vkey`: a pinned verifier key (default:
 * the one recorded in the backup, which must then match the restored audit-checkpoint.vkey).
 */
export async function restoreBackup(inFile: string, dataDir: string, o: { force?: boolean; vkey?: string; now?: () => Date } = {}): Promise<RestoreResult> {
  const { manifest, files } = readBackup(inFile);
  const dir = path.resolve(dataDir);
  const nonEmpty = existsSync(dir) && (!statSync(dir).isDirectory() || readdirSync(dir).length > 0);
  if (nonEmpty && !o.force) throw new BackupError('ERR_BACKUP_TARGET', `${dir} is not empty; restore refuses to overwrite it without --force`);
  const staging = `${dir}.restoring-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  try {
    mkdirSync(staging, { recursive: true, mode: 0o700 });
    for (const f of manifest.files) {
      const target = path.join(staging, ...f.path.split('/'));
      mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
      const fd = openSync(target, 'wx', (f.mode ?? 0o600) & 0o777);
      try {
        writeFileSync(fd, files.get(f.path)!);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    let audit: RestoreResult['audit'];
    if (manifest.audit) {
      const a = manifest.audit;
      const onDisk = [path.join(staging, 'audit', 'audit-checkpoint.vkey')].find((f) => existsSync(f));
      const restoredVkey = onDisk ? readFileSync(onDisk, 'utf8').trim() : undefined;
      if (restoredVkey !== undefined && restoredVkey !== a.vkey) throw new BackupError('ERR_BACKUP_AUDIT', 'the restored audit verifier key differs from the one recorded in the manifest');
      const vkey = o.vkey ?? a.vkey;
      audit = await verifyAuditIn(path.join(staging, ...a.database.split('/')), vkey);
      if (audit.entries !== a.entries || audit.checkpointSize !== a.checkpointSize || audit.checkpointRoot !== a.checkpointRoot) {
        throw new BackupError('ERR_BACKUP_AUDIT', `the restored audit log is not the one backed up (entries ${audit.entries} vs ${a.entries}, checkpoint ${audit.checkpointSize} vs ${a.checkpointSize})`);
      }
    }
    let previous: string | undefined;
    if (existsSync(dir)) {
      if (nonEmpty) {
        previous = `${dir}.before-restore-${(o.now ?? (() => new Date()))().toISOString().replace(/[:.]/g, '-')}`;
        renameSync(dir, previous);
      } else rmSync(dir, { recursive: true });
    }
    mkdirSync(path.dirname(dir), { recursive: true });
    renameSync(staging, dir);
    return { manifest, ...(previous ? { previous } : {}), ...(audit ? { audit } : {}) };
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    if (e instanceof BackupError) throw e;
    throw new BackupError('ERR_BACKUP_TARGET', `restore failed: ${(e as Error).message}`, { cause: e });
  }
}

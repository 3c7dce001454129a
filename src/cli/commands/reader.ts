// `desfire-cms reader enrol|run|status|sync`: the reader agent.
//
//   enrol   generate the reader's P-256 key in an encrypted keystore (0600), send a CSR with the
//           one-time enrolment code, store the certificate and the CMS CA
//   run     run the runtime transaction of its role on cards: PC/SC (--pcsc "READER NAME", waits
//           for insert and removal) or a virtual card image (--image FILE, once); random-UID
//           cards are read by their real UID with --uid-read KEYNO (the AID's uid-read key)
//   status  keystore, certificate, baton (entries, acknowledged) — offline, no passphrase needed
//   job     run a station job (issue, install, delete) with the station executor: claim, run, receipt
//   sync    one contact with the CMS: upload the baton, fetch state and denylist
//
// Secrets never come from argv: the keystore passphrase from --passphrase-file or
// DESFIRE_READER_PASSPHRASE (a PKCS#11 keystore: the token PIN from --pin-file or
// DESFIRE_READER_PIN), the enrolment code from --code-file or DESFIRE_READER_CODE.
// `enrol --keystore pkcs11:token=LABEL[;module=PATH][;object=LABEL]` generates the reader key in
// the token (non-extractable); later commands find the token from the keystore directory.
import { exportReaderMetrics, writeReaderMetrics } from '../../reader/metrics.js';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AuditBaton } from '../../reader/baton.js';
import { enrol } from '../../reader/cms-client.js';
import { ReaderError } from '../../reader/errors.js';
import { DEFAULT_OFFLINE_TTL_MS } from '../../reader/key-cache.js';
import { ReaderKeystore } from '../../reader/keystore.js';
import { parsePkcs11Spec, Pkcs11ReaderKeystore } from '../../reader/pkcs11-keystore.js';
import { JobRunner, type JobSpec } from '../../reader/jobs.js';
import { openReader, runOnImage, runPcsc, type TxSpec } from '../../reader/runtime.js';
import { CAMPUS, readUid, type TxResult } from '../../reader/transactions.js';
import { loadImage, saveImageAtomic } from '../../card/image-file.js';
import { VirtualCard } from '../../card/virtual-card.js';
import { InProcessTransport } from '../../transport/in-process.js';
import { PcscContext } from '../../transport/pcsc.js';
import type { Transport } from '../../core/transport.js';
import { type CliIO, type Command, UsageError } from '../io.js';
import { type Flags, need, parse } from '../flags.js';

const USAGE = [
  'usage: desfire-cms reader enrol --dir DIR --cms https://HOST:PORT --ca FILE --id READER_ID [--code-file FILE] [--passphrase-file FILE | --keystore pkcs11:token=LABEL[;module=PATH][;object=LABEL] --pin-file FILE] [--servername NAME]',
  '       desfire-cms reader run --dir DIR --cms URL (--pcsc "READER NAME" | --image FILE) --tx access|purse|loan [--zone N] [--amount CENTS] [--item TEXT] [--uid-read KEYNO] [--offline-ttl MINUTES] [--max N] [--fsync group|always] [--metrics-file FILE.prom] [--passphrase-file FILE | --pin-file FILE] [--servername NAME] [--json]',
  '       desfire-cms reader job --dir DIR --cms URL (--pcsc "READER NAME" | --image FILE) --kind issue|install|delete [--aid HEX] [--no-random-uid] [--profile NAME] [--passphrase-file FILE] [--servername NAME]',
  '       desfire-cms reader sync --dir DIR --cms URL [--passphrase-file FILE | --pin-file FILE] [--servername NAME]',
  '       desfire-cms reader status --dir DIR [--json]',
];

function int(f: Flags, name: string, min: number, max: number): number | undefined {
  const v = f.values[name];
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} must be an integer in ${min}..${max}`);
  return Number(v);
}

function secret(f: Flags, io: CliIO, flag: string, env: string, what: string): Uint8Array {
  const file = f.values[flag];
  if (file !== undefined) {
    const p = resolve(io.cwd, file);
    if (!existsSync(p)) throw new UsageError(`--${flag}: ${p} not found`);
    return new Uint8Array(Buffer.from(readFileSync(p, 'utf8').replace(/\r?\n$/, ''), 'utf8'));
  }
  const v = io.env[env];
  if (v) return new Uint8Array(Buffer.from(v, 'utf8'));
  throw new UsageError(`${what}: give --${flag} FILE or set ${env}`);
}

/** The keystore secret of `dir`: the token PIN for a PKCS#11 keystore, else the file keystore's passphrase. */
function keystoreSecret(f: Flags, io: CliIO, dir: string): Uint8Array {
  return Pkcs11ReaderKeystore.exists(dir) ? secret(f, io, 'pin-file', 'DESFIRE_READER_PIN', 'the token PIN') : secret(f, io, 'passphrase-file', 'DESFIRE_READER_PASSPHRASE', 'the keystore passphrase');
}

function cmsUrl(f: Flags): string {
  const u = need(f, 'cms');
  if (!/^https:\/\/[^/]+\/?$/.test(u)) throw new UsageError('--cms must be https://HOST:PORT (readers talk to the CMS over mTLS only)');
  return u.replace(/\/$/, '');
}

/**
 * `--uid-read KEYNO`: the key of the transaction's AID with role uid-read, for random-UID cards
 * (docs/provisioning.md#random-uid-cards); without it a card answering a random ID is refused.
 * A layout gives each role its own key, so the transaction's own key numbers are refused here.
 */
function uidRead(f: Flags, tx: TxSpec['kind']): Pick<TxSpec, 'uidRead'> {
  const v = f.values['uid-read'];
  if (v === undefined) return {};
  if (!/^\d{1,2}$/.test(v) || Number(v) > 13) throw new UsageError(`--uid-read must be a key number in 0..13 (the uid-read key of the transaction's application), got '${v}'`);
  const keyNo = Number(v);
  const app = CAMPUS[tx === 'loan' ? 'library' : tx];
  const own: number[] = 'keyNo' in app ? [app.keyNo] : [app.readKeyNo, app.writeKeyNo];
  if (own.includes(keyNo)) throw new UsageError(`--uid-read ${keyNo} is a key of the --tx ${tx} transaction itself (key${own.length > 1 ? 's' : ''} ${own.join(', ')} of AID ${app.aid}); give the application's uid-read key`);
  return { uidRead: { keyNo } };
}

function txSpec(f: Flags): TxSpec {
  const kind = need(f, 'tx');
  if (kind === 'access') return { kind, zone: int(f, 'zone', 0, 15) ?? 0, ...uidRead(f, kind) };
  if (kind === 'purse') {
    const amount = int(f, 'amount', 1, 50000);
    if (amount === undefined) throw new UsageError('--amount is required for --tx purse');
    return { kind, amount, ...uidRead(f, kind) };
  }
  if (kind === 'loan') {
    const item = f.values.item;
    if (!item || item.length > 8) throw new UsageError('--item (1..8 characters) is required for --tx loan');
    return { kind, item: new TextEncoder().encode(item.padEnd(8, ' ')), ...uidRead(f, kind) };
  }
  throw new UsageError(`--tx must be access, purse or loan (got '${kind}')`);
}

function line(r: TxResult | Error, json: boolean): string {
  if (r instanceof Error) {
    const code = (r as { code?: string }).code ?? 'ERR_UNKNOWN';
    return json ? JSON.stringify({ error: { code, message: r.message } }) : `refused: ${code}: ${r.message}`;
  }
  return json ? JSON.stringify(r) : `${r.op} card ${r.uid}: ${r.result} (${r.mode}, baton #${r.seq})`;
}

async function cmdEnrol(args: string[], io: CliIO): Promise<number> {
  const f = parse(args, ['dir', 'cms', 'ca', 'id', 'code-file', 'passphrase-file', 'pin-file', 'keystore', 'servername']);
  const dir = resolve(io.cwd, need(f, 'dir'));
  const url = cmsUrl(f);
  const caFile = resolve(io.cwd, need(f, 'ca'));
  if (!existsSync(caFile)) throw new UsageError(`--ca: ${caFile} not found`);
  const id = need(f, 'id');
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(id)) throw new UsageError('--id must match [a-z0-9][a-z0-9._-]{0,62}');
  const code = Buffer.from(secret(f, io, 'code-file', 'DESFIRE_READER_CODE', 'the one-time enrolment code')).toString('utf8').trim();
  const spec = f.values.keystore !== undefined ? parsePkcs11Spec(f.values.keystore) : undefined;
  let ks: ReaderKeystore | Pkcs11ReaderKeystore;
  if (spec || Pkcs11ReaderKeystore.exists(dir)) {
    const pin = secret(f, io, 'pin-file', 'DESFIRE_READER_PIN', 'the token PIN');
    ks = Pkcs11ReaderKeystore.exists(dir) ? await Pkcs11ReaderKeystore.open(dir, pin) : await Pkcs11ReaderKeystore.create(dir, spec!, pin);
    pin.fill(0);
  } else {
    const pass = secret(f, io, 'passphrase-file', 'DESFIRE_READER_PASSPHRASE', 'the keystore passphrase');
    ks = ReaderKeystore.exists(dir) ? ReaderKeystore.open(dir, pass) : ReaderKeystore.create(dir, pass);
    pass.fill(0);
  }
  try {
    const r = await enrol({ url, ca: readFileSync(caFile, 'utf8'), ...(f.values.servername ? { servername: f.values.servername } : {}) }, await ks.csr(id), code);
    ks.saveCertificates(r.certificate, r.caCertificate);
    io.out(`enrolled reader ${r.readerId}: certificate serial ${r.serial}, valid until ${r.notAfter}; keystore ${dir}${spec ? ` (key in PKCS#11 token '${spec.token}', non-extractable)` : ''}`);
    return 0;
  } finally {
    ks.close();
  }
}

async function cmdRun(args: string[], io: CliIO): Promise<number> {
  const f = parse(args, ['dir', 'cms', 'pcsc', 'image', 'tx', 'zone', 'amount', 'item', 'uid-read', 'offline-ttl', 'max', 'passphrase-file', 'pin-file', 'servername', 'timeout', 'fsync', 'metrics-file'], ['json']);
  const dir = resolve(io.cwd, need(f, 'dir'));
  const url = cmsUrl(f);
  const tx = txSpec(f);
  if ((f.values.pcsc === undefined) === (f.values.image === undefined)) throw new UsageError('give exactly one of --pcsc "READER NAME" or --image FILE');
  const ttlMin = int(f, 'offline-ttl', 5, 15);
  const max = int(f, 'max', 1, 1_000_000);
  const timeoutS = int(f, 'timeout', 1, 86400);
  const json = f.bools.has('json');
  const fsync = f.values.fsync;
  if (fsync !== undefined && fsync !== 'always' && fsync !== 'group') throw new UsageError(`--fsync must be 'group' (default: background group commit) or 'always' (fdatasync per operation)`);
  const pass = keystoreSecret(f, io, dir);
  const rt = await openReader({ dir, passphrase: pass, cmsUrl: url, offlineTtlMs: ttlMin !== undefined ? ttlMin * 60_000 : DEFAULT_OFFLINE_TTL_MS, ...(f.values.servername ? { servername: f.values.servername } : {}), ...(fsync ? { fsync } : {}) });
  pass.fill(0);
  // Prometheus textfile for node_exporter (docs/operations.md): cache age, offline time, pending baton entries.
  const metricsFile = f.values['metrics-file'] !== undefined ? resolve(io.cwd, f.values['metrics-file']) : undefined;
  const stopMetrics = metricsFile ? exportReaderMetrics(rt.agent, metricsFile) : undefined;
  let failures = 0;
  const report = (r: TxResult | Error) => {
    if (r instanceof Error || !r.ok) failures++;
    (r instanceof Error ? io.err : io.out)(line(r, json));
  };
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const timer = setInterval(() => void rt.agent.sync().catch(() => undefined), 30_000);
  try {
    if (rt.agent.stopped) throw new ReaderError('ERR_READER_REVOKED', `reader stopped: ${rt.agent.stopped}`);
    if (f.values.image !== undefined) {
      try {
        report(await runOnImage(rt.agent, resolve(io.cwd, f.values.image), tx));
      } catch (e) {
        report(e as Error);
      }
    } else {
      await runPcsc(rt.agent, f.values.pcsc!, tx, report, { ...(max !== undefined ? { max } : {}), signal: ac.signal, ...(timeoutS !== undefined ? { timeoutMs: timeoutS * 1000 } : {}) });
    }
    await rt.agent.sync().catch(() => undefined);
  } finally {
    clearInterval(timer);
    stopMetrics?.();
    if (metricsFile) writeReaderMetrics(rt.agent, metricsFile);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    rt.close();
  }
  return failures ? 1 : 0;
}

async function cmdJob(args: string[], io: CliIO): Promise<number> {
  const f = parse(args, ['dir', 'cms', 'pcsc', 'image', 'kind', 'aid', 'profile', 'passphrase-file', 'pin-file', 'servername', 'timeout'], ['no-random-uid']);
  const dir = resolve(io.cwd, need(f, 'dir'));
  const url = cmsUrl(f);
  const kind = need(f, 'kind');
  if (kind !== 'issue' && kind !== 'install' && kind !== 'delete') throw new UsageError(`--kind must be issue, install or delete (got '${kind}')`);
  const aid = f.values.aid;
  if (kind !== 'issue' && (!aid || !/^[0-9A-Fa-f]{6}$/.test(aid))) throw new UsageError('--aid (6 hex digits) is required for install and delete');
  const profile = f.values.profile;
  if (profile !== undefined && (kind !== 'issue' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(profile))) throw new UsageError('--profile NAME (A-Z a-z 0-9 . _ -) goes with --kind issue: the new card\'s profile');
  if ((f.values.pcsc === undefined) === (f.values.image === undefined)) throw new UsageError('give exactly one of --pcsc "READER NAME" or --image FILE');
  const timeoutS = int(f, 'timeout', 1, 86400) ?? 60;
  if (Pkcs11ReaderKeystore.exists(dir)) throw new UsageError('station jobs need the file keystore: the station executor signs receipts and unseals job keys in process (docs/reader-agent.md)');
  const pass = secret(f, io, 'passphrase-file', 'DESFIRE_READER_PASSPHRASE', 'the keystore passphrase');
  const servername = f.values.servername;
  const rt = await openReader({ dir, passphrase: pass, cmsUrl: url, ...(servername ? { servername } : {}) });
  pass.fill(0);
  const jobs = new JobRunner(rt.agent, rt.keystore as ReaderKeystore, { url, ...(servername ? { servername } : {}) });
  let t: Transport & { close?(): Promise<void> };
  let done: () => Promise<void>;
  let ctx: PcscContext | undefined;
  if (f.values.image !== undefined) {
    const file = resolve(io.cwd, f.values.image);
    const card = VirtualCard.fromImage(await loadImage(file));
    t = new InProcessTransport(card);
    done = () => saveImageAtomic(file, card.toImage());
  } else {
    ctx = await PcscContext.open();
    const st = await ctx.waitForCard(f.values.pcsc!, timeoutS * 1000);
    t = await ctx.connect(st.name);
    done = async () => undefined;
  }
  try {
    const uid = await readUid(t);
    const spec: JobSpec = kind === 'issue' ? { kind, uid, ...(f.bools.has('no-random-uid') ? { randomUid: false } : {}), ...(profile !== undefined ? { profile } : {}) } : { kind, uid, aid: aid!.toUpperCase() };
    const r = await jobs.run(spec, t);
    io.out(`job ${r.kind} ${r.jobId} card ${uid}: ${r.ok ? 'ok' : 'failed'}, ${r.recorded ? 'recorded' : 'NOT recorded'} (baton #${r.seq})`);
    await rt.agent.sync().catch(() => undefined);
    return r.ok && r.recorded ? 0 : 1;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (!(e instanceof ReaderError) && code) {
      io.err(`desfire-cms reader job: ${code}: ${(e as Error).message}`);
      return 1;
    }
    throw e;
  } finally {
    await done();
    await t.close?.().catch(() => undefined);
    await ctx?.close();
    jobs.close();
    rt.close();
  }
}

async function cmdSync(args: string[], io: CliIO): Promise<number> {
  const f = parse(args, ['dir', 'cms', 'passphrase-file', 'pin-file', 'servername']);
  const dir = resolve(io.cwd, need(f, 'dir'));
  const pass = keystoreSecret(f, io, dir);
  const rt = await openReader({ dir, passphrase: pass, cmsUrl: cmsUrl(f), ...(f.values.servername ? { servername: f.values.servername } : {}) });
  try {
    const a = await rt.agent.sync();
    if (!a) {
      io.err('the CMS is unreachable: nothing synced (the baton keeps every entry)');
      return 1;
    }
    io.out(`reader ${a.readerId} ${a.state}: baton acknowledged up to #${a.acked}; ${a.denylist.length} card(s) denied`);
    return 0;
  } finally {
    rt.close();
  }
}

function cmdStatus(args: string[], io: CliIO): number {
  const f = parse(args, ['dir'], ['json']);
  const dir = resolve(io.cwd, need(f, 'dir'));
  const enrolled = ReaderKeystore.exists(dir) && existsSync(resolve(dir, 'reader-cert.pem'));
  const b = existsSync(resolve(dir, 'baton.log')) ? AuditBaton.open(dir) : undefined;
  const s = { dir, keystore: ReaderKeystore.exists(dir), enrolled, baton: b ? { entries: b.length, acknowledged: b.acknowledged, head: b.head.hash } : null };
  b?.close();
  if (f.bools.has('json')) io.out(JSON.stringify(s));
  else io.out(`reader ${dir}: keystore ${s.keystore ? 'present' : 'absent'}, ${enrolled ? 'enrolled' : 'not enrolled'}, baton ${b ? `${s.baton!.entries} entries, ${s.baton!.acknowledged} acknowledged by the CMS` : 'empty'}`);
  return 0;
}

export const command: Command = {
  async run(args: string[], io: CliIO): Promise<number> {
    const [sub, ...rest] = args;
    try {
      switch (sub) {
        case 'enrol':
        case 'enroll':
          return await cmdEnrol(rest, io);
        case 'run':
          return await cmdRun(rest, io);
        case 'sync':
          return await cmdSync(rest, io);
        case 'job':
          return await cmdJob(rest, io);
        case 'status':
          return cmdStatus(rest, io);
        case undefined:
        case 'help':
        case '--help':
          for (const l of USAGE) io.out(l);
          return sub === undefined ? 2 : 0;
        default:
          throw new UsageError(`unknown subcommand '${sub}' (enrol, run, job, sync, status)`);
      }
    } catch (e) {
      if (e instanceof ReaderError) {
        io.err(`desfire-cms reader: ${e.code}: ${e.message}`);
        return 1;
      }
      throw e;
    }
  },
};

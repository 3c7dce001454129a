// The runtime transactions of the example layout (examples/campus.yaml), each one: get the role's
// key (online/offline), EV2-authenticate, do the work, append the result to the baton (fsync'd),
// then report. Keys are wiped after use.
//
//   access-check   A1C001 file 1 (32-byte credential, comm full, read key 1): decode and decide
//   purse-debit    CAFE01 file 1 (value file, comm full, debit key 1): GetValue, Debit, Commit;
//                  the TMAC counter of file 2 (free read) before and after: clone check (src/reader/tmac.ts)
//   library-loan   11B001 file 1 (cyclic records of 16 bytes, comm mac): read the newest record
//                  with key 1 (loan sequence number: the clone check), append with key 2, Commit
import type { Transport } from '../core/transport.js';
import { DesfireClient } from '../core/client/client.js';
import { toHex, wipe } from '../core/crypto/bytes.js';
import { type ObtainedKey, type ReaderAgent, withKey } from './agent.js';
import { ReaderError } from './errors.js';
import { tmacCloneCheck } from './tmac.js';

// ---- the credential (32 bytes in the access-control file) ---------------------------------------
//   0     version (1)
//   1     flags (bit 0: blocked)
//   2..3  zone bitmap (big-endian; bit z = zone z)
//   4..7  valid from (Unix seconds, big-endian)
//   8..11 valid until (Unix seconds, big-endian, exclusive)
//   12..27 holder id (16 bytes)
//   28..31 reserved (0)
export interface Credential {
  version: number;
  blocked: boolean;
  zones: number;
  validFrom: number;
  validUntil: number;
  holder: Uint8Array;
}

export const CREDENTIAL_SIZE = 32;

export function encodeCredential(c: Credential): Uint8Array {
  const b = new Uint8Array(CREDENTIAL_SIZE);
  const v = new DataView(b.buffer);
  b[0] = c.version;
  b[1] = c.blocked ? 1 : 0;
  v.setUint16(2, c.zones);
  v.setUint32(4, c.validFrom);
  v.setUint32(8, c.validUntil);
  b.set(c.holder.subarray(0, 16), 12);
  return b;
}

export function decodeCredential(b: Uint8Array): Credential | undefined {
  if (b.length !== CREDENTIAL_SIZE || b[0] !== 1) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { version: 1, blocked: (b[1]! & 1) === 1, zones: v.getUint16(2), validFrom: v.getUint32(4), validUntil: v.getUint32(8), holder: b.slice(12, 28) };
}

/** The access decision: 'granted' or 'denied:<why>'. Pure. */
export function decide(c: Credential | undefined, zone: number, nowMs: number): string {
  if (!c) return 'denied:bad-credential';
  if (c.blocked) return 'denied:blocked';
  const s = Math.floor(nowMs / 1000);
  if (s < c.validFrom) return 'denied:not-yet-valid';
  if (s >= c.validUntil) return 'denied:expired';
  if (((c.zones >> zone) & 1) !== 1) return 'denied:zone';
  return 'granted';
}

// ---- the loan record (16 bytes in the cyclic record file) ---------------------------------------
//   0..3 loan sequence number (big-endian; grows by one per loan on this card: the clone counter)
//   4..7 time (Unix seconds)   8..15 item id (8 bytes)
export const LOAN_RECORD_SIZE = 16;

export function encodeLoan(seq: number, timeS: number, item: Uint8Array): Uint8Array {
  const b = new Uint8Array(LOAN_RECORD_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, seq);
  v.setUint32(4, timeS);
  b.set(item.subarray(0, 8), 8);
  return b;
}

// ---- the campus layout's parameters -------------------------------------------------------------
export const CAMPUS = {
  access: { aid: 'A1C001', fileNo: 1, keyNo: 1 },
  purse: { aid: 'CAFE01', fileNo: 1, keyNo: 1, tmacFileNo: 2 },
  library: { aid: '11B001', fileNo: 1, readKeyNo: 1, writeKeyNo: 2 },
} as const;

/** The UID a PC/SC reader reports for the card in the field (GET DATA FF CA 00 00 00). */
export async function readUid(t: Transport): Promise<string> {
  const r = await t.transmit(Uint8Array.of(0xff, 0xca, 0x00, 0x00, 0x00));
  if (r.length < 2 || r[r.length - 2] !== 0x90 || r[r.length - 1] !== 0x00) throw new ReaderError('ERR_READER_CARD', 'the reader did not report the card UID');
  return toHex(r.subarray(0, r.length - 2));
}

/**
 * A random ID at anticollision: a card with random UID enabled answers a fresh 4-byte NUID whose
 * first byte is 0x08 (ISO/IEC 14443-3 "RID") at every activation; it is no card's identity.
 */
export function isRandomId(uidHex: string): boolean {
  return uidHex.length === 8 && uidHex.slice(0, 2) === '08';
}

/** Which key of an AID is its 'uid-read' key (docs/provisioning.md#random-uid-cards). */
export interface UidRead {
  keyNo: number;
}

/**
 * The card's UID for the CMS. A fixed UID is what the PC/SC reader reports. A random ID (see
 * isRandomId) is resolved on the card: select `aid`, authenticate with its 'uid-read' key — one key
 * per AID, derived from the AN10922 master this reader holds through its 'offline-master' role
 * on (aid, keyNo), fetched now if not held — and run GetCardUID (0x51, answered enciphered). The
 * key opens no file; it is wiped after use. The real UID is returned to the caller only (no log).
 */
export async function cardUid(agent: ReaderAgent, t: Transport, client: DesfireClient, aid: string, uidRead: UidRead | undefined): Promise<string> {
  const rf = await readUid(t);
  if (!isRandomId(rf)) return rf;
  if (!uidRead) throw new ReaderError('ERR_READER_CARD', `the card answers a random ID and no uid-read key is configured for AID ${aid.toUpperCase()}: its UID cannot be read`);
  const role = agent.role(aid, uidRead.keyNo);
  const derive = () => agent.masters.derive(role.tenantId, aid, '', uidRead.keyNo);
  let k: ReturnType<typeof derive>;
  try {
    k = derive();
  } catch (e) {
    if (!(e instanceof ReaderError) || (e.code !== 'ERR_READER_OFFLINE_NO_KEY' && e.code !== 'ERR_READER_OFFLINE_EXPIRED')) throw e;
    await agent.refreshMasters(true);
    k = derive();
  }
  await client.selectApplication(aidNum(aid));
  await authenticate(client, uidRead.keyNo, { ...k, mode: 'online', tenant: role.tenantId });
  const uid = await client.getCardUid();
  try {
    return toHex(uid);
  } finally {
    uid.fill(0);
  }
}

export interface TxResult {
  uid: string;
  op: string;
  result: string;
  ok: boolean;
  mode: 'online' | 'offline';
  seq: number;
  /** purse: balance after; library: loan sequence written. */
  value?: number;
}

const aidNum = (aid: string) => parseInt(aid, 16);

async function authenticate(client: DesfireClient, keyNo: number, k: ObtainedKey, nonFirst = false): Promise<void> {
  await withKey(k, (key) => client.authenticate(keyNo, key, { method: 'ev2', keyType: k.keyType === 'aes' ? 'aes' : '3k3des', ...(nonFirst ? { nonFirst: true } : {}) }).then(() => undefined));
}

/**
 * SelectApplication on the card and the key(s) from the agent (a CMS round trip online) at the
 * same time: the card and the network overlap. Both are awaited whatever happens; keys obtained
 * when the other side failed are wiped before the error is rethrown.
 */
async function selectAndObtain(client: DesfireClient, agent: ReaderAgent, uid: string, aid: string, keyNos: number[]): Promise<ObtainedKey[]> {
  const [sel, ...ks] = await Promise.allSettled([client.selectApplication(aidNum(aid)), ...keyNos.map((n) => agent.obtainKey(uid, aid, n))]);
  const failed = [sel, ...ks].find((r) => r.status === 'rejected');
  if (failed) {
    for (const k of ks) if (k.status === 'fulfilled') wipe(k.value.key);
    // a refusal of the agent (denylist, offline expired, revoked, …) is the reason to report
    const refusal = ks.find((r) => r.status === 'rejected');
    throw (refusal ?? failed).reason;
  }
  return ks.map((k) => (k as PromiseFulfilledResult<ObtainedKey>).value);
}

function cardError(e: unknown): string {
  const c = (e as { code?: string })?.code;
  return `error:${typeof c === 'string' ? c : 'ERR_UNKNOWN'}`;
}

/**
 * Run `body` for a card operation with baton accounting: a refusal before the card is touched
 * (denylist, no key, offline expired, revoked) is recorded too, then rethrown.
 */
async function accounted(agent: ReaderAgent, uid: string, aid: string, keyNo: number, op: string, body: (ver: { v: number; mode: 'online' | 'offline' }) => Promise<{ result: string; ok: boolean; value?: number }>): Promise<TxResult> {
  const ver = { v: -1, mode: 'online' as 'online' | 'offline' };
  let out: { result: string; ok: boolean; value?: number };
  try {
    agent.role(aid, keyNo); // no role: refused before the card is touched
    out = await body(ver);
  } catch (e) {
    if (!(e instanceof ReaderError && (e.code === 'ERR_READER_STOPPED' || e.code === 'ERR_READER_REVOKED'))) {
      agent.record({ cardUid: uid, aid, keyNo, keyVersion: ver.v, op, result: e instanceof ReaderError ? `refused:${e.code}` : cardError(e) });
      agent.scheduleSync();
    }
    throw e;
  }
  const entry = agent.record({ cardUid: uid, aid, keyNo, keyVersion: ver.v, op, result: out.result });
  agent.scheduleSync();
  return { uid, op, result: out.result, ok: out.ok, mode: ver.mode, seq: entry.seq, ...(out.value !== undefined ? { value: out.value } : {}) };
}

/** What every transaction takes: the UID if already known, a client, the AID's uid-read key. */
export interface TxOptions {
  uid?: string;
  client?: DesfireClient;
  /** The 'uid-read' key of the transaction's AID: needed for random-UID cards. */
  uidRead?: UidRead;
}

/** Access control: read the credential, decide for `zone`. */
export async function accessCheck(agent: ReaderAgent, t: Transport, opts: TxOptions & { zone?: number } = {}): Promise<TxResult> {
  const { aid, fileNo, keyNo } = CAMPUS.access;
  const client = opts.client ?? new DesfireClient(t);
  const uid = opts.uid ?? (await cardUid(agent, t, client, aid, opts.uidRead));
  return accounted(agent, uid, aid, keyNo, 'access-check', async (ver) => {
    const [k] = (await selectAndObtain(client, agent, uid, aid, [keyNo])) as [ObtainedKey];
    ver.v = k.version;
    ver.mode = k.mode;
    await authenticate(client, keyNo, k);
    const data = await client.readData(fileNo, 0, CREDENTIAL_SIZE, { comm: 'full' });
    const result = decide(decodeCredential(data), opts.zone ?? 0, Date.now());
    data.fill(0);
    return { result, ok: result === 'granted' };
  });
}

/** Cafeteria: debit `amount` (cents) from the purse and commit. */
export async function purseDebit(agent: ReaderAgent, t: Transport, amount: number, opts: TxOptions = {}): Promise<TxResult> {
  if (!Number.isInteger(amount) || amount <= 0 || amount > 0x7fffffff) throw new ReaderError('ERR_READER_CONFIG', 'amount must be a positive integer');
  const { aid, fileNo, keyNo } = CAMPUS.purse;
  const client = opts.client ?? new DesfireClient(t);
  const uid = opts.uid ?? (await cardUid(agent, t, client, aid, opts.uidRead));
  return accounted(agent, uid, aid, keyNo, 'purse-debit', async (ver) => {
    const [k] = (await selectAndObtain(client, agent, uid, aid, [keyNo])) as [ObtainedKey];
    ver.v = k.version;
    ver.mode = k.mode;
    // TMAC counter before (a stale copy of the card is refused untouched) and after the commit
    const tm = await tmacCloneCheck(agent, client, uid, aid, CAMPUS.purse.tmacFileNo, 'before').catch((e: unknown) => {
      wipe(k.key);
      throw e;
    });
    if (tm.kind === 'clone') {
      wipe(k.key);
      return { result: `clone-suspected:tmc:${tm.tmc}`, ok: false };
    }
    await authenticate(client, keyNo, k);
    const before = await client.getValue(fileNo, { comm: 'full' });
    if (before < amount) return { result: `denied:insufficient:${before}`, ok: false, value: before };
    await client.debit(fileNo, amount, { comm: 'full' });
    await client.commitTransaction();
    const after = tm.kind === 'absent' ? tm : await tmacCloneCheck(agent, client, uid, aid, CAMPUS.purse.tmacFileNo, 'after');
    if (after.kind === 'clone') return { result: `clone-suspected:tmc:${after.tmc}`, ok: false, value: before - amount };
    return { result: `ok:${amount}:${before - amount}`, ok: true, value: before - amount };
  });
}

/** Library: append a loan record (sequence = newest + 1, checked against the last one seen) and commit. */
export async function libraryLoan(agent: ReaderAgent, t: Transport, item: Uint8Array, opts: TxOptions = {}): Promise<TxResult> {
  const { aid, fileNo, readKeyNo, writeKeyNo } = CAMPUS.library;
  const client = opts.client ?? new DesfireClient(t);
  const uid = opts.uid ?? (await cardUid(agent, t, client, aid, opts.uidRead));
  return accounted(agent, uid, aid, writeKeyNo, 'library-loan', async (ver) => {
    const [kr, kw] = (await selectAndObtain(client, agent, uid, aid, [readKeyNo, writeKeyNo])) as [ObtainedKey, ObtainedKey];
    ver.v = kw.version;
    ver.mode = kr.mode === 'offline' || kw.mode === 'offline' ? 'offline' : 'online';
    let lastSeq = 0;
    try {
      await authenticate(client, readKeyNo, kr);
      try {
        const rec = await client.readRecords(fileNo, 0, 1, { comm: 'mac', recordSize: LOAN_RECORD_SIZE });
        lastSeq = new DataView(rec.buffer, rec.byteOffset, rec.byteLength).getUint32(rec.length - LOAN_RECORD_SIZE);
      } catch (e) {
        // An empty record file answers BOUNDARY_ERROR: no loan yet. The session is gone after an error.
        if (!/BOUNDARY|0xBE|\bBE\b/i.test(`${(e as { code?: string }).code ?? ''} ${(e as Error).message}`)) throw e;
      }
    } catch (e) {
      wipe(kw.key);
      throw e;
    }
    if (!agent.checkCounter(uid, aid, 'loan-seq', lastSeq)) {
      wipe(kw.key);
      return { result: `clone-suspected:loan-seq:${lastSeq}`, ok: false, value: lastSeq };
    }
    await authenticate(client, writeKeyNo, kw);
    const seq = lastSeq + 1;
    await client.writeRecord(fileNo, 0, encodeLoan(seq, Math.floor(Date.now() / 1000), item), { comm: 'mac' });
    await client.commitTransaction();
    agent.checkCounter(uid, aid, 'loan-seq', seq);
    return { result: `ok:loan:${seq}`, ok: true, value: seq };
  });
}

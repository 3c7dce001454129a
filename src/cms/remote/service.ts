// Remote mode: the CMS drives the card itself through a reader that only relays APDUs
// (./relay.ts), so card keys stay in the CMS (exported from custody to this process only, audited,
// wiped after use). Operations:
//   read       authenticate with key `keyNo` of `aid` (the reader's role must grant 'deliver' on it;
//              card active, application recorded) and read a data file / records / value: the
//              reader gets the plain data, never a key
//   reconcile  probe the card for a station job whose outcome is unknown (../jobs/reconcile.ts);
//              the reader must hold the install (or issue) operation for the job's AID
// Sessions live in the memory of the CMS process that opened them (scaled deployments route a
// reader's remote session to one process: sticky by session id).
import { createDecipheriv, randomBytes } from 'node:crypto';
import { ev2SessionKeys } from '../../core/auth/sessionkeys.js';
import type { Transport } from '../../core/transport.js';
import { Sealer } from '../../custody/seal.js';
import type { ReaderRecipient } from '../../custody/sealed.js';
import { DesfireClient } from '../../core/client/index.js';
import { fromHex, toHex, wipe } from '../../core/crypto/bytes.js';
import type { CallerContext, KeyCustody, KeySource } from '../../custody/types.js';
import { CARD_USABLE } from '../domain/index.js';
import type { StationAuditSink } from '../jobs/audit.js';
import { JobError } from '../jobs/errors.js';
import { assertMayProbe, reconcileJob } from '../jobs/reconcile.js';
import { checkAidHex, checkUidHex } from '../jobs/plan.js';
import type { StationJobs } from '../jobs/service.js';
import { RelayTransport, type RelayEvent } from './relay.js';

export type RemoteRequest =
  | { op: 'read'; uid: string; aid: string; keyNo: number; fileNo: number; offset?: number; length?: number }
  | { op: 'session'; uid: string; aid: string; keyNo: number }
  | { op: 'reconcile'; jobId: string };

export interface RemoteStep {
  sessionId: string;
  /** Hex command APDU to send to the card, when the operation needs one. */
  apdu?: string;
  done: boolean;
  result?: unknown;
}

interface Session {
  id: string;
  readerId: string;
  relay: RelayTransport;
  expiresAt: number;
}

export interface RemoteOptions {
  jobs: StationJobs;
  custody: KeyCustody;
  audit: StationAuditSink;
  /** Longest a session may live (default 60 s) and wait for a relayed answer (default 15 s). */
  sessionTtlMs?: number;
  stepTimeoutMs?: number;
  maxSessions?: number;
}

export class RemoteSessions {
  private readonly sessions = new Map<string, Session>();
  /** Seals released session keys (never card keys: those only custody seals). */
  private readonly sealer = new Sealer();

  constructor(private readonly o: RemoteOptions) {}

  get open(): number {
    return this.sessions.size;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, s] of this.sessions)
      if (s.expiresAt <= now) {
        void s.relay.close();
        this.sessions.delete(id);
      }
  }

  async start(ctx: CallerContext, readerId: string, req: RemoteRequest): Promise<RemoteStep> {
    this.sweep();
    if (this.sessions.size >= (this.o.maxSessions ?? 1000)) throw new JobError('ERR_REMOTE_STATE', 'too many remote sessions');
    let run: (c: DesfireClient, t: RelayTransport) => Promise<unknown>;
    try {
      run = await this.authorise(ctx, readerId, req);
    } catch (e) {
      await this.o.audit.append({ time: new Date().toISOString(), source: 'cms', op: 'remote_session', outcome: 'refused', actor: ctx.actor, correlationId: ctx.correlationId, readerId, code: (e as { code?: string }).code ?? 'ERR_INTERNAL' });
      throw e;
    }
    const id = `rs_${randomBytes(12).toString('base64url')}`;
    const relay = new RelayTransport(this.o.stepTimeoutMs ?? 15_000);
    const s: Session = { id, readerId, relay, expiresAt: Date.now() + (this.o.sessionTtlMs ?? 60_000) };
    this.sessions.set(id, s);
    const client = new DesfireClient(relay);
    void run(client, relay).then(
      (result) => relay.emit({ kind: 'done', result }),
      (e: unknown) => relay.emit({ kind: 'error', code: (e as { code?: string }).code ?? 'ERR_REMOTE_FAILED', message: (e as Error).message }),
    );
    return this.answer(s, await relay.next());
  }

  async step(readerId: string, sessionId: string, responseHex: string): Promise<RemoteStep> {
    const s = this.sessions.get(sessionId);
    if (!s || s.readerId !== readerId) throw new JobError('ERR_REMOTE_NOT_FOUND', 'remote session not found');
    if (typeof responseHex !== 'string' || !/^([0-9A-Fa-f]{2}){2,300}$/.test(responseHex)) throw new JobError('ERR_REMOTE_BAD_INPUT', 'response must be 2..300 bytes of hex');
    if (!s.relay.awaitingAnswer) throw new JobError('ERR_REMOTE_STATE', 'no command is waiting for an answer');
    s.relay.deliver(fromHex(responseHex));
    return this.answer(s, await s.relay.next());
  }

  private answer(s: Session, e: RelayEvent): RemoteStep {
    if (e.kind === 'apdu') return { sessionId: s.id, apdu: toHex(e.apdu), done: false };
    this.sessions.delete(s.id);
    void s.relay.close();
    if (e.kind === 'error') throw new JobError(e.code.startsWith('ERR_JOB') || e.code.startsWith('ERR_REMOTE') ? (e.code as never) : 'ERR_JOB_PROBE_FAILED', e.message);
    return { sessionId: s.id, done: true, result: e.result };
  }

  /**
   * Authenticate (EV2First) through the relay, then hand the reader only the session: SesAuthENC ||
   * SesAuthMAC sealed to its certificate key (bound to tenant, AID, UID, key number, version), TI
   * and CmdCtr 0. The reader continues that one transaction with Ev2HostSession; the card key never
   * leaves the CMS. RndB is recovered from the card's first answer (E(K, RndB), IV 0).
   */
  private async releaseSession(ctx: CallerContext, relay: RelayTransport, aid: string, keyNo: number, source: KeySource, recipient: ReaderRecipient): Promise<unknown> {
    let rndA: Uint8Array | undefined;
    const firstAnswers: Uint8Array[] = [];
    const capture: Transport = {
      transmit: async (apdu) => {
        const r = await relay.transmit(apdu);
        if (apdu[1] === 0x71) firstAnswers.push(r);
        return r;
      },
    };
    // keep a copy of RndA: the authentication wipes the buffer it is given
    const c = new DesfireClient(capture, {
      random: (n) => {
        const r = new Uint8Array(randomBytes(n));
        rndA = Uint8Array.from(r);
        return r;
      },
    });
    await c.selectApplication(parseInt(aid, 16));
    const key = await this.o.custody.exportForCard(ctx, source);
    let enc: Uint8Array | undefined;
    let mac: Uint8Array | undefined;
    try {
      const session = await c.authenticate(keyNo, key, { method: 'ev2', keyType: 'aes' });
      const first = firstAnswers[0];
      if (!rndA || !first || first.length !== 18) throw new JobError('ERR_JOB_PROBE_FAILED', 'unexpected EV2First exchange');
      const d = createDecipheriv('aes-128-ecb', key, null).setAutoPadding(false);
      const rndB = new Uint8Array(Buffer.concat([d.update(first.subarray(0, 16)), d.final()]));
      ({ enc, mac } = ev2SessionKeys(key, rndA, rndB));
      wipe(rndB);
      const both = new Uint8Array(32);
      both.set(enc, 0);
      both.set(mac, 16);
      const binding = source.binding;
      try {
        const sealed = await this.sealer.seal(both, binding, recipient, { ttlSeconds: 60, mode: 'ecdh-es' });
        await this.o.audit.append({ time: new Date().toISOString(), source: 'cms', op: 'remote_session', outcome: 'ok', actor: ctx.actor, correlationId: ctx.correlationId, readerId: recipient.readerId, uid: binding.uid, aid, keyNo, keyVersion: binding.version, code: 'SESSION_KEY_RELEASED' });
        if (session.ti?.length !== 4) throw new JobError('ERR_JOB_PROBE_FAILED', 'EV2 session without a TI');
        return { keyNo, ti: toHex(session.ti), cmdCtr: session.cmdCtr ?? 0, binding, sealed };
      } finally {
        wipe(both);
      }
    } finally {
      wipe(key);
      if (rndA) wipe(rndA);
      if (enc) wipe(enc);
      if (mac) wipe(mac);
      c.dropSession();
    }
  }

  private async authorise(ctx: CallerContext, readerId: string, req: RemoteRequest): Promise<(c: DesfireClient, t: RelayTransport) => Promise<unknown>> {
    const jobs = this.o.jobs;
    const readers = jobs.o.readers;
    if (!req || typeof req !== 'object') throw new JobError('ERR_REMOTE_BAD_INPUT', 'remote request required');
    if (req.op === 'reconcile') {
      const job = await jobs.get(req.jobId);
      if (job.kind === 'personalise') await assertMayProbe(jobs, readerId, job);
      else if (job.kind === 'issue') {
        const roles = await readers.roles(readerId);
        const r = await readers.get(readerId);
        if (r?.state !== 'active' || !roles.some((x) => x.operations.includes('issue'))) throw new JobError('ERR_JOB_FORBIDDEN', `reader ${readerId} may not probe issue jobs`);
      } else {
        try {
          await readers.authorise(readerId, { aid: job.aid, keyNo: 0, operation: 'install' });
        } catch (e) {
          throw new JobError('ERR_JOB_FORBIDDEN', (e as Error).message);
        }
      }
      return (_c, t) => reconcileJob(jobs, ctx, job.id, t);
    }
    if (req.op !== 'read' && req.op !== 'session') throw new JobError('ERR_REMOTE_BAD_INPUT', "op must be 'read', 'session' or 'reconcile'");
    const uid = checkUidHex(req.uid);
    const aid = checkAidHex(req.aid);
    const keyNo = req.keyNo;
    const fileNo = req.op === 'read' ? req.fileNo : 0;
    if (!Number.isInteger(keyNo) || keyNo < 0 || keyNo > 13 || !Number.isInteger(fileNo) || fileNo < 0 || fileNo > 31) throw new JobError('ERR_REMOTE_BAD_INPUT', 'keyNo 0..13 and fileNo 0..31 required');
    const offset = req.op === 'read' ? (req.offset ?? 0) : 0;
    const length = req.op === 'read' ? (req.length ?? 0) : 0;
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 0 || length > 4096) throw new JobError('ERR_REMOTE_BAD_INPUT', 'offset >= 0 and length 0..4096');
    let role;
    try {
      role = await readers.authorise(readerId, { aid, keyNo, operation: 'deliver' });
    } catch (e) {
      throw new JobError('ERR_DELIVERY_FORBIDDEN', (e as Error).message);
    }
    const app = await jobs.o.tenants.application(aid);
    if (!app || app.tenantId !== role.tenantId) throw new JobError('ERR_DELIVERY_FORBIDDEN', `application ${aid} is not the role's tenant's`);
    const card = await jobs.db.selectFrom('cards').select('state').where('uid', '=', uid).executeTakeFirst();
    if (!card || !(CARD_USABLE as readonly string[]).includes(card.state)) throw new JobError('ERR_DELIVERY_CARD_STATE', `card ${uid} is ${card?.state ?? 'unknown'}`);
    const kv = (await jobs.db.selectFrom('card_keys').select('key_version').where('uid', '=', uid).where('aid', '=', aid).where('key_no', '=', keyNo).executeTakeFirst())?.key_version;
    if (kv === undefined) throw new JobError('ERR_DELIVERY_NOT_INSTALLED', `application ${aid} is not installed on card ${uid}`);
    const source = await jobs.keys.appSource(jobs.db, app, uid, keyNo, Number(kv));
    if (req.op === 'session') {
      if (app.keyType !== 'aes') throw new JobError('ERR_JOB_UNSUPPORTED', 'session key release needs an AES (EV2) application');
      const { recipient } = await jobs.recipients.of(readerId);
      return (_c, t) => this.releaseSession(ctx, t, aid, keyNo, source, recipient);
    }
    const f = app.definition.files.find((x) => x.no === fileNo);
    if (!f) throw new JobError('ERR_REMOTE_BAD_INPUT', `application ${aid} has no file ${fileNo}`);
    const auth = app.keyType === '3k3des' ? { method: 'iso' as const, keyType: '3k3des' as const } : { method: 'ev2' as const, keyType: 'aes' as const };
    return async (c) => {
      await c.selectApplication(parseInt(aid, 16));
      const key = await this.o.custody.exportForCard(ctx, source);
      // (key wiped below)
      try {
        await c.authenticate(keyNo, key, auth);
      } finally {
        wipe(key);
      }
      // the layout's comm mode: no GetFileSettings (it needs the AMK when directory listing is not free)
      const comm = { comm: f.comm };
      if (f.type === 'value') return { value: await c.getValue(fileNo, comm) };
      if (f.type === 'linear' || f.type === 'cyclic') return { data: toHex(await c.readRecords(fileNo, 0, 0, { ...comm, recordSize: f.recordSize })) };
      return { data: toHex(await c.readData(fileNo, offset, length, comm)) };
    };
  }
}

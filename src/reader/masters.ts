// Offline diversification masters on the reader. A role granted 'offline-master' by the CMS
// (src/cms/delivery/masters.ts) lets the reader receive the AN10922 master of its (AID, keyNo),
// sealed to its certificate key (custody's seal-master.ts format), so that while the CMS is
// unreachable it can derive the key of a card it has never seen online. The master:
// - is unsealed with the reader's private key and kept only as a Diversifier in this process's
//   memory (never on disk: a restart loses it);
// - is valid for the offline TTL (5..15 min, default 10) from when it was received, and never past
//   the expiry the CMS sealed into it; past that the reader refuses and says why;
// - is wiped on revocation, on close and when it expires (`prune`).
// Holding a master means holding the key of every card of that (AID, keyNo): docs/reader-agent.md.
import type { KeyObject } from 'node:crypto';
import type { EcdhAgreement } from '../custody/ecdh-es.js';
import { Diversifier, type DiversifyAlg } from '../core/crypto/an10922.js';
import { fromHex, wipe } from '../core/crypto/bytes.js';
import { type SealedMaster, unsealMaster } from '../custody/seal-master.js';
import type { CmsClient } from './cms-client.js';
import { ReaderError } from './errors.js';
import type { CardKeyType } from './key-cache.js';

/** What the CMS answers on POST /v1/keys/master. */
export interface MasterAnswer {
  tenant: string;
  aid: string;
  keyNo: number;
  keyVersion: number;
  alg: DiversifyAlg;
  input: string[];
  systemIdentifier: string;
  sealed: SealedMaster;
}

/** An unsealed master and how to derive card keys from it (the receiver owns `material` and wipes it). */
export interface ReceivedMaster {
  tenant: string;
  aid: string;
  keyNo: number;
  version: number;
  alg: DiversifyAlg;
  input: string[];
  systemIdentifier: string;
  material: Uint8Array;
  /** Expiry sealed by the CMS (ms since epoch). */
  expiresAt: number;
}

/** Where masters come from (the CMS; see HttpMasterSource). */
export interface MasterSource {
  fetch(req: { tenant: string; aid: string; keyNo: number }): Promise<ReceivedMaster>;
}

const INPUT_PARTS = new Set(['uid', 'aid', 'system', 'keyNo']);

/** POST /v1/keys/master over mTLS, unsealed with the reader's private key. */
export class HttpMasterSource implements MasterSource {
  constructor(
    private readonly cms: CmsClient,
    private readonly readerId: string,
    private readonly privateKey: KeyObject | EcdhAgreement,
    private readonly now: () => number = Date.now,
  ) {}

  async fetch(req: { tenant: string; aid: string; keyNo: number }): Promise<ReceivedMaster> {
    const a = await this.cms.call<MasterAnswer>('POST', '/v1/keys/master', { aid: req.aid, keyNo: req.keyNo });
    if (!a || typeof a !== 'object' || !a.sealed || !Array.isArray(a.input) || !a.input.every((p) => INPUT_PARTS.has(p)) || typeof a.systemIdentifier !== 'string' || !/^([0-9A-Fa-f]{2}){0,16}$/.test(a.systemIdentifier))
      throw new ReaderError('ERR_READER_CMS', 'malformed master delivery');
    let opened: Awaited<ReturnType<typeof unsealMaster>>;
    try {
      opened = await unsealMaster(a.sealed, this.privateKey, this.readerId, req, this.now());
    } catch (e) {
      throw new ReaderError('ERR_READER_CMS', `master delivery refused: ${(e as { code?: string }).code ?? ''} ${(e as Error).message}`);
    }
    const c = opened.claim;
    if (a.tenant !== req.tenant || a.aid.toUpperCase() !== req.aid.toUpperCase() || a.keyNo !== req.keyNo || a.keyVersion !== c.mv || a.alg !== c.alg) {
      wipe(opened.material);
      throw new ReaderError('ERR_READER_CMS', 'master delivery does not match its sealed claim');
    }
    return { tenant: c.t, aid: c.aid, keyNo: c.kn, version: c.mv, alg: c.alg, input: a.input, systemIdentifier: a.systemIdentifier.toUpperCase(), material: opened.material, expiresAt: c.exp * 1000 };
  }
}

interface Held {
  version: number;
  alg: DiversifyAlg;
  input: string[];
  system: Uint8Array;
  d: Diversifier;
  receivedAt: number;
  expiresAt: number;
}

const idOf = (tenant: string, aid: string, keyNo: number) => `${tenant}|${aid.toUpperCase()}|${keyNo}`;

export class OfflineMasters {
  private readonly held = new Map<string, Held>();

  constructor(
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.held.size;
  }

  /** Age (ms) of the master for (tenant, AID, keyNo), or undefined when none is held. */
  ageMs(tenant: string, aid: string, keyNo: number): number | undefined {
    const h = this.held.get(idOf(tenant, aid, keyNo));
    return h ? this.now() - h.receivedAt : undefined;
  }

  /** Keep a received master (its material is consumed: copied into the Diversifier and wiped). */
  put(m: ReceivedMaster): void {
    if (m.alg === '2k3des') {
      wipe(m.material);
      throw new ReaderError('ERR_READER_CMS', '2K3DES masters are not used by runtime transactions');
    }
    const id = idOf(m.tenant, m.aid, m.keyNo);
    const d = new Diversifier(m.alg, m.material);
    wipe(m.material);
    this.dropId(id);
    const t = this.now();
    this.held.set(id, { version: m.version, alg: m.alg, input: m.input, system: fromHex(m.systemIdentifier), d, receivedAt: t, expiresAt: Math.min(m.expiresAt, t + this.ttlMs) });
  }

  /** The card key of `uid` derived from the held master (caller wipes it), or a typed refusal. */
  derive(tenant: string, aid: string, uid: string, keyNo: number): { key: Uint8Array; version: number; keyType: CardKeyType } {
    const id = idOf(tenant, aid, keyNo);
    const h = this.held.get(id);
    if (!h) throw new ReaderError('ERR_READER_OFFLINE_NO_KEY', `offline, no cached key for card ${uid} and no master for AID ${aid.toUpperCase()} key ${keyNo}`);
    const t = this.now();
    if (t >= h.expiresAt) {
      this.dropId(id);
      throw new ReaderError('ERR_READER_OFFLINE_EXPIRED', `offline master for AID ${aid.toUpperCase()} key ${keyNo} expired: received ${Math.floor((t - h.receivedAt) / 1000)} s ago, valid ${Math.floor((h.expiresAt - h.receivedAt) / 1000)} s; reconnect to the CMS`);
    }
    const parts: Uint8Array[] = [];
    for (const p of h.input) {
      if (p === 'uid') parts.push(fromHex(uid));
      else if (p === 'aid') parts.push(fromHex(aid).reverse());
      else if (p === 'system') parts.push(h.system);
      else parts.push(Uint8Array.of(keyNo));
    }
    const input = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((o, p) => (input.set(p, o), o + p.length), 0);
    return { key: h.d.derive(input), version: h.version, keyType: h.alg === '3k3des' ? '3k3des' : 'aes' };
  }

  /** Drop masters past their validity. */
  prune(): void {
    const t = this.now();
    for (const [id, h] of this.held) if (t >= h.expiresAt) this.dropId(id);
  }

  /** Forget (and destroy) the master of (tenant, AID, keyNo), e.g. when the CMS refuses it now. */
  drop(tenant: string, aid: string, keyNo: number): void {
    this.dropId(idOf(tenant, aid, keyNo));
  }

  private dropId(id: string): void {
    const h = this.held.get(id);
    if (!h) return;
    h.d.destroy();
    this.held.delete(id);
  }

  /** Forget (and destroy) every master: revocation, close. */
  wipe(): void {
    for (const id of [...this.held.keys()]) this.dropId(id);
  }
}

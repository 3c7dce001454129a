// Assembling a running reader from its directory: keystore (decrypted with the passphrase), audit
// baton, mTLS client, roles from the CMS, online keys from the CMS delivery endpoint. And the
// card loop: a PC/SC reader (wait for a card, run the transaction, wait for its removal) or a
// virtual card image.
import { loadImage, saveImageAtomic } from '../card/image-file.js';
import { VirtualCard } from '../card/virtual-card.js';
import { ReaderUnsealer } from '../custody/sealed.js';
import type { Transport } from '../core/transport.js';
import { InProcessTransport } from '../transport/in-process.js';
import { PcscContext } from '../transport/pcsc.js';
import { type AgentRole, ReaderAgent } from './agent.js';
import { AuditBaton, type FsyncMode } from './baton.js';
import { CmsClient } from './cms-client.js';
import { ReaderError } from './errors.js';
import { HttpKeySource } from './http-keys.js';
import { HttpMasterSource } from './masters.js';
import { ReaderKeystore } from './keystore.js';
import { Pkcs11ReaderKeystore } from './pkcs11-keystore.js';
import { accessCheck, libraryLoan, purseDebit, type TxResult, type UidRead } from './transactions.js';

export interface ReaderRuntimeOptions {
  dir: string;
  /** The file keystore's passphrase, or the token PIN of a PKCS#11 keystore. */
  passphrase: Uint8Array;
  cmsUrl: string;
  servername?: string;
  offlineTtlMs?: number;
  /** Key delivery path (default /v1/keys/deliver). */
  deliveryPath?: string;
  /** Baton durability: 'group' (default: background group-committed fdatasync) or 'always' (per operation). */
  fsync?: FsyncMode;
}

export interface ReaderRuntime {
  agent: ReaderAgent;
  cms: CmsClient;
  keystore: ReaderKeystore | Pkcs11ReaderKeystore;
  readerId: string;
  close(): void;
}

/** Open the reader's keystore: the encrypted file, or the PKCS#11 token its reference names. */
export async function openKeystore(dir: string, secret: Uint8Array): Promise<ReaderKeystore | Pkcs11ReaderKeystore> {
  return Pkcs11ReaderKeystore.exists(dir) ? Pkcs11ReaderKeystore.open(dir, secret) : ReaderKeystore.open(dir, secret);
}

/** Open the reader: fetch its roles (online) and sync once; offline at start means no roles and no keys. */
export async function openReader(o: ReaderRuntimeOptions): Promise<ReaderRuntime> {
  const keystore = await openKeystore(o.dir, o.passphrase);
  const readerId = keystore.readerId();
  const certs = keystore.certificates();
  const cms = new CmsClient({ url: o.cmsUrl, ca: certs.ca, ...(o.servername ? { servername: o.servername } : {}) }, { ...keystore.tlsOptions(), cert: certs.cert });
  const baton = AuditBaton.open(o.dir, o.fsync ? { fsync: o.fsync } : {});
  let roles: AgentRole[] = [];
  const agent = new ReaderAgent({
    readerId,
    roles,
    baton,
    unsealer: new ReaderUnsealer(readerId, keystore.unsealKey),
    keys: new HttpKeySource(cms, o.deliveryPath),
    masters: new HttpMasterSource(cms, readerId, keystore.unsealKey),
    cms,
    ...(o.offlineTtlMs !== undefined ? { offlineTtlMs: o.offlineTtlMs } : {}),
  });
  // the last run ended without closing the baton (crash, kill -9 or power loss): say so in the
  // chain, so the CMS sees every restart after which a group-commit window may have been lost
  if (baton.uncleanShutdown) agent.record({ cardUid: '', aid: '', keyNo: -1, keyVersion: -1, op: 'agent-recovered', result: `unclean-shutdown:fsync-${baton.mode}` });
  try {
    const self = await cms.call<{ roles: AgentRole[] }>('GET', '/v1/readers/self');
    roles = self.roles;
    agent.setRoles(roles);
    await agent.sync();
    await agent.refreshMasters();
  } catch (e) {
    if (e instanceof ReaderError && e.code === 'ERR_READER_REVOKED') agent.revoke(e.message);
    if (!(e instanceof ReaderError && e.code === 'ERR_READER_CMS_UNREACHABLE')) {
      agent.close();
      cms.close();
      keystore.close();
      throw e;
    }
  }
  return {
    agent,
    cms,
    keystore,
    readerId,
    close() {
      agent.close();
      cms.close();
      keystore.close();
    },
  };
}

/** A transaction; `uidRead`: the uid-read key of its AID, so random-UID cards are read by their real UID. */
export type TxSpec = ({ kind: 'access'; zone: number } | { kind: 'purse'; amount: number } | { kind: 'loan'; item: Uint8Array }) & { uidRead?: UidRead };

export function runTx(agent: ReaderAgent, t: Transport, tx: TxSpec): Promise<TxResult> {
  const o = tx.uidRead ? { uidRead: tx.uidRead } : {};
  switch (tx.kind) {
    case 'access':
      return accessCheck(agent, t, { ...o, zone: tx.zone });
    case 'purse':
      return purseDebit(agent, t, tx.amount, o);
    case 'loan':
      return libraryLoan(agent, t, tx.item, o);
  }
}

/** One transaction on a virtual card image (saved back afterwards: a debit or loan persists). */
export async function runOnImage(agent: ReaderAgent, image: string, tx: TxSpec): Promise<TxResult> {
  const card = VirtualCard.fromImage(await loadImage(image));
  const t = new InProcessTransport(card);
  try {
    return await runTx(agent, t, tx);
  } finally {
    await saveImageAtomic(image, card.toImage());
  }
}

/**
 * The PC/SC loop: wait for a card in `reader`, run the transaction, report it, wait for the card
 * to leave; `max` cards (default: until `signal` aborts).
 */
export async function runPcsc(agent: ReaderAgent, reader: string, tx: TxSpec, report: (r: TxResult | Error) => void, opts: { max?: number; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<number> {
  const ctx = await PcscContext.open();
  let n = 0;
  try {
    while (!opts.signal?.aborted && (opts.max === undefined || n < opts.max)) {
      let state;
      try {
        state = await ctx.waitForCard(reader, opts.timeoutMs ?? 3_600_000);
      } catch (e) {
        if ((e as { code?: string }).code === 'ERR_PCSC_TIMEOUT' && !opts.signal?.aborted) continue;
        throw e;
      }
      const t = await ctx.connect(state.name);
      try {
        report(await runTx(agent, t, tx));
      } catch (e) {
        report(e as Error);
        if (e instanceof ReaderError && (e.code === 'ERR_READER_REVOKED' || e.code === 'ERR_READER_STOPPED')) throw e;
      } finally {
        await t.close().catch(() => undefined);
      }
      n++;
      if (opts.max !== undefined && n >= opts.max) break;
      await ctx.waitForRemoval(state.name, opts.timeoutMs ?? 3_600_000).catch(() => undefined);
    }
  } finally {
    await ctx.close();
  }
  return n;
}

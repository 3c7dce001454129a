// The demo's readers as they run in the field: a ReaderAgent per enrolled reader (roles from the
// CMS, keys delivered online and sealed to the reader, offline cache with its TTL, audit baton
// fsync'd in the reader's directory), with an injectable clock so the offline TTL can be shown
// without waiting ten minutes. Plus the transit ride, which the reader library does not ship.
import { DesfireClient } from '../../core/client/client.js';
import type { Transport } from '../../core/transport.js';
import { ReaderUnsealer } from '../../custody/sealed.js';
import { type AgentRole, ReaderAgent, withKey } from '../../reader/agent.js';
import { AuditBaton } from '../../reader/baton.js';
import { CmsClient } from '../../reader/cms-client.js';
import { ReaderError } from '../../reader/errors.js';
import { HttpKeySource } from '../../reader/http-keys.js';
import type { TxResult } from '../../reader/transactions.js';
import type { DemoCms, EnrolledReader } from './cms.js';

export interface FieldReader {
  id: string;
  agent: ReaderAgent;
  cms: CmsClient;
  /** Added to the wall clock for this reader (ms): the demo's time machine. */
  skewMs: number;
  close(): void;
}

export async function openFieldReader(cms: DemoCms, r: EnrolledReader): Promise<FieldReader> {
  const certs = r.keystore.certificates();
  const client = new CmsClient({ url: cms.url, ca: certs.ca, servername: 'localhost', timeoutMs: 30_000 }, { key: r.keystore.tlsKeyPem(), cert: certs.cert });
  const fr: FieldReader = {
    id: r.id,
    cms: client,
    skewMs: 0,
    agent: undefined as unknown as ReaderAgent,
    close() {
      fr.agent.close();
      client.close();
    },
  };
  fr.agent = new ReaderAgent({
    readerId: r.id,
    roles: [],
    baton: AuditBaton.open(r.dir),
    unsealer: new ReaderUnsealer(r.id, r.keystore.privateKey),
    keys: new HttpKeySource(client),
    cms: client,
    now: () => Date.now() + fr.skewMs,
  });
  const self = await client.call<{ roles: AgentRole[] }>('GET', '/v1/readers/self');
  fr.agent.setRoles(self.roles);
  await fr.agent.sync();
  return fr;
}

export const TRANSIT = { aid: '7A0001', fileNo: 1, keyNo: 1 } as const;

/** Transit validator: write the trip record to the backup file (key 1, comm full), commit, read it back. */
export async function transitRide(agent: ReaderAgent, t: Transport, uid: string, trip: Uint8Array): Promise<TxResult> {
  const { aid, fileNo, keyNo } = TRANSIT;
  let version = -1;
  let mode: 'online' | 'offline' = 'online';
  try {
    const client = new DesfireClient(t);
    await client.selectApplication(parseInt(aid, 16));
    const k = await agent.obtainKey(uid, aid, keyNo);
    version = k.version;
    mode = k.mode;
    await withKey(k, (key) => client.authenticate(keyNo, key, { method: 'ev2', keyType: k.keyType === 'aes' ? 'aes' : '3k3des' }).then(() => undefined));
    await client.writeData(fileNo, 0, trip, { comm: 'full' });
    await client.commitTransaction();
    const back = await client.readData(fileNo, 0, trip.length, { comm: 'full' });
    const same = back.every((b, i) => b === trip[i]);
    const result = same ? 'ok:ride' : 'error:readback';
    const e = agent.record({ cardUid: uid, aid, keyNo, keyVersion: version, op: 'transit-ride', result });
    agent.scheduleSync();
    return { uid, op: 'transit-ride', result, ok: same, mode, seq: e.seq };
  } catch (e) {
    agent.record({ cardUid: uid, aid, keyNo, keyVersion: version, op: 'transit-ride', result: e instanceof ReaderError ? `refused:${e.code}` : `error:${(e as { code?: string }).code ?? 'ERR_UNKNOWN'}` });
    agent.scheduleSync();
    throw e;
  }
}

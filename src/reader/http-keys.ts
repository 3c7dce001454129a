// Online keys from the CMS: POST /v1/keys/deliver { uid, aid, keyNo } over mTLS (the CMS's
// delivery endpoint, src/cms/api/routes/station.ts) → the card key sealed to this reader's
// certificate key, bound to (tenant, AID, UID, keyNo, version), with a short TTL.
import type { SealedKey } from '../custody/sealed.js';
import type { KeyBinding } from '../custody/types.js';
import type { KeyDelivery, OnlineKeySource } from './agent.js';
import type { CmsClient } from './cms-client.js';
import { ReaderError } from './errors.js';

interface DeliverAnswer {
  uid: string;
  aid: string;
  keyNo: number;
  keyVersion: number;
  binding: KeyBinding;
  sealed: SealedKey;
  keyType?: 'aes' | '3k3des';
}

export class HttpKeySource implements OnlineKeySource {
  constructor(
    private readonly cms: CmsClient,
    private readonly path = '/v1/keys/deliver',
  ) {}

  async fetch(req: { tenant: string; aid: string; uid: string; keyNo: number }): Promise<KeyDelivery> {
    const a = await this.cms.call<DeliverAnswer>('POST', this.path, { uid: req.uid, aid: req.aid, keyNo: req.keyNo });
    if (!a || typeof a !== 'object' || !a.binding || !a.sealed) throw new ReaderError('ERR_READER_CMS', 'malformed key delivery');
    return { binding: a.binding, sealed: a.sealed, keyType: a.keyType === '3k3des' ? '3k3des' : 'aes' };
  }
}

// The station job wire format as the CMS produces it. The station's copy of these types is
// src/reader/station/protocol.ts (the layer rules keep cms and reader apart); the e2e tests run
// one against the other.
import type { SealedKey } from '../../custody/sealed.js';
import type { KeyBinding } from '../../custody/types.js';

export interface JobKeyWire {
  keyNo: number;
  version: number;
  keyType: 'aes' | '3k3des';
  binding: KeyBinding;
  sealed: SealedKey;
}

interface Common {
  v: 1;
  jobId: string;
  jti: string;
  uid: string;
  expiresAt: number;
  /** The tenant authorisation (src/cms/consent) an install/delete runs under: the receipt must name it. */
  authorisation?: string;
}

export type StationJobWire =
  | (Common & { kind: 'issue'; factoryKey: { keyType: 'des'; hex: string }; cmk: JobKeyWire; piccKeySettings: number; randomUid: boolean })
  | (Common & {
      kind: 'install';
      cmk: JobKeyWire;
      application: {
        aid: string;
        createApplication: string;
        keyType: 'aes' | '3k3des';
        changeKey: 'amk' | 'self';
        keys: JobKeyWire[];
        files: { fileNo: number; command: number; data: string }[];
      };
    })
  | (Common & { kind: 'delete'; cmk: JobKeyWire; aid: string });

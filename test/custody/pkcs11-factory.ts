import { randomBytes } from 'node:crypto';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { Pkcs11Engine } from '../../src/custody/pkcs11.js';
import type { BackendFactory } from './backends.js';
import { softHsmAvailable, softHsmToken } from './softhsm.js';

export const pkcs11Factory: BackendFactory = {
  name: 'pkcs11',
  component: 'SoftHSM2',
  available: softHsmAvailable,
  async make() {
    const t = softHsmToken();
    // a fresh namespace per backend instance: an empty key space on the shared test token
    const engine = await Pkcs11Engine.open({ ...t, namespace: `t${randomBytes(4).toString('hex')}` });
    const audit = new MemoryAuditSink();
    const custody = engine.custody(audit);
    return {
      custody,
      audit,
      async cleanup() {
        await engine.destroyNamespace();
        await custody.close();
      },
    };
  },
};

// The server on the PKCS#11 custody backend (SoftHSM2): the CMS CA key protector is derived in
// the token, HTTPS works, custody key admin goes to the HSM. Skips with a reason without SoftHSM
// (fails under CI=true).
import { describe, expect, it } from 'vitest';
import { requireComponent } from '../helpers/system.js';
import { softHsmAvailable, softHsmToken } from '../custody/softhsm.js';
import { startCms } from './api-harness.js';

describe('server with pkcs11 custody (SoftHSM2)', () => {
  it('starts, is ready, and administers keys in the token', async () => {
    if (!requireComponent('SoftHSM2', await softHsmAvailable())) return;
    const t = softHsmToken();
    const h = await startCms({ DESFIRE_CMS_CUSTODY: 'pkcs11', DESFIRE_CMS_PKCS11_MODULE: t.library, DESFIRE_CMS_PKCS11_TOKEN_LABEL: t.tokenLabel, DESFIRE_CMS_PKCS11_PIN: t.pin });
    try {
      const ready = await h.call('GET', '/readyz');
      expect(ready.status).toBe(200);
      const keys = await h.call('GET', '/v1/custody/keys', { token: h.admin });
      expect(keys.body.backend).toBe('pkcs11');
      const c = await h.call('POST', '/v1/custody/keys', { token: h.admin, body: { name: 'hsm-master', purpose: 'diversify', alg: 'aes128' } });
      expect(c.status).toBe(201);
      expect((await h.call('POST', '/v1/custody/keys/hsm-master/rotate', { token: h.admin })).body.latestVersion).toBe(2);
    } finally {
      await h.close();
    }
  }, 180_000);
});

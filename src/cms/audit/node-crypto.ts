// AuditCrypto on node:crypto (the server and the CLI use this one).
import { createHash, createPublicKey, verify } from 'node:crypto';
import type { AuditCrypto } from './crypto.js';

export const nodeAuditCrypto: AuditCrypto = {
  sha256(...parts) {
    const h = createHash('sha256');
    for (const p of parts) h.update(p);
    return h.digest();
  },
  ed25519Verify(publicKey, message, signature) {
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    try {
      const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
      return verify(null, message, key, signature);
    } catch {
      return false;
    }
  },
};

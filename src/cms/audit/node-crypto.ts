// AuditCrypto on node:crypto (the server and the CLI use this one).
import * as nodeCrypto from 'node:crypto';
import { createHash, createPublicKey, verify } from 'node:crypto';
import type { AuditCrypto } from './crypto.js';

type OneShot = (alg: string, data: Uint8Array, enc: 'buffer') => Buffer;
const oneShot = (nodeCrypto as unknown as { hash?: OneShot }).hash;
let scratch = Buffer.allocUnsafe(4096);

export const nodeAuditCrypto: AuditCrypto = {
  sha256(...parts) {
    // one-shot crypto.hash (Node >= 20.12) is much cheaper than a Hash object for small inputs
    if (oneShot) {
      // one part (a leaf's prefixed text, see merkle.ts leafHashOfText): hashed where it is
      if (parts.length === 1) return oneShot('sha256', parts[0]!, 'buffer');
      let n = 0;
      for (const p of parts) n += p.length;
      // inputs are copied into a reused scratch buffer (crypto.hash returns a fresh digest)
      if (n > scratch.length) scratch = Buffer.allocUnsafe(Math.max(n, scratch.length * 2));
      const buf = scratch.subarray(0, n);
      let o = 0;
      for (const p of parts) {
        buf.set(p, o);
        o += p.length;
      }
      return oneShot('sha256', buf, 'buffer') as Buffer;
    }
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

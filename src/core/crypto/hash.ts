// SHA-256 of a UTF-8 string, as hex. Pure computation through node:crypto: one-shot
// `crypto.hash` where Node has it (>= 20.12: no Hash object built, updated and finalised per call —
// each one a native object the next minor GC has to finalise), the streaming form otherwise. The
// same bytes are hashed either way.
import * as nodeCrypto from 'node:crypto';

type OneShot = (alg: string, data: string, enc: 'hex') => string;
const oneShot = (nodeCrypto as unknown as { hash?: OneShot }).hash;

export const sha256Hex: (data: string) => string =
  typeof oneShot === 'function' ? (data) => oneShot('sha256', data, 'hex') : (data) => nodeCrypto.createHash('sha256').update(data).digest('hex');

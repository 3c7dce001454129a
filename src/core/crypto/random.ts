// Random bytes from the operating system's CSPRNG, drawn from a pool. `crypto.randomBytes(n)`
// per call creates a native job object each time, which the garbage collector finalises with a
// weak-handle callback: an authentication draws a nonce on each side, and those objects were a
// measurable part of a reader's scavenge pauses (docs/performance.md). The pool is refilled by one
// randomFillSync call per POOL bytes; every byte is handed out once and overwritten with zeros as
// it is taken, so the pool never holds bytes already given out. (Node's own randomUUID caches
// CSPRNG output the same way.)
import { randomFillSync } from 'node:crypto';

const POOL = 4096;
const pool = new Uint8Array(POOL);
let used = POOL; // empty until first use

/** `n` fresh random bytes (a new array the caller owns). */
export function randomBytesPooled(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('randomBytesPooled: n must be a non-negative integer');
  const out = new Uint8Array(n);
  if (n > POOL / 4) {
    randomFillSync(out);
    return out;
  }
  if (used + n > POOL) {
    randomFillSync(pool);
    used = 0;
  }
  const taken = pool.subarray(used, used + n);
  out.set(taken);
  taken.fill(0);
  used += n;
  return out;
}

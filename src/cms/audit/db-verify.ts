// Verify the live database offline: every stored entry body against its stored leaf hash,
// consecutive indexes, and every stored checkpoint (signature by the pinned key, root of the
// leaves). Reads in pages; never writes.
import type { DatabaseHandle } from '../storage/index.js';
import type { VerifierKey } from './checkpoint.js';
import { hex } from './crypto.js';
import { nodeAuditCrypto } from './node-crypto.js';
import { SqlAuditStore } from './store.js';
import { LogVerifier, type VerifyReport } from './verify.js';

export async function verifyDatabase(h: DatabaseHandle, key: VerifierKey, origin?: string): Promise<VerifyReport> {
  const store = new SqlAuditStore(h);
  const v = new LogVerifier({ crypto: nodeAuditCrypto, key, ...(origin !== undefined ? { origin } : {}) });
  for (const c of await store.checkpoints()) {
    if (!v.checkpoint(c.note)) return v.finish();
  }
  const end = await store.size();
  const prunedBefore = await store.prunedBefore();
  const PAGE = 10_000;
  for (let from = 0; from < end; from += PAGE) {
    const to = Math.min(end, from + PAGE);
    const [leaves, bodies] = await Promise.all([store.leaves(from, to), store.entries({ from, to, limit: PAGE })]);
    let k = 0;
    let expected = from;
    for (const l of leaves) {
      if (l.idx !== expected) {
        v.fail(expected, `leaf ${expected} is missing from the database (deleted)`);
        return v.finish();
      }
      const body = bodies[k];
      if (body && body.index === l.idx) {
        k++;
        if (!v.entry(body, hex(l.leaf))) return v.finish();
      } else if (l.idx >= prunedBefore) {
        v.fail(l.idx, `entry ${l.idx} was deleted (its leaf hash remains; retention only prunes below ${prunedBefore})`);
        return v.finish();
      } else if (!v.prunedLeaf(l.idx, hex(l.leaf))) return v.finish();
      expected++;
    }
    if (k < bodies.length) {
      v.fail(bodies[k]!.index, `entry ${bodies[k]!.index} has no leaf hash (inserted)`);
      return v.finish();
    }
  }
  // bodies beyond the last leaf (inserted rows)
  const extra = await store.entries({ from: end, limit: 1 });
  if (extra.length) v.fail(extra[0]!.index, `entry ${extra[0]!.index} has no leaf hash (inserted)`);
  return v.finish();
}

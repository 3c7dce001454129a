// JSONL export of the audit log (verifiable offline with verify.ts / `desfire-cms audit verify`).
//
//   {"type":"header","format":"desfire-cms-audit/1","origin":..,"vkey":..,"treeSize":N[,"view":{"tenant":..,"aids":[..]}]}
//   {"type":"checkpoint","size":S,"note":"<signed note>"}            every stored checkpoint <= N, ascending
//   {"type":"consistency","from":S1,"to":S2,"proof":["hex",..]}       between consecutive checkpoints
//   full export:  {"type":"entry","entry":{..},"leafHash":"hex"}       indexes 0..N-1 in order; the entry
//                 object is written with its keys in canonical order (exportEntryText), so the
//                 verifier can hash it without re-parsing (any JSON form still verifies)
//                 {"type":"leaf","index":i,"leafHash":"hex"}            an entry whose body retention pruned
//   tenant view:  {"type":"entry","entry":{..},"leafHash":"hex","proof":{"index":i,"treeSize":N,"hashes":[..]}}
//
// The export ends at the size of a checkpoint signed at export time, so every line is covered.
import { hex } from './crypto.js';
import { exportEntryText } from './entry.js';
import type { AuditLog } from './log.js';

export interface ExportOptions {
  /** Only this tenant's entries (by tenant, or by AID when `aids` is given), with inclusion proofs. */
  tenant?: string;
  aids?: string[];
  /** Receives each line (without newline); awaited, so a slow writer applies backpressure. */
  write(line: string): void | Promise<void>;
}

export interface ExportSummary {
  treeSize: number;
  entries: number;
  pruned: number;
  checkpoints: number;
}

const PAGE = 5_000;

export async function exportLog(log: AuditLog, opts: ExportOptions): Promise<ExportSummary> {
  const cp = await log.checkpoint();
  const n = cp.size;
  const isView = opts.tenant !== undefined || !!opts.aids?.length;
  const w = async (o: unknown) => opts.write(JSON.stringify(o));
  await w({
    type: 'header',
    format: 'desfire-cms-audit/1',
    origin: log.origin,
    vkey: log.vkey,
    treeSize: n,
    ...(isView ? { view: { ...(opts.tenant !== undefined ? { tenant: opts.tenant } : {}), ...(opts.aids?.length ? { aids: opts.aids } : {}) } } : {}),
  });
  const cps = (await log.checkpoints()).filter((c) => c.size <= n);
  for (const c of cps) await w({ type: 'checkpoint', size: c.size, note: c.note });
  for (let i = 1; i < cps.length; i++) {
    await w({ type: 'consistency', from: cps[i - 1]!.size, to: cps[i]!.size, proof: await log.consistencyProof(cps[i - 1]!.size, cps[i]!.size) });
  }
  let entries = 0;
  let pruned = 0;
  if (isView) {
    let from = 0;
    for (;;) {
      const { entries: page } = await log.view({ tenant: opts.tenant, aids: opts.aids, from, limit: PAGE }, cp);
      for (const v of page) await w({ type: 'entry', entry: v.entry, leafHash: v.leafHash, proof: v.proof });
      entries += page.length;
      if (page.length < PAGE) break;
      from = page[page.length - 1]!.entry.index + 1;
    }
  } else {
    for (let from = 0; from < n; from += PAGE) {
      const to = Math.min(n, from + PAGE);
      const bodies = await log.entries({ from, to, limit: PAGE });
      let k = 0;
      for (let i = from; i < to; i++) {
        const body = bodies[k];
        if (body && body.index === i) {
          // the entry in canonical key order (spliced in as text): a verifier hashes it as is
          await opts.write(`{"type":"entry","entry":${exportEntryText(body)},"leafHash":"${hex(log.leafHash(i))}"}`);
          k++;
          entries++;
        } else {
          await w({ type: 'leaf', index: i, leafHash: hex(log.leafHash(i)) });
          pruned++;
        }
      }
    }
  }
  return { treeSize: n, entries, pruned, checkpoints: cps.length };
}

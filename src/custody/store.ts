// Storage of the embedded vault: a tiny row store (id -> bytes) with one atomic operation,
// compare-and-swap on a guard row. The embedded backend keeps its config, its authenticated
// manifest and one encrypted row per key in it; nothing stored is plaintext key material.
import { equalCT } from '../core/crypto/bytes.js';

export interface VaultRow {
  id: string;
  data: Uint8Array;
}

export interface VaultStore {
  get(id: string): Promise<Uint8Array | undefined>;
  /** Every row whose id starts with `prefix`. */
  list(prefix: string): Promise<VaultRow[]>;
  /**
   * Atomically: if row `guard` currently holds `expected` (undefined = absent), apply `puts` and
   * `deletes` and return true; otherwise change nothing and return false.
   */
  commit(guard: string, expected: Uint8Array | undefined, puts: VaultRow[], deletes: string[]): Promise<boolean>;
  close(): Promise<void>;
}

function same(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return equalCT(a, b);
}

export class MemoryVaultStore implements VaultStore {
  /** Exposed for tamper tests. */
  readonly rows = new Map<string, Uint8Array>();

  async get(id: string): Promise<Uint8Array | undefined> {
    const v = this.rows.get(id);
    return v && v.slice();
  }

  async list(prefix: string): Promise<VaultRow[]> {
    return [...this.rows.entries()].filter(([id]) => id.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, data]) => ({ id, data: data.slice() }));
  }

  async commit(guard: string, expected: Uint8Array | undefined, puts: VaultRow[], deletes: string[]): Promise<boolean> {
    if (!same(this.rows.get(guard), expected)) return false;
    for (const p of puts) this.rows.set(p.id, p.data.slice());
    for (const d of deletes) this.rows.delete(d);
    return true;
  }

  async close(): Promise<void> {}
}

// Certificate revocation: a small store interface (memory here; the domain's SQL repository
// implements it over the readers' certificates table) and the CRL the CA signs over it.
export interface RevokedEntry {
  serial: string;
  revokedAt: Date;
  reason: string;
}

export interface RevocationList {
  revoke(serial: string, reason: string, at?: Date): Promise<void>;
  isRevoked(serial: string): Promise<boolean>;
  list(): Promise<RevokedEntry[]>;
}

const norm = (s: string) => s.toLowerCase().replace(/^0+(?=.)/, '');

export class MemoryRevocationList implements RevocationList {
  private readonly entries = new Map<string, RevokedEntry>();
  async revoke(serial: string, reason: string, at = new Date()): Promise<void> {
    if (!this.entries.has(norm(serial))) this.entries.set(norm(serial), { serial: norm(serial), revokedAt: at, reason });
  }
  async isRevoked(serial: string): Promise<boolean> {
    return this.entries.has(norm(serial));
  }
  async list(): Promise<RevokedEntry[]> {
    return [...this.entries.values()];
  }
}

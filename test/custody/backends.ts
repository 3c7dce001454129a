// The backends the conformance suite runs against. Each factory returns a fresh, empty custody.
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { MemoryVaultStore } from '../../src/custody/store.js';
import type { KeyCustody } from '../../src/custody/types.js';
import type { Availability } from '../helpers/system.js';

export interface BackendUnderTest {
  custody: KeyCustody;
  audit: MemoryAuditSink;
  /** Make the backend refuse key operations as "sealed" (embedded only). */
  seal?: () => Promise<void>;
  cleanup(): Promise<void>;
}

export interface BackendFactory {
  name: string;
  /** A component name for requireComponent, or undefined when always available. */
  component?: string;
  available(): Promise<Availability>;
  make(): Promise<BackendUnderTest>;
}

export const embeddedFactory: BackendFactory = {
  name: 'embedded',
  available: async () => ({ ok: true, reason: '' }),
  async make() {
    const vault = await EmbeddedVault.open(new MemoryVaultStore());
    await vault.init({ passphrase: 'correct horse battery staple', scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    const audit = new MemoryAuditSink();
    const custody = vault.custody(audit);
    return { custody, audit, seal: () => vault.seal(), cleanup: () => custody.close() };
  },
};

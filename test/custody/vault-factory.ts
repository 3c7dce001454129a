// vault-transit for the conformance suite: a real Vault when VAULT_ADDR and VAULT_TOKEN are set
// (keys under a random prefix on the `transit` mount, or DESFIRE_TEST_VAULT_MOUNT), otherwise
// visible skip. The local Transit emulation runs as its own conformance entry.
import { randomBytes } from 'node:crypto';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { MemoryVaultStore } from '../../src/custody/store.js';
import { VaultTransitEngine } from '../../src/custody/vault-transit.js';
import type { BackendFactory } from './backends.js';
import { FakeTransit } from './transit-server.js';

export const vaultFactory: BackendFactory = {
  name: 'vault-transit (real Vault)',
  available: async () =>
    process.env.VAULT_ADDR && process.env.VAULT_TOKEN ? { ok: true, reason: '' } : { ok: false, reason: 'VAULT_ADDR and VAULT_TOKEN not set: real Vault Transit tests skipped' },
  async make() {
    const engine = await VaultTransitEngine.open({
      addr: process.env.VAULT_ADDR!,
      auth: { token: process.env.VAULT_TOKEN! },
      mount: process.env.DESFIRE_TEST_VAULT_MOUNT ?? 'transit',
      prefix: `dcmst${randomBytes(3).toString('hex')}-`,
      masterStore: new MemoryVaultStore(),
      ...(process.env.VAULT_NAMESPACE ? { namespace: process.env.VAULT_NAMESPACE } : {}),
    });
    const audit = new MemoryAuditSink();
    const custody = engine.custody(audit);
    return { custody, audit, cleanup: () => custody.close() };
  },
};

export const fakeTransitFactory: BackendFactory = {
  name: 'vault-transit (local Transit emulation)',
  available: async () => ({ ok: true, reason: '' }),
  async make() {
    const server = await new FakeTransit().start();
    const engine = await VaultTransitEngine.open({ addr: server.addr, auth: { roleId: 'role-1', secretId: 'secret-1' }, masterStore: new MemoryVaultStore() });
    const audit = new MemoryAuditSink();
    const custody = engine.custody(audit);
    return {
      custody,
      audit,
      async cleanup() {
        await custody.close();
        await server.stop();
      },
    };
  },
};

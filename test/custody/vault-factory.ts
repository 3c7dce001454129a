import type { BackendFactory } from './backends.js';
export const vaultFactory: BackendFactory = {
  name: 'vault-transit',
  available: async () => ({ ok: false, reason: 'not yet implemented' }),
  make: () => Promise.reject(new Error('not implemented')),
};

import type { BackendFactory } from './backends.js';
export const pkcs11Factory: BackendFactory = {
  name: 'pkcs11',
  available: async () => ({ ok: false, reason: 'not yet implemented' }),
  make: () => Promise.reject(new Error('not implemented')),
};

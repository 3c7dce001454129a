// PKCS#11-specific properties on SoftHSM2 (the shared behaviour is in conformance.test.ts).
import { randomBytes } from 'node:crypto';
import type * as P11 from 'pkcs11js';
import { describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { Pkcs11Engine } from '../../src/custody/pkcs11.js';
import type { CallerContext, KeyBinding } from '../../src/custody/types.js';
import { requireComponent } from '../helpers/system.js';
import { softHsmAvailable, softHsmToken } from './softhsm.js';

const ctx: CallerContext = { actor: 'op', purpose: 'test', correlationId: 'p-1' };
const run = requireComponent('SoftHSM2', await softHsmAvailable());

describe.skipIf(!run)('pkcs11 backend on SoftHSM2', () => {
  it('keeps KEKs and masters as sensitive, non-extractable token objects and never stores per-card keys', async () => {
    const t = softHsmToken();
    const ns = `x${randomBytes(4).toString('hex')}`;
    const engine = await Pkcs11Engine.open({ ...t, namespace: ns });
    const c = engine.custody(new MemoryAuditSink());
    try {
      await c.createKey(ctx, 'kek', { purpose: 'wrap' });
      await c.createKey(ctx, 'm', { purpose: 'diversify', alg: 'aes128' });
      const mod = (await import('pkcs11js')) as unknown as typeof P11 & { default?: typeof P11 };
      const m = mod.default ?? mod;
      const p = new m.PKCS11();
      p.load(t.library);
      // the module is already initialised in this process by the engine
      try {
        p.C_Initialize();
      } catch {
        /* CKR_CRYPTOKI_ALREADY_INITIALIZED */
      }
      const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === t.tokenLabel)!;
      const s = p.C_OpenSession(slot, m.CKF_SERIAL_SESSION | m.CKF_RW_SESSION);
      const count = () => {
        p.C_FindObjectsInit(s, [{ type: m.CKA_TOKEN, value: true }]);
        const hs = p.C_FindObjects(s, 100000);
        p.C_FindObjectsFinal(s);
        return hs.filter((h) => p.C_GetAttributeValue(s, h, [{ type: m.CKA_LABEL }])[0]!.value.toString().startsWith(`${ns}:`));
      };
      const before = count();
      for (const h of before) {
        const [cls] = p.C_GetAttributeValue(s, h, [{ type: m.CKA_CLASS }]);
        if (cls!.value.readUInt32LE(0) !== m.CKO_SECRET_KEY) continue;
        const [sens, ext] = p.C_GetAttributeValue(s, h, [{ type: m.CKA_SENSITIVE }, { type: m.CKA_EXTRACTABLE }]);
        expect(sens!.value[0]).toBe(1);
        expect(ext!.value[0]).toBe(0);
        expect(() => p.C_GetAttributeValue(s, h, [{ type: m.CKA_VALUE }])).toThrow(/SENSITIVE/);
      }
      for (let i = 0; i < 20; i++) {
        const b: KeyBinding = { tenant: 't', aid: 'F00001', uid: `04A1B2C3${i.toString(16).padStart(6, '0')}`, keyNo: 1, version: 1 };
        const w = await c.generateKey(ctx, 'kek', 'aes128', b);
        await c.exportForCard(ctx, { kind: 'wrapped', kek: 'kek', blob: w.blob, binding: b });
        await c.exportForCard(ctx, { kind: 'diversified', master: 'm', input: Uint8Array.of(i), binding: b });
      }
      expect(count()).toHaveLength(before.length);
      p.C_CloseSession(s);
    } finally {
      await engine.destroyNamespace();
      await c.close();
    }
  });

  it('a wrong PIN or an unknown token is a typed backend error', async () => {
    const t = softHsmToken();
    await expect(Pkcs11Engine.open({ ...t, tokenLabel: 'no-such-token' })).rejects.toMatchObject({ code: 'ERR_CUSTODY_BACKEND' });
    const ok = await Pkcs11Engine.open(t);
    // the same token by slot ID
    const mod = (await import('pkcs11js')) as unknown as typeof P11 & { default?: typeof P11 };
    const p = new (mod.default ?? mod).PKCS11();
    p.load(t.library);
    try {
      p.C_Initialize();
    } catch {
      /* already initialised */
    }
    const slotBuf = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === t.tokenLabel)!;
    const bySlot = await Pkcs11Engine.open({ library: t.library, pin: t.pin, slot: slotBuf.readUIntLE(0, Math.min(6, slotBuf.length)) });
    await bySlot.close();
    await expect(Pkcs11Engine.open({ library: t.library, pin: t.pin, slot: 424242 })).rejects.toMatchObject({ code: 'ERR_CUSTODY_BACKEND' });
    await expect(Pkcs11Engine.open({ ...t, pin: 'wrong-pin' })).rejects.toMatchObject({ code: 'ERR_CUSTODY_BACKEND' });
    await ok.close();
  });
});

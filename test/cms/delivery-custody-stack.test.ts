// The custody stack a delivery goes through (timedCustody(vaultGate(custody)), as the CMS builds
// it) and the diversification input the delivery builds: results, errors and metrics unchanged.
import { describe, expect, it } from 'vitest';
import { fromHex } from '../../src/core/crypto/bytes.js';
import { vaultGate } from '../../src/cms/approvals/unseal.js';
import { diversificationInput, masterKeyName } from '../../src/cms/jobs/keys.js';
import type { Derivation } from '../../src/cms/layout/index.js';
import { timedCustody } from '../../src/cms/ops/custody-metrics.js';
import { type CustodyObservation, NO_METRICS } from '../../src/cms/ops/metrics.js';
import { MemoryAuditSink } from '../../src/custody/audit.js';
import { EmbeddedVault } from '../../src/custody/embedded.js';
import { generateReaderKeyPair, ReaderUnsealer } from '../../src/custody/sealed.js';
import { MemoryVaultStore } from '../../src/custody/store.js';
import type { KeyCustody } from '../../src/custody/types.js';

type Div = Extract<Derivation, { method: 'diversified' }>;
const ctx = { actor: 'reader:door-1', purpose: 'key_delivery', correlationId: 'c-1' };

/** The input as the layout defines it, built the straightforward way (the reference). */
function reference(d: Div, app: { aid: string; systemIdentifier: string }, uid: string, keyNo: number): Uint8Array {
  const parts = d.input.map((i) => (i === 'uid' ? fromHex(uid) : i === 'aid' ? fromHex(app.aid).reverse() : i === 'system' ? fromHex(app.systemIdentifier) : Uint8Array.of(keyNo)));
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

const div = (input: Div['input']): Div => ({ method: 'diversified', master: 'campus/A1C001/1', masterDeclared: false, input });

describe('diversificationInput', () => {
  it('is the layout input byte for byte: every order, case, separator, empty system identifier, key number', () => {
    const inputs: Div['input'][] = [['uid', 'aid', 'system'], ['aid', 'system'], ['uid', 'aid', 'system', 'keyNo'], ['keyNo', 'system', 'uid'], ['uid'], ['aid', 'uid', 'aid']] as Div['input'][];
    const apps = [{ aid: 'A1C001', systemIdentifier: '43414d505553' }, { aid: 'f00001', systemIdentifier: '' }, { aid: 'CAFE01', systemIdentifier: 'AbCdEf0123' }];
    const uids = ['04A1B2C3D4E5F6', '04a1b2c3d4e5f6', '08ABCDEF', '04:A1:B2:C3:D4:E5:F6', '04 a1-b2 c3d4e5f6', '0102030405060708090A', ''];
    for (const input of inputs)
      for (const app of apps)
        for (const uid of uids)
          for (const keyNo of [0, 1, 13, 256 + 7]) expect(diversificationInput(div(input), app, uid, keyNo)).toEqual(reference(div(input), app, uid, keyNo));
  });

  it('bad hex is the same typed error, and a definition changed in place is read anew', () => {
    const app = { aid: 'A1C001', systemIdentifier: '43414d505553' };
    const d = div(['uid', 'aid', 'system']);
    for (const uid of ['04A1B2C3D4E5F', '04A1B2C3D4E5FG', '0x04A1'])
      expect(() => diversificationInput(d, app, uid, 1)).toThrow(expect.objectContaining({ code: 'ERR_HEX', message: (() => { try { fromHex(uid); } catch (e) { return (e as Error).message; } return ''; })() }));
    expect(diversificationInput(d, app, '04A1B2C3D4E5F6', 1)).toEqual(reference(d, app, '04A1B2C3D4E5F6', 1));
    app.aid = 'A1C002';
    app.systemIdentifier = '00';
    expect(diversificationInput(d, app, '04A1B2C3D4E5F6', 1)).toEqual(reference(d, app, '04A1B2C3D4E5F6', 1));
    app.systemIdentifier = 'zz';
    expect(() => diversificationInput(d, app, '04A1B2C3D4E5F6', 1)).toThrow(expect.objectContaining({ code: 'ERR_HEX' }));
    expect(diversificationInput(div(['uid', 'aid']), app, '04A1B2C3D4E5F6', 1)).toEqual(reference(div(['uid', 'aid']), app, '04A1B2C3D4E5F6', 1)); // the system identifier unused: not read
    expect([masterKeyName('campus/A1C001/1'), masterKeyName('campus/A1C001/1'), masterKeyName('a/b')]).toEqual(['campus.A1C001.1', 'campus.A1C001.1', 'a.b']);
  });
});

describe('timedCustody over vaultGate over the embedded vault', () => {
  async function stack() {
    const v = await EmbeddedVault.open(new MemoryVaultStore());
    await v.init({ passphrase: 'correct horse battery', scrypt: { N: 1024, r: 8, p: 1 } });
    const sink = new MemoryAuditSink();
    const inner = v.custody(sink);
    await inner.createKey(ctx, 'campus.A1C001.1', { purpose: 'diversify', alg: 'aes128' });
    const seen: CustodyObservation[] = [];
    const custody = timedCustody(vaultGate(inner), 'embedded', { ...NO_METRICS, custodyOp: (o) => seen.push(o) });
    return { v, sink, custody, seen };
  }
  const kp = generateReaderKeyPair();
  const recipient = { readerId: 'door-1', publicKey: kp.publicKey };
  const binding = { tenant: 'campus', aid: 'A1C001', uid: '04A1B2C3D4E5F6', keyNo: 1, version: 1 };
  const source = () => ({ kind: 'diversified' as const, master: 'campus.A1C001.1', masterVersion: 1, input: diversificationInput(div(['uid', 'aid', 'system']), { aid: 'A1C001', systemIdentifier: '43414d505553' }, binding.uid, 1), binding });

  it('a delivery: sealed key out, one observation per call recorded before the caller continues, errors as they were', async () => {
    const { v, custody, seen } = await stack();
    const s = await custody.seal(ctx, source(), recipient, { ttlSeconds: 60 });
    expect(seen.map((o) => [o.backend, o.op, o.result])).toEqual([['embedded', 'seal', 'ok']]);
    expect((await new ReaderUnsealer('door-1', kp.privateKey).unseal(s, binding)).length).toBe(16);
    await expect(custody.seal(ctx, { ...source(), master: 'campus.none' }, recipient)).rejects.toMatchObject({ code: 'ERR_CUSTODY_UNKNOWN_KEY' });
    expect(seen.map((o) => o.result)).toEqual(['ok', 'error']);
    await v.seal();
    await expect(custody.seal(ctx, source(), recipient)).rejects.toMatchObject({ code: 'ERR_VAULT_SEALED', status: 503 });
    expect(seen.map((o) => o.result)).toEqual(['ok', 'error', 'error']);
    expect(seen.every((o) => o.seconds >= 0 && o.seconds < 60)).toBe(true);
  });

  it('a method that throws synchronously or answers without a promise: still a promise, still observed', async () => {
    const seen: CustodyObservation[] = [];
    const boom = Object.assign(new Error('boom'), { code: 'ERR_CUSTODY_BACKEND' });
    const inner = {
      getKey: () => {
        throw boom;
      },
      listKeys: () => [],
    } as unknown as KeyCustody;
    const c = timedCustody(inner, 'pkcs11', { ...NO_METRICS, custodyOp: (o) => seen.push(o) });
    let p: Promise<unknown> | undefined;
    expect(() => (p = c.getKey(ctx, 'k'))).not.toThrow();
    await expect(p).rejects.toBe(boom);
    const l = c.listKeys(ctx);
    expect(l).toBeInstanceOf(Promise);
    expect(await l).toEqual([]);
    expect(seen.map((o) => [o.backend, o.op, o.result])).toEqual([
      ['pkcs11', 'getKey', 'error'],
      ['pkcs11', 'listKeys', 'ok'],
    ]);
    // metrics never fail a call
    const failing = timedCustody({ getKeys: async () => ['x'] } as unknown as KeyCustody, 'embedded', {
      ...NO_METRICS,
      custodyOp: () => {
        throw new Error('metrics down');
      },
    });
    expect(await failing.getKeys(ctx, ['x'])).toEqual(['x']);
  });
});

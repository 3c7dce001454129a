// Session rules of the DesfireClient, with a recording HostSession and scripted transports.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { fromHex, toHex } from '../../src/core/crypto/bytes.js';
import { DesfireError, FrameError, IntegrityError, SessionError } from '../../src/core/errors.js';
import { Ev2HostSession } from '../../src/core/sm/ev2.js';
import type { CommMode, HostSession } from '../../src/core/sm/types.js';
import type { Transport } from '../../src/core/transport.js';
import { DesfireClient } from '../../src/core/client/index.js';
import { CardStatusError, ValueRangeError, unwrapCommand, wrapResponse } from '../../src/core/protocol/index.js';

/** A HostSession that records calls and passes data through (MAC-free), or fails on demand. */
class RecordingSession implements HostSession {
  readonly kind: 'd40' | 'ev1' | 'ev2';
  readonly keyNo = 1;
  calls: string[] = [];
  destroyed = false;
  failUnwrap = false;
  constructor(kind: 'd40' | 'ev1' | 'ev2' = 'ev2') {
    this.kind = kind;
  }
  wrapCommand(ins: number, header: Uint8Array, data: Uint8Array, comm: CommMode): Uint8Array {
    this.calls.push(`wrap ${ins.toString(16)} ${toHex(header)}|${toHex(data)} ${comm}`);
    return Uint8Array.from([...header, ...data]);
  }
  unwrapResponse(ins: number, status: number, body: Uint8Array, comm: CommMode, plainLength?: number): Uint8Array {
    this.calls.push(`unwrap ${ins.toString(16)} ${comm}${plainLength === undefined ? '' : ` ${plainLength}`}`);
    if (this.failUnwrap) throw new IntegrityError('test: bad MAC');
    return body;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

/** A card stand-in: answers each INS from a table (default 9100), records the native frames. */
function tableCard(answers: Record<number, string> = {}): Transport & { frames: string[] } {
  const frames: string[] = [];
  return {
    frames,
    async transmit(apdu) {
      const f = unwrapCommand(apdu);
      frames.push(`${f.ins.toString(16)}:${toHex(f.data)}`);
      return fromHex(answers[f.ins] ?? '9100');
    },
  };
}

describe('client comm modes per command (recorded)', () => {
  it('EV2 session: management MAC, file modes from the caller, ChangeKeySettings full', async () => {
    const t = tableCard({ 0x64: '019100', 0x6c: '0A0000009100', 0xbd: '0102039100' });
    const c = new DesfireClient(t);
    const s = new RecordingSession('ev2');
    c.adoptSession(s);
    await c.getKeyVersion(3);
    await c.readData(2, 1, 3, { comm: 'full' });
    await c.writeData(2, 0, fromHex('AABB'), { comm: 'mac' });
    expect(await c.getValue(4, { comm: 'plain' })).toBe(10);
    await c.changeKeySettings(0x0f);
    await c.commitTransaction();
    expect(s.calls).toEqual([
      'wrap 64 03| mac', 'unwrap 64 mac',
      'wrap bd 02010000030000| mac', 'unwrap bd full 3',
      'wrap 3d 02000000020000|AABB mac', 'unwrap 3d mac',
      'wrap 6c 04| plain', 'unwrap 6c plain 4',
      'wrap 54 |0F full', 'unwrap 54 mac',
      'wrap c7 | mac', 'unwrap c7 mac',
    ]);
    expect(s.destroyed).toBe(false);
  });

  it('EV1 session: management commands plain, responses MAC', async () => {
    const c = new DesfireClient(tableCard());
    const s = new RecordingSession('ev1');
    c.adoptSession(s);
    await c.deleteFile(5);
    await c.writeData(1, 0, fromHex('01'), { comm: 'plain' });
    expect(s.calls).toEqual(['wrap df 05| plain', 'unwrap df mac', 'wrap 3d 01000000010000|01 plain', 'unwrap 3d mac']);
  });

  it("'auto' asks GetFileSettings once per file and applies the file's mode", async () => {
    // file 1: std, full, R=1 W=1 RW=1 C=0, 32 bytes
    const t = tableCard({ 0xf5: '0003111120000091' + '00', 0xbd: '00009100' });
    const c = new DesfireClient(t);
    const s = new RecordingSession('ev2');
    c.adoptSession(s);
    await c.readData(1, 0, 2);
    await c.readData(1, 0, 2);
    expect(t.frames.filter((f) => f.startsWith('f5'))).toHaveLength(1);
    expect(s.calls.filter((x) => x.startsWith('unwrap bd'))).toEqual(['unwrap bd full 2', 'unwrap bd full 2']);
    await c.selectApplication(1);
    expect(s.destroyed).toBe(true);
  });
});

describe('client session rules', () => {
  it('SelectApplication ends the session, even when it fails', async () => {
    const c = new DesfireClient(tableCard({ 0x5a: '91A0' }));
    const s = new RecordingSession();
    c.adoptSession(s);
    await expect(c.selectApplication(0x123456)).rejects.toMatchObject({ code: 'ERR_CARD_APPLICATION_NOT_FOUND' });
    expect(s.destroyed).toBe(true);
    expect(c.session).toBeUndefined();
    expect(s.calls).toEqual([]);
  });

  it('an error status ends the session and returns nothing', async () => {
    const c = new DesfireClient(tableCard({ 0x6a: '917E' }));
    const s = new RecordingSession();
    c.adoptSession(s);
    const e = await c.getApplicationIds().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CardStatusError);
    expect((e as CardStatusError).statusName).toBe('LENGTH_ERROR');
    expect(s.destroyed).toBe(true);
  });

  it('an integrity failure ends the session', async () => {
    const c = new DesfireClient(tableCard({ 0xbd: '0102039100' }));
    const s = new RecordingSession();
    s.failUnwrap = true;
    c.adoptSession(s);
    await expect(c.readData(1, 0, 3, { comm: 'mac' })).rejects.toThrow(IntegrityError);
    expect(c.session).toBeUndefined();
  });

  it('a transport failure ends the session (its state is unknown)', async () => {
    const c = new DesfireClient({ async transmit() { throw new Error('reader gone'); } });
    const s = new RecordingSession();
    c.adoptSession(s);
    await expect(c.getVersion()).rejects.toThrow('reader gone');
    expect(s.destroyed).toBe(true);
  });

  it('bad arguments send nothing and keep the session', async () => {
    const t = tableCard();
    const c = new DesfireClient(t);
    const s = new RecordingSession();
    c.adoptSession(s);
    await expect(c.readData(32, 0, 1)).rejects.toThrow(ValueRangeError);
    await expect(c.readData(1, 0x1000000, 1)).rejects.toThrow(ValueRangeError);
    await expect(c.writeData(1, 0, new Uint8Array(0))).rejects.toThrow(ValueRangeError);
    await expect(c.debit(1, 2 ** 31)).rejects.toThrow(ValueRangeError);
    await expect(c.getKeyVersion(14)).rejects.toThrow(ValueRangeError);
    await expect(c.readData(1, 0, 1, { comm: 'enciphered' as never })).rejects.toMatchObject({ field: 'comm' });
    await expect(c.selectApplication(-1)).rejects.toThrow(ValueRangeError);
    await expect(c.authenticate(14, new Uint8Array(16), { method: 'ev2' })).rejects.toThrow(ValueRangeError);
    await expect(c.authenticate(0, new Uint8Array(8), { method: 'ev2' })).rejects.toThrow(ValueRangeError);
    await expect(c.authenticate(0, new Uint8Array(8), { method: 'aes', keyType: 'des' })).rejects.toMatchObject({ field: 'keyType' });
    await expect(c.authenticate(0, new Uint8Array(16), { method: 'd40', keyType: '3k3des' })).rejects.toThrow(ValueRangeError);
    await expect(c.changeKey(1, new Uint8Array(15), { keyType: 'aes' })).rejects.toMatchObject({ field: 'newKey' });
    await expect(c.changeKey(1, new Uint8Array(16), { keyType: 'aes', oldKey: new Uint8Array(8) })).rejects.toMatchObject({ field: 'oldKey' });
    await expect(c.changeKey(1, new Uint8Array(16), { keyType: 'aes', keyVersion: 256 })).rejects.toThrow(ValueRangeError);
    expect(t.frames).toEqual([]);
    expect(s.destroyed).toBe(false);
    expect(c.session).toBe(s);
  });

  it('protected modes without a session are refused before sending', async () => {
    const t = tableCard();
    const c = new DesfireClient(t);
    await expect(c.readData(1, 0, 1, { comm: 'mac' })).rejects.toThrow(SessionError);
    await expect(c.changeKeySettings(0x0f)).rejects.toThrow(SessionError);
    await expect(c.changeKey(1, new Uint8Array(16), { keyType: 'aes' })).rejects.toThrow(SessionError);
    await expect(c.authenticate(0, new Uint8Array(16), { method: 'ev2', nonFirst: true })).rejects.toThrow(SessionError);
    expect(t.frames).toEqual([]);
  });

  it('deleting the selected application returns to the PICC level and ends the session', async () => {
    const c = new DesfireClient(tableCard());
    await c.selectApplication(0x010203);
    expect(c.selectedAid).toBe(0x010203);
    const s = new RecordingSession();
    c.adoptSession(s);
    await c.deleteApplication(0x010203);
    expect(c.selectedAid).toBe(0);
    expect(s.destroyed).toBe(true);
  });

  it('serialises concurrent calls: one exchange at a time', async () => {
    let busy = false;
    let max = 0;
    const t: Transport = {
      async transmit(apdu) {
        expect(busy).toBe(false);
        busy = true;
        await new Promise((r) => setTimeout(r, 1));
        busy = false;
        max++;
        const f = unwrapCommand(apdu);
        return f.ins === 0x6e ? fromHex('0010009100') : wrapResponse(0, new Uint8Array(0));
      },
    };
    const c = new DesfireClient(t);
    const r = await Promise.all([c.getFreeMemory(), c.getFreeMemory(), c.getApplicationIds(), c.getFreeMemory()]);
    expect(r).toEqual([4096, 4096, [], 4096]);
    expect(max).toBe(4);
  });
});

describe('client robustness against arbitrary card answers', () => {
  const answers = fc.array(fc.uint8Array({ maxLength: 70 }), { minLength: 1, maxLength: 4 });
  function replay(rs: Uint8Array[]): Transport {
    let i = 0;
    return { async transmit() { return rs[i++ % rs.length]!; } };
  }
  const ops: ((c: DesfireClient) => Promise<unknown>)[] = [
    (c) => c.getVersion(), (c) => c.getFileSettings(1), (c) => c.readData(1, 0, 0, { comm: 'full' }),
    (c) => c.getValue(2, { comm: 'mac' }), (c) => c.getApplicationIds(), (c) => c.getKeySettings(), (c) => c.getCardUid(),
    (c) => c.readSig(), (c) => c.writeData(1, 0, new Uint8Array(70), { comm: 'full' }),
    (c) => c.authenticate(0, new Uint8Array(16), { method: 'ev2' }), (c) => c.authenticate(0, new Uint8Array(16), { method: 'aes' }),
    (c) => c.authenticate(0, new Uint8Array(8), { method: 'd40' }), (c) => c.authenticate(0, new Uint8Array(24), { method: 'iso', keyType: '3k3des' }),
    (c) => c.changeKey(1, new Uint8Array(16), { keyType: 'aes', oldKey: new Uint8Array(16) }),
  ];
  it('every answer gives a value or a typed error (plain and EV2 sessions), never a crash', async () => {
    await fc.assert(fc.asyncProperty(answers, fc.integer({ min: 0, max: ops.length - 1 }), fc.boolean(), async (rs, op, withSession) => {
      // answers that look like real ones more often: append a 91 status to some
      const c = new DesfireClient(replay(rs.map((r, i) => (i % 2 === 0 ? Uint8Array.from([...r, 0x91, r.length % 3 === 0 ? 0xaf : 0x00]) : r))));
      if (withSession) c.adoptSession(new Ev2HostSession({ keyNo: 0, ti: new Uint8Array(4), cmdCtr: 0, encKey: new Uint8Array(16), macKey: new Uint8Array(16) }));
      try {
        await ops[op]!(c);
      } catch (e) {
        expect(e).toBeInstanceOf(DesfireError);
        if (withSession) expect(c.session).toBeUndefined();
      }
    }), { numRuns: 400 });
  });

  it('authentication answers of the right shape but wrong content: a typed error, no session', async () => {
    const methods = [
      { method: 'ev2' as const, key: 16, n: 16, last: [32, 16] }, { method: 'aes' as const, key: 16, n: 16, last: [16, 15] },
      { method: 'd40' as const, key: 8, n: 8, last: [8, 9] }, { method: 'iso' as const, key: 24, n: 16, last: [16, 8] },
    ];
    await fc.assert(fc.asyncProperty(fc.constantFrom(...methods), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.boolean(), async (m, rnd, short) => {
      const first = Uint8Array.from([...rnd.slice(0, m.n), 0x91, 0xaf]);
      const len = short ? m.last[1]! : m.last[0]!;
      const second = Uint8Array.from([...rnd.slice(0, len).reverse(), 0x91, 0x00]);
      const c = new DesfireClient(replay([first, second]));
      const keyType = m.method === 'iso' ? '3k3des' as const : undefined;
      const e = await c.authenticate(0, new Uint8Array(m.key), { method: m.method, ...(keyType ? { keyType } : {}) }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DesfireError);
      expect(c.session).toBeUndefined();
    }), { numRuns: 200 });
  });

  it('a response frame that is not 91 xx is a FrameError', async () => {
    const c = new DesfireClient(replay([fromHex('6A82')]));
    await expect(c.getVersion()).rejects.toThrow(FrameError);
  });
});

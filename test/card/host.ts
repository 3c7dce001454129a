// A minimal host for driving the virtual card in tests: A2's framing/chaining (src/core/protocol)
// and A's authentication, secure messaging and ChangeKey cryptograms (src/core/auth, src/core/sm),
// over an in-memory transport. (The full DesfireClient is exercised in client-card.test.ts.)
import { randomBytes } from 'node:crypto';
import { authenticateHost, changeKeyPayload, finishChangeKey, type AuthMethod, type ChangeKeyRequest } from '../../src/core/auth/index.js';
import type { KeyType } from '../../src/core/crypto/cipher.js';
import { exchange } from '../../src/core/protocol/chaining.js';
import type { CommMode, HostSession } from '../../src/core/sm/types.js';
import type { Transport } from '../../src/core/transport.js';
import { VirtualCard, type VirtualCardOptions } from '../../src/card/index.js';
import { DesfireClient } from '../../src/core/client/index.js';
import { CardStatusError } from '../../src/core/protocol/status.js';

export class StatusError extends Error {
  constructor(readonly status: number) {
    super(`card status ${status.toString(16).padStart(2, '0')}`);
  }
}

export const rnd = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

export function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
}

export function aidBytes(aid: number): Uint8Array {
  return Uint8Array.of(aid & 0xff, (aid >> 8) & 0xff, aid >> 16);
}

export function hdr(fileNo: number, offset: number, length: number): Uint8Array {
  return Uint8Array.of(fileNo, offset & 0xff, (offset >> 8) & 0xff, offset >> 16, length & 0xff, (length >> 8) & 0xff, length >> 16);
}

export function i32(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff);
}

export class Host {
  session: HostSession | undefined;
  readonly transport: Transport;
  apdus = 0;

  constructor(readonly card: VirtualCard) {
    this.transport = {
      transmit: async (a) => {
        this.apdus++;
        return card.process(a);
      },
    };
  }

  static fresh(opts: VirtualCardOptions = {}): Host {
    return new Host(VirtualCard.create({ strict: true, ...opts }));
  }

  /** The comm mode of commands that are not about a file (EV2 MAC'd; EV1/D40 plain + response MAC). */
  get macComm(): CommMode {
    return this.session?.kind === 'ev2' ? 'mac' : 'plain';
  }

  /** Send a command through secure messaging; throws StatusError on an error status. */
  async cmd(ins: number, header: Uint8Array = new Uint8Array(0), data: Uint8Array = new Uint8Array(0), comm?: CommMode, respComm?: CommMode, plainLength?: number): Promise<Uint8Array> {
    const c = comm ?? this.macComm;
    const s = this.session;
    const payload = s ? s.wrapCommand(ins, header, data, c) : new Uint8Array([...header, ...data]);
    const r = await exchange(this.transport, ins, payload);
    if (r.status !== 0x00) {
      s?.destroy();
      this.session = undefined;
      throw new StatusError(r.status);
    }
    return s ? s.unwrapResponse(ins, r.status, r.data, respComm ?? c, plainLength) : r.data;
  }

  /** Expect an error status. */
  async fails(status: number, p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (e) {
      if (e instanceof StatusError) {
        if (e.status !== status) throw new Error(`expected status ${status.toString(16)}, got ${e.status.toString(16)}`);
        return;
      }
      throw e;
    }
    throw new Error(`expected status ${status.toString(16)}, got success`);
  }

  async select(aid: number): Promise<void> {
    this.session?.destroy();
    this.session = undefined;
    const r = await exchange(this.transport, 0x5a, aidBytes(aid));
    if (r.status !== 0) throw new StatusError(r.status);
  }

  async auth(method: AuthMethod, keyNo: number, key: Uint8Array, keyType: KeyType, pcdCap2?: Uint8Array): Promise<HostSession> {
    const previous = method === 'ev2nonfirst' ? this.session : undefined;
    if (method !== 'ev2nonfirst') {
      this.session?.destroy();
      this.session = undefined;
    }
    const ex = async (ins: number, data: Uint8Array) => exchange(this.transport, ins, data, { stopOnAdditionalFrame: true });
    try {
      this.session = await authenticateHost(ex, { method, keyNo, key, keyType, random: rnd, ...(previous ? { previous } : {}), ...(pcdCap2 ? { pcdCap2 } : {}) });
    } catch (e) {
      this.session = undefined;
      const st = (e as { message?: string }).message?.match(/status (?:0x)?([0-9a-f]{2})/i);
      if (st) throw new StatusError(parseInt(st[1]!, 16));
      throw e;
    }
    return this.session;
  }

  async changeKey(o: ChangeKeyRequest): Promise<void> {
    const s = this.session!;
    const { payload, sameKey } = changeKeyPayload(s, o);
    const r = await exchange(this.transport, 0xc4, payload);
    if (r.status !== 0) {
      s.destroy();
      this.session = undefined;
      throw new StatusError(r.status);
    }
    finishChangeKey(s, r.status, r.data, sameKey);
    if (sameKey) this.session = undefined;
  }

  async raw(apdu: Uint8Array): Promise<Uint8Array> {
    return this.transport.transmit(apdu);
  }
}

export const ZERO8 = new Uint8Array(8);
export const ZERO16 = new Uint8Array(16);
export const ZERO24 = new Uint8Array(24);

/** PICC level: create an application (key settings, key count | type bits). */
export async function createApp(h: Host, aid: number, ks1: number, ks2: number, extra: Uint8Array = new Uint8Array(0)): Promise<void> {
  await h.cmd(0xca, Uint8Array.from([...aidBytes(aid), ks1, ks2, ...extra]));
}

/** A DesfireClient speaking to `card` in process. */
export function clientFor(card: VirtualCard): DesfireClient {
  return new DesfireClient({ transmit: async (a) => card.process(a) });
}

/** The card status a client call or a Host command ended with (0 when it succeeded). */
export async function cardStatus(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CardStatusError || e instanceof StatusError) return e.status;
    throw e;
  }
  return 0;
}

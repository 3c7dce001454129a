// The virtual DESFire card: ISO 7816-4 wrapped native commands in, responses out, synchronously.
//
// process() does what a real card's command interpreter does: parse the APDU (CLA 0x90), join
// incoming 0xAF frames of long commands, dispatch to the command family, run secure messaging
// (src/core/sm through the session the authentication produced), split long responses into
// 59-byte 0xAF frames, and on any error answer the status byte, drop the authentication and any
// chained exchange. Bad input never changes state: handlers validate everything first.
import { toHex } from '../core/crypto/bytes.js';
import { randomBytesPooled } from '../core/crypto/random.js';
import { unwrapCommand as parseApdu, wrapResponse as apduResponse } from '../core/protocol/apdu.js';
import { CARD_RESPONSE_FRAME_DATA } from '../core/protocol/chaining.js';
import { type Reply, type Req, CardContext } from './context.js';
import { dispatch, expectedCommandLength } from './dispatch.js';
import { type CardImage, decodeImage, encodeImage } from './image.js';
import { isoCommand } from './iso.js';
import type { LatencyModel } from './latency.js';
import { type CardState, type Profile, factoryState } from './model.js';
import { CardFault, ST } from './status.js';

export interface VirtualCardOptions {
  /** 7-byte UID; default: 04 followed by 6 random bytes (NXP manufacturer code). */
  uid?: Uint8Array;
  profile?: Profile;
  /** Randomness for RndB, TI, random UIDs (tests inject a fixed source). */
  random?: (n: number) => Uint8Array;
  /** Optional timing model: process() then reports `lastLatencyMs` (it never sleeps). */
  latency?: LatencyModel;
  /** Testing aid: rethrow unexpected exceptions instead of answering 0xEE (fuzz tests set it). */
  strict?: boolean;
}

const SW_WRONG_LENGTH = Uint8Array.of(0x67, 0x00);
const SW_CLA_NOT_SUPPORTED = Uint8Array.of(0x6e, 0x00);
const SW_WRONG_P1P2 = Uint8Array.of(0x6a, 0x86);

/** An incoming command still receiving 0xAF frames. */
interface Incoming {
  ins: number;
  parts: Uint8Array[];
  got: number;
  expected: number;
}

export class VirtualCard {
  private readonly ctx: CardContext;
  private readonly latency: LatencyModel | undefined;
  private readonly strict: boolean;
  private outFrames: Uint8Array[] = [];
  private incoming: Incoming | undefined;
  private next: ((req: Req) => Reply) | undefined;
  private randomRfUid: Uint8Array | undefined;
  /** Called after every command that changed persistent state (save the image here). */
  onChange?: (card: VirtualCard) => void;
  /** The latency model's estimate for the last process() call, in ms (0 without a model). */
  lastLatencyMs = 0;
  /** Unexpected internal exceptions answered with 0xEE (should stay 0; fuzz tests check it). */
  internalErrors = 0;

  private constructor(state: CardState, opts: VirtualCardOptions) {
    const random = opts.random ?? randomBytesPooled;
    this.ctx = new CardContext(state, random);
    this.latency = opts.latency;
    this.strict = opts.strict ?? false;
  }

  /** A factory-fresh card: PICC master key DES all zero, key settings 0x0F, no applications. */
  static create(opts: VirtualCardOptions = {}): VirtualCard {
    const random = opts.random ?? randomBytesPooled;
    let uid = opts.uid;
    if (!uid) {
      uid = new Uint8Array(7);
      uid[0] = 0x04;
      uid.set(random(6), 1);
    }
    if (uid.length !== 7) throw new RangeError('a DESFire UID is 7 bytes');
    return new VirtualCard(factoryState(uid, opts.profile ?? 'ev2'), { ...opts, random });
  }

  /** A card from a saved image (validated strictly: CardImageError when invalid). */
  static fromImage(image: CardImage, opts: Omit<VirtualCardOptions, 'uid' | 'profile'> = {}): VirtualCard {
    return new VirtualCard(decodeImage(image), opts);
  }

  /** The card's real 7-byte UID (what GetCardUID returns and what the image stores). */
  get uid(): Uint8Array {
    return this.ctx.state.uid.slice();
  }

  get profile(): Profile {
    return this.ctx.state.profile;
  }

  /**
   * The UID the card shows in anti-collision (what a PC/SC reader's GET DATA returns): the real
   * UID, or with random ID enabled (SetConfiguration) a fresh 4-byte random ID 08 xx xx xx per
   * power cycle.
   */
  get rfUid(): Uint8Array {
    if (!this.ctx.state.picc.randomUid) return this.uid;
    if (!this.randomRfUid) this.randomRfUid = Uint8Array.of(0x08, ...this.ctx.random(3));
    return this.randomRfUid.slice();
  }

  /** The historical bytes of the ATS (what PC/SC puts in the ATR): DESFire EV1+ sends 0x80. */
  get atrHistoricalBytes(): Uint8Array {
    return Uint8Array.of(0x80);
  }

  /** The serialisable state. SECRET-BEARING: it contains every key of the card. */
  toImage(): CardImage {
    return encodeImage(this.ctx.state);
  }

  /** RF reset / power cycle: authentication, selection, uncommitted transaction and chaining lost. */
  reset(): void {
    this.ctx.resetVolatile();
    this.outFrames = [];
    this.incoming = undefined;
    this.next = undefined;
    this.randomRfUid = undefined;
  }

  /**
   * The card leaves the field in the middle of a command. process() is atomic (a command's
   * effects are applied only once its last frame has arrived and every check has passed), so a
   * tear between frames leaves the state as before that command: a partially received chained
   * write is discarded, and uncommitted backup/value/record changes are lost, exactly as the
   * anti-tearing of a real card guarantees. Everything volatile is lost as with reset().
   */
  tear(): void {
    this.reset();
  }

  process(apdu: Uint8Array): Uint8Array {
    const out = this.processInner(apdu);
    if (this.latency) this.lastLatencyMs = this.latency(apdu, out);
    if (this.ctx.dirty) {
      this.ctx.dirty = false;
      this.onChange?.(this);
    }
    return out;
  }

  private processInner(apdu: Uint8Array): Uint8Array {
    if (apdu.length >= 1 && apdu[0] === 0x00) {
      // ISO 7816-4 SELECT; it ends any chained exchange like every other command.
      this.outFrames = [];
      this.incoming = undefined;
      this.next = undefined;
      return isoCommand(this.ctx, apdu);
    }
    if (apdu.length >= 1 && apdu[0] !== 0x90) return SW_CLA_NOT_SUPPORTED.slice();
    if (apdu.length >= 4 && (apdu[2] !== 0 || apdu[3] !== 0)) return SW_WRONG_P1P2.slice();
    let ins: number;
    let data: Uint8Array;
    try {
      ({ ins, data } = parseApdu(apdu));
    } catch {
      return SW_WRONG_LENGTH.slice();
    }
    if (ins === 0xaf) return this.continuation(data);
    // Any other command ends pending chains (a real card drops the rest of a response).
    const interrupted = this.incoming !== undefined || this.next !== undefined;
    this.outFrames = [];
    this.incoming = undefined;
    this.next = undefined;
    if (interrupted) return this.error(ST.COMMAND_ABORTED);
    let expected: number | undefined;
    try {
      expected = expectedCommandLength(this.ctx, ins, data);
    } catch (e) {
      return this.failure(e);
    }
    if (expected !== undefined && data.length < expected) {
      this.incoming = { ins, parts: [data], got: data.length, expected };
      return apduResponse(ST.ADDITIONAL_FRAME);
    }
    return this.run({ ins, body: data }, (req) => dispatch(this.ctx, req));
  }

  private continuation(data: Uint8Array): Uint8Array {
    if (this.outFrames.length > 0) {
      if (data.length !== 0) {
        this.outFrames = [];
        return this.error(ST.LENGTH_ERROR);
      }
      return this.outFrames.shift()!;
    }
    if (this.incoming) {
      const inc = this.incoming;
      if (inc.got + data.length > inc.expected) {
        this.incoming = undefined;
        return this.error(ST.LENGTH_ERROR);
      }
      inc.parts.push(data);
      inc.got += data.length;
      if (inc.got < inc.expected) return apduResponse(ST.ADDITIONAL_FRAME);
      this.incoming = undefined;
      const body = new Uint8Array(inc.got);
      let o = 0;
      for (const p of inc.parts) {
        body.set(p, o);
        o += p.length;
      }
      return this.run({ ins: inc.ins, body }, (req) => dispatch(this.ctx, req));
    }
    if (this.next) {
      const next = this.next;
      this.next = undefined;
      return this.run({ ins: 0xaf, body: data }, next);
    }
    // An AF the card does not expect.
    return this.error(ST.COMMAND_ABORTED);
  }

  private run(req: Req, handler: (req: Req) => Reply): Uint8Array {
    let reply: Reply;
    let body: Uint8Array;
    try {
      const before = this.ctx.session;
      reply = handler(req);
      const comm = reply.comm ?? this.ctx.macComm;
      const session = this.ctx.session;
      const wrap = session !== undefined && session === before && comm !== 'none';
      if (wrap && !req.opened) {
        // Every command under a session passes secure messaging (EV1 IV chaining, EV2 CmdCtr).
        session.unwrapCommand(req.ins, req.body, new Uint8Array(0), 'plain');
      }
      const data = reply.data ?? new Uint8Array(0);
      const status = reply.status ?? ST.OK;
      body = wrap ? session.wrapResponse(req.ins, status, data, comm) : data;
      if (reply.dropSession) this.ctx.dropSession();
    } catch (e) {
      return this.failure(e);
    }
    if (reply.next) this.next = reply.next;
    const status = reply.status ?? ST.OK;
    return this.frames(status, body, reply.frameSizes);
  }

  private frames(status: number, body: Uint8Array, sizes?: number[]): Uint8Array {
    if (!sizes && body.length <= CARD_RESPONSE_FRAME_DATA) {
      this.outFrames = [];
      return apduResponse(status, body);
    }
    const chunks: Uint8Array[] = [];
    if (sizes) {
      let o = 0;
      sizes.forEach((n, i) => {
        const end = i === sizes.length - 1 ? body.length : Math.min(body.length, o + n);
        chunks.push(body.subarray(o, end));
        o = end;
      });
    } else {
      let o = 0;
      do {
        const n = Math.min(CARD_RESPONSE_FRAME_DATA, body.length - o);
        chunks.push(body.subarray(o, o + n));
        o += n;
      } while (o < body.length);
    }
    const apdus = chunks.map((c, i) => apduResponse(i === chunks.length - 1 ? status : ST.ADDITIONAL_FRAME, c));
    this.outFrames = apdus.slice(1);
    return apdus[0]!;
  }

  private failure(e: unknown): Uint8Array {
    if (e instanceof CardFault) return this.error(e.status);
    const code = (e as { code?: unknown } | undefined)?.code;
    if (code === 'ERR_INTEGRITY') return this.error(ST.INTEGRITY_ERROR);
    // A session that cannot go on (e.g. EV2 CmdCtr exhausted at FFFF): re-authentication needed.
    if (code === 'ERR_AUTHENTICATION' || code === 'ERR_SESSION') return this.error(ST.AUTHENTICATION_ERROR);
    if (code === 'ERR_FRAME') return this.error(ST.LENGTH_ERROR);
    this.internalErrors++;
    if (this.strict) throw e;
    return this.error(ST.MEMORY_ERROR);
  }

  /** An error: authentication and chains are lost, as on a real card. */
  private error(status: number): Uint8Array {
    this.ctx.dropSession();
    this.outFrames = [];
    this.incoming = undefined;
    this.next = undefined;
    return apduResponse(status);
  }

  /** Debug summary (no key bytes). */
  toString(): string {
    return `VirtualCard(${this.profile}, uid ${toHex(this.ctx.state.uid)}, ${this.ctx.state.apps.size} apps)`;
  }
}

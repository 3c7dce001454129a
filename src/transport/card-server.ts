// `card serve` as a library: a virtual card loaded from (or created as) an image file, attached to
// vpcd through the bridge, its image saved atomically after every command that changed its state
// (before that command's response goes out, so an answered command is a persisted one, as on a
// real card whose EEPROM write completes before it answers).
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { saveImageAtomic, loadImage } from '../card/image-file.js';
import { type Bitrate, latencyModel } from '../card/latency.js';
import type { Profile } from '../card/model.js';
import { VirtualCard } from '../card/virtual-card.js';
import { toHex } from '../core/crypto/bytes.js';
import { TransportError } from './errors.js';
import { PcscFrontEnd } from './pcsc-frontend.js';
import { type BridgeEvent, VpcdBridge } from './vpcd-bridge.js';

export interface CardServerOptions {
  /** Image file; created (factory-fresh card) when missing. */
  image: string;
  /** UID for a new image (7 bytes); for an existing one it must match. */
  uid?: Uint8Array;
  /** Profile for a new image; for an existing one it must match. */
  profile?: Profile;
  host?: string;
  port?: number;
  quickAck?: boolean;
  reconnectDelayMs?: number;
  /** Answer with real-card timings at this bit rate (the card's latency model); off by default. */
  latency?: Bitrate;
  onEvent?: (e: CardServerEvent) => void;
}

export type CardServerEvent = BridgeEvent | { type: 'saved'; path: string } | { type: 'save-failed'; error: Error } | { type: 'created'; path: string };

/** Load `path`, or create a factory-fresh card there; refuses an image that contradicts uid/profile. */
export async function openOrCreateImage(path: string, uid?: Uint8Array, profile?: Profile, latency?: Bitrate): Promise<{ card: VirtualCard; created: boolean }> {
  const model = latency !== undefined ? { latency: latencyModel(latency) } : {};
  let image;
  try {
    image = await loadImage(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (image) {
    const card = VirtualCard.fromImage(image, model);
    if (uid && toHex(uid) !== toHex(card.uid)) {
      throw new TransportError('ERR_CARD_IMAGE_MISMATCH', `image ${path} holds card ${toHex(card.uid)}, not ${toHex(uid)}`);
    }
    if (profile && profile !== card.profile) throw new TransportError('ERR_CARD_IMAGE_MISMATCH', `image ${path} holds an ${card.profile} card, not ${profile}`);
    return { card, created: false };
  }
  const card = VirtualCard.create({ ...(uid ? { uid } : {}), ...(profile ? { profile } : {}), ...model });
  await saveImageAtomic(path, card.toImage());
  return { card, created: true };
}

/**
 * One server per image: `IMAGE.lock` holds the owner's pid. A lock whose process is gone (a
 * crash, SIGKILL) is taken over; a live one is ERR_CARD_IMAGE_LOCKED. Returns the release function.
 */
export function lockImage(path: string): () => void {
  const lock = `${path}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => rmSync(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number.parseInt(readFileSync(lock, 'utf8'), 10);
      let alive = false;
      if (Number.isInteger(pid) && pid > 0) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch (err) {
          alive = (err as NodeJS.ErrnoException).code === 'EPERM';
        }
      }
      if (alive) throw new TransportError('ERR_CARD_IMAGE_LOCKED', `${path} is served by process ${pid} (lock ${lock})`);
      rmSync(lock, { force: true }); // stale: its owner is gone
    }
  }
  throw new TransportError('ERR_CARD_IMAGE_LOCKED', `could not lock ${path}`);
}

export class CardServer {
  private dirty = false;
  private constructor(
    readonly card: VirtualCard,
    readonly frontEnd: PcscFrontEnd,
    readonly bridge: VpcdBridge,
    readonly imagePath: string,
    readonly created: boolean,
    private readonly unlock: () => void,
  ) {}

  static async start(opts: CardServerOptions): Promise<CardServer> {
    const unlock = lockImage(opts.image);
    let card: VirtualCard;
    let created: boolean;
    try {
      ({ card, created } = await openOrCreateImage(opts.image, opts.uid, opts.profile, opts.latency));
    } catch (e) {
      unlock();
      throw e;
    }
    if (created) opts.onEvent?.({ type: 'created', path: opts.image });
    const frontEnd = new PcscFrontEnd(card);
    const ref: { server?: CardServer } = {};
    const bridge = await VpcdBridge.start({
      frontEnd,
      ...(opts.host !== undefined ? { host: opts.host } : {}),
      ...(opts.port !== undefined ? { port: opts.port } : {}),
      ...(opts.quickAck !== undefined ? { quickAck: opts.quickAck } : {}),
      ...(opts.reconnectDelayMs !== undefined ? { reconnectDelayMs: opts.reconnectDelayMs } : {}),
      afterCommand: () => ref.server?.saveIfDirty(),
      latency: opts.latency !== undefined,
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    const server = new CardServer(card, frontEnd, bridge, opts.image, created, unlock);
    ref.server = server;
    server.onEvent = opts.onEvent;
    card.onChange = () => {
      server.dirty = true;
    };
    return server;
  }

  private onEvent: ((e: CardServerEvent) => void) | undefined;

  /** Save the image when a command changed the card (called by the bridge before answering). */
  async saveIfDirty(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      await saveImageAtomic(this.imagePath, this.card.toImage());
      this.onEvent?.({ type: 'saved', path: this.imagePath });
    } catch (e) {
      this.dirty = true; // try again after the next command, and on stop()
      this.onEvent?.({ type: 'save-failed', error: e as Error });
    }
  }

  /** Detach from vpcd and save any unsaved change. */
  async stop(): Promise<void> {
    await this.bridge.stop();
    try {
      await this.saveIfDirty();
    } finally {
      this.unlock();
    }
  }
}

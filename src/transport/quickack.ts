// TCP_QUICKACK for the bridge's socket. vpcd sends the 2-byte length and the payload with two
// send() calls; with Nagle on its side the payload waits until the length is ACKed, and Linux
// delays that ACK by up to 40 ms. Setting TCP_QUICKACK on our side makes the ACK go out at once;
// Linux clears the flag again after some reads, so it is re-armed after every read.
// Node has no setsockopt, so this calls libc's through the optional `koffi` FFI package, loaded
// lazily; when it is missing (or not on Linux) the bridge still works, only slower.
import type { Socket } from 'node:net';

const IPPROTO_TCP = 6;
const TCP_QUICKACK = 12;

export type QuickAck = (socket: Socket) => boolean;

let loaded: Promise<QuickAck | undefined> | undefined;
let why = '';

/** Why quick-ACK is unavailable ('' when it is available or not yet tried). */
export function quickAckUnavailableReason(): string {
  return why;
}

function fdOf(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  return typeof handle?.fd === 'number' && handle.fd >= 0 ? handle.fd : undefined;
}

/** Load the FFI binding once; resolves to undefined (with a reason) when it cannot work here. */
export function loadQuickAck(): Promise<QuickAck | undefined> {
  loaded ??= (async () => {
    if (process.platform !== 'linux') {
      why = `TCP_QUICKACK is Linux-only (platform ${process.platform})`;
      return undefined;
    }
    try {
      const koffi = (await import('koffi')).default;
      const libc = koffi.load('libc.so.6');
      const setsockopt = libc.func('int setsockopt(int, int, int, const void *, uint32_t)') as (
        fd: number,
        level: number,
        name: number,
        value: Buffer,
        len: number,
      ) => number;
      const one = Buffer.alloc(4);
      one.writeInt32LE(1);
      return (socket: Socket) => {
        const fd = fdOf(socket);
        if (fd === undefined) return false;
        return setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, one, 4) === 0;
      };
    } catch (e) {
      why = `koffi unavailable: ${(e as Error).message}`;
      return undefined;
    }
  })();
  return loaded;
}

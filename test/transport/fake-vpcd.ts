// vpcd's side of the protocol, for tests: a TCP server that accepts one card at a time, sends
// frames the way vpcd does (the 2 length bytes and the payload in two writes) and reads answers.
import { createServer, type Server, type Socket } from 'node:net';
import { FrameDecoder, encodeFrame } from '../../src/transport/vpcd-protocol.js';

export class FakeVpcd {
  server!: Server;
  port = 0;
  sock: Socket | undefined;
  private decoder = new FrameDecoder();
  private inbox: Uint8Array[] = [];
  private wake: (() => void) | undefined;
  private connWaiters: Array<(s: Socket) => void> = [];

  async listen(port = 0): Promise<void> {
    this.server = createServer((s) => {
      this.sock = s;
      this.decoder = new FrameDecoder();
      s.on('data', (d) => {
        this.inbox.push(...this.decoder.push(d));
        this.wake?.();
      });
      s.on('error', () => undefined);
      for (const w of this.connWaiters.splice(0)) w(s);
    });
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
  }

  accepted(): Promise<Socket> {
    if (this.sock && !this.sock.destroyed) return Promise.resolve(this.sock);
    return new Promise((r) => this.connWaiters.push(r));
  }

  /** Send like vpcd does: the 2 length bytes, then the payload, in two writes. */
  send(payload: Uint8Array): void {
    const f = encodeFrame(payload);
    this.sock!.write(f.subarray(0, 2));
    this.sock!.write(f.subarray(2));
  }

  async recv(timeoutMs = 5000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (Date.now() > deadline) throw new Error('fake vpcd: no answer');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
    }
    return this.inbox.shift()!;
  }

  async exchange(payload: Uint8Array): Promise<Uint8Array> {
    this.send(payload);
    return this.recv();
  }

  get pendingAnswers(): number {
    return this.inbox.length;
  }

  async close(): Promise<void> {
    this.sock?.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
